"""Typed configuration: one small pydantic model per provider, a URL form, and the environment.

Every model forbids unknown keys, so a typo is a `ConfigurationError`, not a silent default.
Secrets are `SecretStr` and never appear in reprs, logs or error messages.
"""

from __future__ import annotations

import ipaddress
import os
from datetime import timedelta
from typing import Annotated, Any, Literal, Self
from urllib.parse import parse_qsl, urlencode, urlsplit

import pydantic
from pydantic import BaseModel, ConfigDict, Field, SecretStr

from ._errors import ConfigurationError

__all__ = [
    "AwsSqsConfig",
    "AzureServiceBusConfig",
    "InMemoryConfig",
    "PostgresConfig",
    "ProviderConfig",
    "SqliteConfig",
    "QueueConfig",
    "URL_ENV_VAR",
]

#: The environment variable ``create_client()`` reads when given nothing.
URL_ENV_VAR = "QUEUE_RUNTIME_URL"
_MIB = 1024 * 1024


class _Model(BaseModel):
    """Frozen, typo-proof model whose validation failures are `ConfigurationError`."""

    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=True)

    def __init__(self, **data: Any) -> None:
        try:
            super().__init__(**data)
        except pydantic.ValidationError as exc:
            raise ConfigurationError(_describe(type(self).__name__, exc)) from None

    @classmethod
    def model_validate(cls, obj: Any, **kwargs: Any) -> Self:
        try:
            return super().model_validate(obj, **kwargs)
        except pydantic.ValidationError as exc:
            raise ConfigurationError(_describe(cls.__name__, exc)) from None


def _describe(model: str, exc: pydantic.ValidationError) -> str:
    # input values are left out on purpose: they may be secrets
    problems = "; ".join(
        f"{'.'.join(str(p) for p in err['loc']) or model}: "
        f"{err['msg'].removeprefix('Value error, ')}"
        for err in exc.errors()
    )
    return f"invalid {model}: {problems}"


def _plain_seconds(value: Any) -> Any:
    """Seconds written as text (``"3"``, ``"2.5"``: how a URL gives them) as a number; other
    text (ISO 8601 ``"PT3S"``, ``"HH:MM:SS"``) is left to pydantic, which reads it as before."""
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            pass
    return value


#: A duration: a `timedelta`, or seconds as a number or as text (``3``, ``"2.5"``); ISO 8601
#: (``"PT3S"``) and ``"[HH:]MM:SS"`` text too. NaN and infinity are refused.
Seconds = Annotated[timedelta, pydantic.BeforeValidator(_plain_seconds)]

#: What a port must be; a message never quotes the port it refuses (in a URL whose password
#: holds an unencoded ``/``, what looks like the port is part of the password).
_PORT_RULE = (
    "a port must be a number from 1 to 65535 (percent-encode a '/', '@', ':' or '#' "
    "in a user name or password)"
)


def _host_problem(netloc: str, *, several: bool = False) -> str | None:
    """Why the host part of a URL (after any ``user:password@``) is not ``host[:port]``
    (an IPv6 address in brackets; comma-separated hosts when ``several``), or None.

    The reason never quotes the URL: it may carry a password.
    """
    hosts = netloc.rpartition("@")[2]
    for host in hosts.split(",") if several else [hosts]:
        if host.startswith("["):
            name, closed, rest = host[1:].partition("]")
            if not closed:
                return "an IPv6 address in it lacks its closing ']'"
            try:
                ipaddress.IPv6Address(name.partition("%")[0])
            except ValueError:
                return "what is between '[' and ']' is not an IPv6 address"
            if rest and not rest.startswith(":"):
                return "only ':port' may follow an IPv6 address's ']'"
            port: str | None = rest[1:] if rest else None
        else:
            if "[" in host or "]" in host:
                return "it has a ']' without its '['"
            _, colon, port = host.partition(":")
            if not colon:
                port = None
        if port is not None and not _valid_port(port):
            return _PORT_RULE
    return None


def _valid_port(port: str) -> bool:
    return port.isascii() and port.isdigit() and 1 <= int(port) <= 65535


_SSLMODES = ("disable", "allow", "prefer", "require", "verify-ca", "verify-full")
_SESSION_ATTRS = ("any", "primary", "standby", "read-write", "read-only", "prefer-standby")


