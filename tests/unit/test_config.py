"""Configuration models, URL parsing and the environment."""

from __future__ import annotations

from datetime import timedelta

import pytest

import queue_runtime as qr


def test_default_config_is_in_memory() -> None:
    config = qr.QueueConfig()
    assert isinstance(config.provider, qr.InMemoryConfig)
    assert config.default_timeout == timedelta(seconds=30)


@pytest.mark.parametrize(
    ("url", "kind"),
    [
        ("memory://", "memory"),
        ("memory://shared?max_message_size=2048", "memory"),
        ("sqs://", "sqs"),
        ("sqs://?region=eu-west-1&endpoint_url=http://127.0.0.1:1", "sqs"),
        ("azure-servicebus://ns.servicebus.windows.net", "azure-servicebus"),
    ],
)
def test_urls(url: str, kind: str) -> None:
    assert qr.QueueConfig.from_url(url).provider.kind == kind


def test_memory_url_settings() -> None:
    provider = qr.QueueConfig.from_url("memory://shared?max_message_size=2048").provider
    assert isinstance(provider, qr.InMemoryConfig)
    assert provider.name == "shared" and provider.max_message_size == 2048


@pytest.mark.parametrize(
    "url",
    [
        "nope://",
        "memory://?bogus=1",
        "memory://?max_message_size=-1",
        "sqs://somehost",
        "sqs://?regoin=us-east-1",
        "sqlite://",
        "",
    ],
)
def test_bad_urls_raise_configuration_error(url: str) -> None:
    with pytest.raises(qr.ConfigurationError):
        qr.create_client(url)


def test_unknown_keys_raise_configuration_error() -> None:
    with pytest.raises(qr.ConfigurationError, match="bogus"):
        qr.InMemoryConfig(bogus=1)  # type: ignore[call-arg]
    with pytest.raises(qr.ConfigurationError):
        qr.QueueConfig(provider={"kind": "memory", "typo": True})  # type: ignore[arg-type]
    with pytest.raises(qr.ConfigurationError):
        qr.QueueConfig.model_validate({"provider": {"kind": "sqs"}, "default_timeot": 3})


def test_secrets_stay_out_of_reprs_and_errors() -> None:
    config = qr.AwsSqsConfig(access_key_id="AKIA", secret_access_key="s3cr3t-value")
    assert "s3cr3t-value" not in repr(config) and "s3cr3t-value" not in str(config)
    with pytest.raises(qr.ConfigurationError) as info:
        qr.AwsSqsConfig(secret_access_key="s3cr3t-value")  # no access_key_id
    assert "s3cr3t-value" not in str(info.value)


def test_azure_auth_rules() -> None:
    with pytest.raises(qr.ConfigurationError):
        qr.AzureServiceBusConfig()
    with pytest.raises(qr.ConfigurationError):
        qr.AzureServiceBusConfig(auth="client_secret", namespace="ns")
    config = qr.AzureServiceBusConfig(connection_string="Endpoint=sb://x/;SharedAccessKey=k")
    assert "SharedAccessKey=k" not in repr(config)


