"""From `AzureServiceBusConfig` to the SDK's clients: endpoint, credentials, TLS, retries.

A connection string goes to the SDK as is (``UseDevelopmentEmulator=true`` turns TLS off and
keeps the endpoint's port); a namespace gets an Azure identity. azure-identity is imported
only here, and only when an identity is asked for; a synchronous TokenCredential is wrapped
so the async SDK can await it without blocking the loop. Nothing here logs or prints a secret.
"""

from __future__ import annotations

import asyncio
import inspect
from dataclasses import dataclass
from typing import Any, Final

from azure.core.pipeline.transport import AsyncioRequestsTransport
from azure.servicebus.aio import ServiceBusClient
from azure.servicebus.aio.management import ServiceBusAdministrationClient

from ..._errors import ConfigurationError
from ...config import AzureServiceBusConfig

__all__ = [
    "AsyncCredential",
    "Connection",
    "admin_endpoint_of",
    "connect",
    "endpoint_of",
    "withdraw_credit",
]

_PUBLIC_SUFFIX: Final = ".servicebus.windows.net"


@dataclass(frozen=True, slots=True)
class Endpoint:
    """Where the namespace is: ``host[:port]`` and whether it is a local emulator (no TLS)."""

    namespace: str
    emulator: bool


def endpoint_of(config: AzureServiceBusConfig) -> Endpoint:
    """The namespace (``host[:port]``) the config points at; `ConfigurationError` if none."""
    if config.connection_string is not None:
        fields = _connection_string_fields(config.connection_string.get_secret_value())
        endpoint = fields.get("endpoint", "")
        host = endpoint.split("://", 1)[-1].strip("/")
        if not host:
            raise ConfigurationError("the Service Bus connection string has no Endpoint")
        emulator = fields.get("usedevelopmentemulator", "").lower() == "true"
        return Endpoint(host, emulator or config.use_development_emulator)
    namespace = (config.namespace or "").strip()
    namespace = namespace.split("://", 1)[-1].strip("/")
    if not namespace:
        raise ConfigurationError("azure-servicebus needs a namespace or a connection string")
    if "." not in namespace.split(":", 1)[0] and not config.use_development_emulator:
        namespace += _PUBLIC_SUFFIX
    return Endpoint(namespace, config.use_development_emulator)


def _connection_string_fields(text: str) -> dict[str, str]:
    fields: dict[str, str] = {}
    for part in text.split(";"):
        key, sep, value = part.partition("=")
        if sep:
            fields[key.strip().lower()] = value.strip()
    return fields


def _with_endpoint(text: str, host: str) -> str:
    """The connection string ``text`` with its Endpoint moved to ``host`` (``host:port``)."""
    parts = [p for p in text.split(";") if p and not p.strip().lower().startswith("endpoint=")]
    return ";".join([f"Endpoint=sb://{host}/", *parts])


class AsyncCredential:
    """A synchronous TokenCredential made awaitable (its ``get_token`` runs in a thread)."""

    def __init__(self, credential: Any) -> None:
        self._credential = credential

    def __repr__(self) -> str:
        return f"AsyncCredential({type(self._credential).__name__})"

    async def get_token(self, *scopes: str, **kwargs: Any) -> Any:
        return await asyncio.to_thread(self._credential.get_token, *scopes, **kwargs)

    async def close(self) -> None:
        close = getattr(self._credential, "close", None)
        if callable(close):
            close()


def _credential(config: AzureServiceBusConfig) -> tuple[Any, bool]:
    """The token credential for ``config`` and whether this adapter owns it (closes it)."""
    if config.auth == "credential":
        given = config.credential
        if inspect.iscoroutinefunction(getattr(given, "get_token", None)):
            return given, False
        return AsyncCredential(given), False
    try:
        import azure.identity as identity
    except ImportError as exc:  # pragma: no cover - part of the azure extra
        raise ConfigurationError(
            f"auth {config.auth!r} needs azure-identity: pip install 'queue-runtime[azure]'"
        ) from exc
    if config.auth == "default":
        made: Any = identity.DefaultAzureCredential()
    elif config.auth == "managed_identity":
        made = identity.ManagedIdentityCredential(client_id=config.client_id)
    else:
        assert config.client_secret is not None
        assert config.tenant_id
        assert config.client_id
        made = identity.ClientSecretCredential(
            config.tenant_id, config.client_id, config.client_secret.get_secret_value()
        )
    return AsyncCredential(made), True