def _dsn_problem(dsn: str) -> str | None:
    """Why ``dsn`` is not a PostgreSQL URL the driver can use, or None; checked here so that
    a typo is a `ConfigurationError` at once, not an error at ``open()`` that reads like a
    network fault. The reason never quotes the DSN."""
    try:
        parts = urlsplit(dsn)
    except ValueError:
        return "its host part cannot be read (is an IPv6 address's '[' or ']' missing?)"
    if parts.scheme.lower() not in {"postgresql", "postgres"}:
        return "it must start with postgresql:// or postgres://"
    problem = _host_problem(parts.netloc, several=True)
    if problem is not None:
        return problem
    try:
        query = dict(parse_qsl(parts.query, strict_parsing=True)) if parts.query else {}
    except ValueError:
        return "each query parameter needs a name and '='"
    ports = query.get("port")
    if ports is not None and not all(_valid_port(p) for p in ports.split(",")):
        return _PORT_RULE
    if query.get("sslmode", "prefer") not in _SSLMODES:
        return f"sslmode must be one of {', '.join(_SSLMODES)}"
    if query.get("target_session_attrs", "any") not in _SESSION_ATTRS:
        return f"target_session_attrs must be one of {', '.join(_SESSION_ATTRS)}"
    ours = sorted(_PostgresOptions & set(query))
    if ours:
        return f"{', '.join(ours)} is a field of PostgresConfig, not a DSN parameter"
    return None


class InMemoryConfig(_Model):
    """The in-process reference adapter. ``name`` shares one broker between clients of a
    process (``memory://orders``); without it every client has a broker of its own."""

    kind: Literal["memory"] = "memory"
    name: str | None = None
    max_message_size: int = Field(default=_MIB, gt=0, le=256 * _MIB)


class AwsSqsConfig(_Model):
    """AWS SQS. Unset fields fall back to boto3's own chain (``AWS_REGION``,
    ``AWS_ENDPOINT_URL_SQS``, shared credentials, instance roles, ...)."""

    kind: Literal["sqs"] = "sqs"
    region: str | None = None
    endpoint_url: str | None = None
    profile: str | None = None
    access_key_id: str | None = None
    secret_access_key: SecretStr | None = None
    session_token: SecretStr | None = None
    #: SQS's message size limit: 1 MiB today, 256 KiB on older setups.
    max_message_size: int = Field(default=_MIB, gt=0, le=_MIB)
    #: Threads for boto3 calls (the event loop never blocks on one).
    max_workers: int = Field(default=16, ge=1, le=256)
    #: Seconds to wait for a connection to SQS, per attempt.
    connect_timeout: float = Field(default=5.0, gt=0, le=300)
    #: Seconds to wait for an answer, per attempt (a long poll waits this on top of its wait).
    read_timeout: float = Field(default=10.0, gt=0, le=300)
    #: Attempts per call, the first included (botocore's standard retry mode).
    max_attempts: int = Field(default=3, ge=1, le=10)

    @pydantic.field_validator("endpoint_url")
    @classmethod
    def _endpoint(cls, url: str | None) -> str | None:
        if url is None:
            return url
        try:
            parts = urlsplit(url)
        except ValueError:
            parts = None
        problem = (
            "it is not a URL"
            if parts is None
            else "it needs http:// or https:// and a host"
            if parts.scheme.lower() not in {"http", "https"} or not parts.netloc
            else _host_problem(parts.netloc)
        )
        if problem is not None:
            raise ValueError(f"endpoint_url must be http(s)://host[:port]: {problem}")
        return url

    @pydantic.model_validator(mode="after")
    def _keys_together(self) -> Self:
        if (self.access_key_id is None) != (self.secret_access_key is None):
            raise ValueError("access_key_id and secret_access_key go together")
        return self