def test_azure_url_needs_connection_string(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AZURE_SERVICEBUS_CONNECTION_STRING", raising=False)
    with pytest.raises(qr.ConfigurationError, match="AZURE_SERVICEBUS_CONNECTION_STRING"):
        qr.QueueConfig.from_url("azure-servicebus://")
    monkeypatch.setenv("AZURE_SERVICEBUS_CONNECTION_STRING", "Endpoint=sb://x/;SharedAccessKey=k")
    assert qr.QueueConfig.from_url("azure-servicebus://").provider.kind == "azure-servicebus"


def test_from_env(monkeypatch: pytest.MonkeyPatch) -> None:
    config = qr.QueueConfig.from_env(
        {"QUEUE_RUNTIME_URL": "memory://x", "QUEUE_RUNTIME_DEFAULT_TIMEOUT": "2.5"}
    )
    assert config.default_timeout == timedelta(seconds=2.5)
    assert qr.QueueConfig.from_env({}).provider.kind == "memory"
    monkeypatch.setenv("QUEUE_RUNTIME_URL", "bogus://")
    with pytest.raises(qr.ConfigurationError):
        qr.create_client()


def test_create_client_does_no_io_and_needs_open() -> None:
    client = qr.create_client("memory://")
    assert isinstance(client, qr.QueueClient)
    assert "session_state" in client.capabilities


def test_create_client_with_config_and_overrides() -> None:
    client = qr.create_client(qr.QueueConfig(), default_timeout=1)
    assert isinstance(client, qr.QueueClient)
    with pytest.raises(qr.ConfigurationError):
        qr.create_client(qr.QueueConfig(), no_such_setting=1)


def test_not_a_url() -> None:
    with pytest.raises(qr.ConfigurationError):
        qr.create_client(42)  # type: ignore[arg-type]


# -- malformed URLs: a ConfigurationError, never the password ---------------------------------

SECRET = "s3cr3t-pw"
KEYS = f"access_key_id=AK&secret_access_key={SECRET}"
SB = "ns.servicebus.windows.net"


@pytest.mark.parametrize(
    "url",
    [
        # memory
        "memory://[::1",
        "memory://?max_message_size=abc",
        # sqlite
        "sqlite://[::1/q.db",
        "sqlite:///q.db?busy_timeout=abc",
        "sqlite:///q.db?busy_timeout=-1",
        "sqlite:///q.db?busy_timeout=nan",
        # postgresql, postgres
        f"postgresql://u:{SECRET}@[::1:5432/db",
        f"postgresql://u:{SECRET}@[zz]/db",
        f"postgresql://u:{SECRET}@[::1]x/db",
        f"postgresql://u:{SECRET}@::1/db",
        f"postgresql://u:{SECRET}@h]/db",
        f"postgresql://u:{SECRET}@h:99999/db",
        f"postgresql://u:{SECRET}@h:abc/db",
        f"postgresql://u:{SECRET}@h:0/db",
        f"postgresql://u:{SECRET}@h:/db",
        f"postgres://u:{SECRET}@h1:5432,h2:x/db",
        f"postgresql://u:{SECRET}/with-a-slash@h/db",  # unencoded '/': the "port" is secret
        f"postgresql://u:{SECRET}@h/db?sslmode=bogus",
        f"postgresql://u:{SECRET}@h/db?target_session_attrs=bogus",
        f"postgresql://u:{SECRET}@h/db?port=99999",
        f"postgresql://u:{SECRET}@h/db?connect_timeout=abc",
        f"postgresql://u:{SECRET}@h/db?connect_timeout=0",
        f"postgresql://u:{SECRET}@h/db?connect_timeout=inf",
        f"postgresql://u:{SECRET}@h/db?command_timeout=0",
        f"postgresql://u:{SECRET}@h/db?command_timeout=nan",
        f"postgres://u:{SECRET}@h/db?max_pool_size=abc",
        # sqs
        "sqs://[::1",
        f"sqs://u:{SECRET}@host",
        f"sqs://?{KEYS}&endpoint_url=http://[::1",
        f"sqs://?{KEYS}&endpoint_url=http://h:99999",
        f"sqs://?{KEYS}&endpoint_url=http://h:abc",
        f"sqs://?{KEYS}&endpoint_url=ftp://h",
        f"sqs://?{KEYS}&endpoint_url=nonsense",
        f"sqs://?{KEYS}&read_timeout=abc",
        f"sqs://?secret_access_key={SECRET}",
        # azure-servicebus
        "azure-servicebus://[::1",
        f"azure-servicebus://{SB}:99999",
        f"azure-servicebus://{SB}:abc",
        f"azure-servicebus://u:{SECRET}@{SB}",
        f"azure-servicebus://{SB}?auth=client_secret&client_secret={SECRET}",
    ],
)
def test_malformed_urls_are_configuration_errors_without_the_secret(url: str) -> None:
    for parse in (qr.create_client, qr.QueueConfig.from_url):
        with pytest.raises(qr.ConfigurationError) as caught:
            parse(url)
        assert SECRET not in str(caught.value) and SECRET not in repr(caught.value)
        assert caught.value.__cause__ is None or SECRET not in str(caught.value.__cause__)


def test_a_malformed_url_is_one_typed_line_on_the_command_line() -> None:
    from click.testing import CliRunner

    from queue_runtime.cli._app import cli

    url = f"postgresql://u:{SECRET}@[::1:5432/db"
    result = CliRunner().invoke(cli, ["--url", url, "queues", "stats", "q"])
    assert result.exit_code == 1
    assert "error: ConfigurationError: malformed postgresql:// URL" in result.output
    assert "internal" not in result.output and SECRET not in result.output


@pytest.mark.parametrize(
    "url",
    [
        f"postgresql://u:{SECRET}@db.internal:6432/jobs?sslmode=require",
        f"postgresql://u:{SECRET}@[::1]:5432/db",
        f"postgresql://u:{SECRET}@h1:5432,h2:5433/db?target_session_attrs=read-write",
        f"postgresql://u:{SECRET}@/db?host=/var/run/postgresql&port=5433",
        f"postgres://u:{SECRET}@h/db?schema_name=jobs&connect_timeout=3",
        f"postgres://u:{SECRET}@h/db?command_timeout=2&connect_timeout=3",
        f"sqs://?{KEYS}&endpoint_url=http://[::1]:4566",
        f"sqs://?{KEYS}&endpoint_url=https://sqs.eu-west-1.amazonaws.com",
        f"azure-servicebus://{SB}:5671",
        "azure-servicebus://[::1]:5672?use_development_emulator=true",
    ],
)
def test_well_formed_urls_keep_their_secret_out_of_the_repr(url: str) -> None:
    config = qr.QueueConfig.from_url(url)
    assert SECRET not in repr(config) and SECRET not in str(config)
    assert SECRET not in repr(qr.create_client(url))


def test_postgres_query_parameters_reach_the_driver_encoded() -> None:
    """A value with '&' or '=' (decoded from the URL) is encoded again in the DSN, not split
    into parameters the driver would misread."""
    url = "postgresql://u@h/db?password=a%26b%3Dc&options=-c%20search_path%3Dx"
    config = qr.QueueConfig.from_url(url).provider
    assert isinstance(config, qr.PostgresConfig)
    assert config.dsn.get_secret_value() == (
        "postgresql://u@h/db?password=a%26b%3Dc&options=-c+search_path%3Dx"
    )


def test_a_dsn_is_checked_when_the_config_is_made_directly() -> None:
    for dsn in (
        f"postgresql://u:{SECRET}@h:abc/db",
        f"mysql://u:{SECRET}@h/db",
        f"postgresql://u:{SECRET}@h/db?connect_timeout=3",  # a field of the config
        f"postgresql://u:{SECRET}@h/db?novalue",
    ):
        with pytest.raises(qr.ConfigurationError) as caught:
            qr.PostgresConfig(dsn=dsn)
        assert SECRET not in str(caught.value)


# -- timeouts: plain seconds everywhere, the older forms still read ---------------------------


@pytest.mark.parametrize(
    ("url", "field", "seconds"),
    [
        ("sqlite:///q.db?busy_timeout=5", "busy_timeout", 5),
        ("sqlite:///q.db?busy_timeout=0.25", "busy_timeout", 0.25),
        ("sqlite:///q.db?busy_timeout=PT5S", "busy_timeout", 5),  # ISO 8601, as before
        ("sqlite:///q.db?busy_timeout=00:00:05", "busy_timeout", 5),  # [HH:]MM:SS, as before
        ("postgresql://h/db?connect_timeout=3", "connect_timeout", 3),
        ("postgresql://h/db?connect_timeout=PT3S", "connect_timeout", 3),
        ("postgresql://h/db?connect_timeout=00:01:00", "connect_timeout", 60),
        ("postgresql://h/db?command_timeout=2.5", "command_timeout", 2.5),
        ("postgresql://h/db?command_timeout=00:01:00", "command_timeout", 60),
        ("sqs://?connect_timeout=3", "connect_timeout", 3),
        ("sqs://?read_timeout=4.5", "read_timeout", 4.5),
    ],
)
def test_url_timeouts_take_plain_seconds(url: str, field: str, seconds: float) -> None:
    value = getattr(qr.QueueConfig.from_url(url).provider, field)
    assert (value.total_seconds() if isinstance(value, timedelta) else value) == seconds


def test_timeout_defaults_and_the_default_timeout_in_seconds() -> None:
    postgres = qr.PostgresConfig(dsn="postgresql://h/db")
    assert postgres.connect_timeout == timedelta(seconds=10)
    assert postgres.command_timeout == timedelta(seconds=15)
    assert qr.QueueConfig.from_url("memory://", default_timeout="2.5").default_timeout == (
        timedelta(seconds=2.5)
    )
    assert qr.PostgresConfig(dsn="postgresql://h/db", command_timeout=1).command_timeout == (
        timedelta(seconds=1)
    )
