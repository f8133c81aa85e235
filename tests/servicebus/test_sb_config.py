"""Reaching Service Bus: the ``azure-servicebus://`` URL forms, `AzureServiceBusConfig`'s auth
modes and TokenCredential objects; secrets never show in reprs, logs or errors."""

from __future__ import annotations

import logging
from typing import Any

import pytest

import queue_runtime as qr
from queue_runtime.adapters.servicebus import ServiceBusQueueClient
from queue_runtime.adapters.servicebus._connection import (
    AsyncCredential,
    _credential,
    connect,
    endpoint_of,
)

SECRET = "c2VjcmV0LWtleS1uZXZlci1zaG93bg=="
CONN = f"Endpoint=sb://ns.servicebus.windows.net/;SharedAccessKeyName=RootManage;SharedAccessKey={SECRET}"
EMULATOR = f"Endpoint=sb://127.0.0.1:5999;SharedAccessKeyName=k;SharedAccessKey={SECRET};UseDevelopmentEmulator=true"


class StaticCredential:
    """A synchronous TokenCredential that hands out one fixed token."""

    def __init__(self) -> None:
        self.scopes: list[tuple[str, ...]] = []

    def get_token(self, *scopes: str, **kwargs: Any) -> Any:
        from azure.core.credentials import AccessToken

        self.scopes.append(scopes)
        return AccessToken("token-" + SECRET, 2**31)


def test_the_url_without_host_reads_the_connection_string(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("AZURE_SERVICEBUS_CONNECTION_STRING", CONN)
    client = qr.create_client("azure-servicebus://")
    assert isinstance(client, ServiceBusQueueClient)
    assert client.config.auth == "connection_string"
    assert "ns.servicebus.windows.net" in repr(client)
    assert SECRET not in repr(client) and SECRET not in repr(client.config)


def test_the_url_without_host_needs_the_connection_string(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("AZURE_SERVICEBUS_CONNECTION_STRING", raising=False)
    with pytest.raises(qr.ConfigurationError, match="AZURE_SERVICEBUS_CONNECTION_STRING"):
        qr.create_client("azure-servicebus://")


def test_the_url_with_a_namespace_uses_the_default_credential() -> None:
    client = qr.create_client("azure-servicebus://orders.servicebus.windows.net")
    assert isinstance(client, ServiceBusQueueClient)
    assert client.config.auth == "default"
    assert endpoint_of(client.config).namespace == "orders.servicebus.windows.net"
    credential, owned = _credential(client.config)
    assert owned and isinstance(credential, AsyncCredential)
    assert "DefaultAzureCredential" in repr(credential)


def test_a_short_namespace_gets_the_public_suffix() -> None:
    config = qr.AzureServiceBusConfig(namespace="orders", auth="default")
    assert endpoint_of(config).namespace == "orders.servicebus.windows.net"


def test_the_emulator_connection_string_keeps_its_port_and_drops_tls() -> None:
    endpoint = endpoint_of(qr.AzureServiceBusConfig(connection_string=EMULATOR))
    assert (endpoint.namespace, endpoint.emulator) == ("127.0.0.1:5999", True)


@pytest.mark.parametrize(
    ("settings", "kind"),
    [
        ({"auth": "managed_identity", "client_id": "cid"}, "ManagedIdentityCredential"),
        ({"auth": "managed_identity"}, "ManagedIdentityCredential"),
        (
            {"auth": "client_secret", "tenant_id": "t", "client_id": "c", "client_secret": SECRET},
            "ClientSecretCredential",
        ),
    ],
)
def test_identity_modes_build_their_credential(settings: dict[str, Any], kind: str) -> None:
    config = qr.AzureServiceBusConfig(namespace="ns.servicebus.windows.net", **settings)
    credential, owned = _credential(config)
    assert owned and kind in repr(credential)
    assert SECRET not in repr(config) and SECRET not in str(config.model_dump())


def test_a_credential_object_implies_credential_auth() -> None:
    given = StaticCredential()
    config = qr.AzureServiceBusConfig(namespace="ns.servicebus.windows.net", credential=given)
    assert config.auth == "credential"
    assert "StaticCredential" not in repr(config)
    credential, owned = _credential(config)
    assert not owned and isinstance(credential, AsyncCredential)


@pytest.mark.asyncio
async def test_a_sync_credential_is_awaited_off_the_loop() -> None:
    given = StaticCredential()
    token = await AsyncCredential(given).get_token("https://servicebus.azure.net/.default")
    assert token.token.startswith("token-")
    assert given.scopes == [("https://servicebus.azure.net/.default",)]


@pytest.mark.parametrize(
    "settings",
    [
        {"auth": "connection_string"},
        {"auth": "default"},
        {"auth": "client_secret", "namespace": "ns", "tenant_id": "t"},
        {"auth": "credential", "namespace": "ns"},
        {"auth": "credential", "namespace": "ns", "credential": object()},
        {"auth": "default", "namespace": "ns", "credential": StaticCredential()},
        {"namespace": "ns", "auth": "magic"},
        {"connection_string": CONN, "typo": 1},
    ],
)
def test_incomplete_configs_are_configuration_errors(settings: dict[str, Any]) -> None:
    with pytest.raises(qr.ConfigurationError) as caught:
        qr.AzureServiceBusConfig(**settings)
    assert SECRET not in str(caught.value)


def test_a_malformed_connection_string_is_a_configuration_error() -> None:
    config = qr.AzureServiceBusConfig(connection_string=f"SharedAccessKey={SECRET}")
    with pytest.raises(qr.ConfigurationError) as caught:
        ServiceBusQueueClient(config)
    assert SECRET not in str(caught.value)
    config = qr.AzureServiceBusConfig(
        connection_string=f"Endpoint=sb://ns.servicebus.windows.net/;SharedAccessKey={SECRET}"
    )
    with pytest.raises(qr.ConfigurationError) as caught:
        connect(config)
    assert SECRET not in str(caught.value)
    assert SECRET not in repr(caught.value.__cause__)


@pytest.mark.asyncio
async def test_secrets_never_reach_the_logs(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    client = ServiceBusQueueClient(qr.AzureServiceBusConfig(connection_string=CONN))
    async with client:
        assert SECRET not in repr(client)
    assert SECRET not in caplog.text


@pytest.mark.asyncio
async def test_a_client_is_open_only_between_open_and_aclose() -> None:
    client = ServiceBusQueueClient(qr.AzureServiceBusConfig(connection_string=CONN))
    with pytest.raises(qr.ClientClosed):
        await client.send_message("q", qr.Message(b"x"))
    async with client:
        pass
    with pytest.raises(qr.ClientClosed):
        await client.receive_message("q", timeout=0)
    with pytest.raises(qr.ClientClosed):
        await client.open()


def test_where_queues_are_managed() -> None:
    from queue_runtime.adapters.servicebus._connection import admin_endpoint_of

    emulator = qr.AzureServiceBusConfig(connection_string=EMULATOR)
    assert admin_endpoint_of(emulator) is None  # the endpoint itself
    told = qr.AzureServiceBusConfig(connection_string=EMULATOR, admin_endpoint="http://h:7/")
    assert admin_endpoint_of(told) == "h:7"


def test_the_url_takes_settings_as_query_parameters(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AZURE_SERVICEBUS_CONNECTION_STRING", EMULATOR)
    client = qr.create_client("azure-servicebus://?admin_endpoint=127.0.0.1:5999")
    assert isinstance(client, ServiceBusQueueClient)
    assert client.config.admin_endpoint == "127.0.0.1:5999"
