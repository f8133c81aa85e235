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