class AzureServiceBusConfig(_Model):
    """Azure Service Bus: a connection string, or a namespace with an Azure identity.

    ``auth`` picks the identity: ``connection_string`` (SAS key or the emulator's
    ``UseDevelopmentEmulator=true``), ``default`` (azure-identity's DefaultAzureCredential),
    ``managed_identity`` (``client_id`` for a user-assigned one), ``client_secret``
    (``tenant_id``, ``client_id``, ``client_secret``), or ``credential``: any TokenCredential
    object, sync or async (setting ``credential`` implies it). azure-identity is imported only
    when an identity is asked for.
    """

    model_config = ConfigDict(
        extra="forbid", frozen=True, str_strip_whitespace=True, arbitrary_types_allowed=True
    )

    kind: Literal["azure-servicebus"] = "azure-servicebus"
    connection_string: SecretStr | None = None
    namespace: str | None = None
    auth: Literal[
        "connection_string", "default", "managed_identity", "client_secret", "credential"
    ] = "connection_string"
    tenant_id: str | None = None
    client_id: str | None = None
    client_secret: SecretStr | None = None
    #: A TokenCredential (``get_token(*scopes)``, sync or async); never printed.
    credential: Any = Field(default=None, repr=False)
    #: Talk to a local emulator without TLS (the connection string's
    #: ``UseDevelopmentEmulator=true`` says the same).
    use_development_emulator: bool = False
    #: ``host:port`` of the management (ATOM) API when it is not the endpoint's own (for
    #: example Microsoft's emulator, which serves it on port 5300).
    admin_endpoint: str | None = None
    #: Attempts the SDK adds to a failed send, receive or settlement (its exponential
    #: backoff); session acceptance is never retried by the SDK.
    retry_total: int = Field(default=3, ge=0, le=10)
    max_message_size: int = Field(default=256 * 1024, gt=0, le=100 * _MIB)

    @pydantic.model_validator(mode="before")
    @classmethod
    def _credential_implies_auth(cls, data: Any) -> Any:
        if isinstance(data, dict) and data.get("credential") is not None and "auth" not in data:
            return {**data, "auth": "credential"}
        return data

    @pydantic.model_validator(mode="after")
    def _auth_complete(self) -> Self:
        if self.auth == "connection_string" and self.connection_string is None:
            raise ValueError("auth 'connection_string' needs connection_string")
        if self.auth != "connection_string" and not self.namespace:
            raise ValueError(f"auth {self.auth!r} needs namespace")
        if self.auth == "client_secret" and not (
            self.tenant_id and self.client_id and self.client_secret
        ):
            raise ValueError("auth 'client_secret' needs tenant_id, client_id and client_secret")
        if self.auth == "credential" and not callable(getattr(self.credential, "get_token", None)):
            raise ValueError("auth 'credential' needs a credential with get_token(*scopes)")
        if self.auth != "credential" and self.credential is not None:
            raise ValueError(f"credential is used by auth 'credential', not {self.auth!r}")
        return self


_SQL_NAME = r"^[A-Za-z_][A-Za-z0-9_]{0,39}$"


class SqliteConfig(_Model):
    """A SQLite file (``sqlite:///path/to/queues.db``), created with its tables on first use.

    ``synchronous="normal"`` (WAL) keeps committed messages through a process crash;
    ``"full"`` also through a power loss, with an fsync per commit.
    """

    kind: Literal["sqlite"] = "sqlite"
    path: str = Field(min_length=1)
    #: Prefix of the adapter's tables (several applications may share one file).
    table_prefix: str = Field(default="qr_", pattern=_SQL_NAME)
    synchronous: Literal["normal", "full"] = "normal"
    #: How long a transaction waits for another connection's write lock.
    busy_timeout: Seconds = Field(default=timedelta(seconds=10), gt=timedelta(0))
    #: Caps the file at this many pages (``PRAGMA max_page_count``); unset: no cap.
    max_page_count: int | None = Field(default=None, gt=0)
    max_message_size: int = Field(default=_MIB, gt=0, le=256 * _MIB)


class PostgresConfig(_Model):
    """A PostgreSQL database (``postgresql://user@host/db``); the adapter keeps its tables in
    its own schema, created and migrated on first use."""

    kind: Literal["postgresql"] = "postgresql"
    #: A libpq connection URL; may carry a password, so it is secret.
    dsn: SecretStr
    schema_name: str = Field(default="queue_runtime", pattern=_SQL_NAME)
    min_pool_size: int = Field(default=1, ge=0, le=100)
    max_pool_size: int = Field(default=10, ge=1, le=100)
    #: Longest wait to open a connection (TCP, TLS, login).
    connect_timeout: Seconds = Field(default=timedelta(seconds=10), gt=timedelta(0))
    #: Longest wait for the answer to one statement (a send's statement gets a second more
    #: per MiB it writes); past it the connection is closed and the call raises `TimeoutError`.
    #: A receive's or accept's own ``timeout`` is waited for between statements, not cut by it.
    command_timeout: Seconds = Field(default=timedelta(seconds=15), gt=timedelta(0))
    max_message_size: int = Field(default=_MIB, gt=0, le=256 * _MIB)

    @pydantic.field_validator("dsn")
    @classmethod
    def _dsn(cls, dsn: SecretStr) -> SecretStr:
        problem = _dsn_problem(dsn.get_secret_value())
        if problem is not None:
            raise ValueError(f"the DSN is not a postgresql:// URL the driver can use: {problem}")
        return dsn

    @pydantic.model_validator(mode="after")
    def _pool_sizes(self) -> Self:
        if self.min_pool_size > self.max_pool_size:
            raise ValueError("min_pool_size must not exceed max_pool_size")
        return self


ProviderConfig = Annotated[
    InMemoryConfig | AwsSqsConfig | AzureServiceBusConfig | SqliteConfig | PostgresConfig,
    Field(discriminator="kind"),
]