class _PlainHttpTransport(AsyncioRequestsTransport):  # type: ignore[misc]
    """The administration client's transport for a local emulator: plain HTTP, not TLS
    (the SDK always builds ``https://`` addresses)."""

    async def send(self, request: Any, **kwargs: Any) -> Any:
        if request.url.startswith("https://"):
            request.url = "http://" + request.url[len("https://") :]
        return await super().send(request, **kwargs)


@dataclass(slots=True)
class Connection:
    """The SDK clients of one `ServiceBusQueueClient`.

    ``messaging`` sends and receives (the SDK retries transient failures); ``sessions``
    accepts sessions without SDK retries, so a held session is reported at once and a
    next-available wait lasts exactly its timeout. ``admin`` manages queues over HTTP.
    """

    endpoint: Endpoint
    messaging: ServiceBusClient
    sessions: ServiceBusClient
    admin: ServiceBusAdministrationClient
    owned_credential: Any = None

    async def close(self) -> None:
        for client in (self.messaging, self.sessions):
            await client.close()
        await self.admin.close()
        if self.owned_credential is not None:
            await self.owned_credential.close()


def admin_endpoint_of(config: AzureServiceBusConfig) -> str | None:
    """``host:port`` of the management API when it is not the namespace's endpoint itself
    (our emulator answers it on its AMQP port too; Microsoft's serves it on port 5300)."""
    if config.admin_endpoint:
        return config.admin_endpoint.split("://", 1)[-1].strip("/")
    return None


def connect(config: AzureServiceBusConfig, *, retry_total: int = 3) -> Connection:
    """The SDK clients for ``config`` (no I/O happens until they are used)."""
    endpoint = endpoint_of(config)
    admin_endpoint = admin_endpoint_of(config)
    options: dict[str, Any] = {}
    admin_options: dict[str, Any] = {
        "transport": _PlainHttpTransport() if endpoint.emulator else AsyncioRequestsTransport()
    }
    try:
        if config.connection_string is not None:
            text = config.connection_string.get_secret_value()
            messaging = ServiceBusClient.from_connection_string(
                text, retry_total=retry_total, **options
            )
            sessions = ServiceBusClient.from_connection_string(text, retry_total=0, **options)
            if admin_endpoint is not None:
                text = _with_endpoint(text, admin_endpoint)
            admin = ServiceBusAdministrationClient.from_connection_string(text, **admin_options)
            owned = None
        else:
            credential, is_owned = _credential(config)
            owned = credential if is_owned else None
            if endpoint.emulator:
                options["use_tls"] = False
            messaging = ServiceBusClient(
                endpoint.namespace, credential, retry_total=retry_total, **options
            )
            sessions = ServiceBusClient(endpoint.namespace, credential, retry_total=0, **options)
            admin = ServiceBusAdministrationClient(
                admin_endpoint or endpoint.namespace, credential, **admin_options
            )
    except ValueError as exc:
        # the SDK's messages name the broken part, never the key
        raise ConfigurationError(f"unusable Service Bus configuration: {exc}") from exc
    return Connection(endpoint, messaging, sessions, admin, owned)


async def withdraw_credit(receiver: Any) -> None:
    """Take back the link credit a receive left unused (it asked for more than came).

    Left in place, that credit makes the service deliver messages that become available
    between receives (an abandoned one, say); the SDK releases them at once, and a release
    still in flight when the next receive asks can put that message behind later ones. With
    no credit between receives, messages wait in the service, in order. The SDK has no public
    call for it: this is the flow it sends itself (`reset_link_credit`); if its internals
    differ, nothing is done.
    """
    try:
        transport, handler = receiver._amqp_transport, receiver._handler
        if handler is not None and handler._link is not None and handler._link.current_link_credit:
            await transport.reset_link_credit_async(handler, 0)
    except (AttributeError, TypeError):  # pragma: no cover - another SDK version
        return