class QueueConfig(_Model):
    """Everything `create_client` needs: the provider and provider-neutral defaults."""

    provider: ProviderConfig = Field(default_factory=InMemoryConfig)
    #: How long a receive or ``accept_session`` waits when called with ``timeout=None``.
    default_timeout: Seconds = Field(default=timedelta(seconds=30), ge=timedelta(0))

    @classmethod
    def from_url(cls, url: str, **settings: Any) -> QueueConfig:
        """Parse ``memory://``, ``sqs://?region=..``, ``azure-servicebus://[namespace]``,
        ``sqlite:///path/to/queues.db``, ``postgresql://user@host/db``."""
        return cls(provider=_provider_from_url(url), **settings)

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None) -> QueueConfig:
        """Read ``QUEUE_RUNTIME_URL`` (default ``memory://``) and
        ``QUEUE_RUNTIME_DEFAULT_TIMEOUT`` (seconds)."""
        env = os.environ if environ is None else environ
        settings: dict[str, Any] = {}
        if timeout := env.get("QUEUE_RUNTIME_DEFAULT_TIMEOUT"):
            try:
                settings["default_timeout"] = float(timeout)
            except ValueError:
                raise ConfigurationError(
                    f"QUEUE_RUNTIME_DEFAULT_TIMEOUT must be seconds, not {timeout!r}"
                ) from None
        return cls.from_url(env.get(URL_ENV_VAR) or "memory://", **settings)


_PostgresOptions = frozenset(PostgresConfig.model_fields) - {"kind", "dsn"}


def _provider_from_url(
    url: str,
) -> InMemoryConfig | AwsSqsConfig | AzureServiceBusConfig | SqliteConfig | PostgresConfig:
    if not isinstance(url, str):
        raise ConfigurationError(
            f"expected a URL string or a QueueConfig, not {type(url).__name__}"
        )
    try:
        parts = urlsplit(url)
    except ValueError:  # its message may quote the URL, password and all
        raise ConfigurationError(
            f"malformed {_scheme_of(url)} URL: its host part cannot be read "
            "(is an IPv6 address's '[' or ']' missing?)"
        ) from None
    pairs = parse_qsl(parts.query, keep_blank_values=True)
    query: dict[str, Any] = dict(pairs)
    if len(query) != len(pairs):
        repeated = sorted({key for key, _ in pairs if sum(k == key for k, _ in pairs) > 1})
        raise ConfigurationError(
            f"queue URL repeats the query parameter(s) {', '.join(repeated)}: give each once"
        )
    scheme = parts.scheme.lower()
    if scheme == "memory":
        return InMemoryConfig.model_validate({"name": parts.netloc or None, **query})
    if scheme == "sqs":
        if parts.netloc:
            raise ConfigurationError("sqs:// takes settings as query parameters, not a host")
        return AwsSqsConfig.model_validate(query)
    if scheme == "azure-servicebus":
        if parts.netloc:
            problem = (
                "it takes no user or password (give credentials through the configuration)"
                if "@" in parts.netloc
                else _host_problem(parts.netloc)
            )
            if problem is not None:
                raise ConfigurationError(
                    f"azure-servicebus://<namespace>[:port] URL is malformed: {problem}"
                )
            return AzureServiceBusConfig.model_validate(
                {"namespace": parts.netloc, "auth": "default", **query}
            )
        conn = os.environ.get("AZURE_SERVICEBUS_CONNECTION_STRING")
        if not conn:
            raise ConfigurationError(
                "azure-servicebus:// needs AZURE_SERVICEBUS_CONNECTION_STRING, "
                "or a namespace: azure-servicebus://<namespace>.servicebus.windows.net"
            )
        return AzureServiceBusConfig.model_validate({"connection_string": conn, **query})
    if scheme == "sqlite":
        # sqlite:///abs/path.db (absolute), sqlite://relative.db (relative to the cwd)
        path = parts.netloc + parts.path
        if not path:
            raise ConfigurationError("sqlite:// needs a file: sqlite:///path/to/queues.db")
        return SqliteConfig.model_validate({"path": path, **query})
    if scheme in {"postgresql", "postgres"}:
        ours = {key: value for key, value in query.items() if key in _PostgresOptions}
        # the driver's parameters, encoded again (a decoded '&' or '=' would split them)
        rest = urlencode([(key, value) for key, value in pairs if key not in _PostgresOptions])
        dsn = parts._replace(scheme="postgresql", query=rest).geturl()
        return PostgresConfig.model_validate({"dsn": dsn, **ours})
    shown = f"{parts.scheme}://" if parts.scheme else "(no scheme)"
    raise ConfigurationError(
        f"unknown queue URL scheme {shown}: use memory://, sqs://, azure-servicebus://, "
        "sqlite:// or postgresql://"
    )


def _scheme_of(url: str) -> str:
    """``scheme://`` of a URL too malformed to split, for messages (never more of it)."""
    scheme, sep, _ = url.partition("://")
    return f"{scheme}://" if sep and scheme.replace("-", "").isalnum() else "queue"
