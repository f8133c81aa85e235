"""Queue management through the unmodified async ``ServiceBusAdministrationClient``.

Reference: the Service Bus REST API ("Create Queue", "Get Entity", "Delete Queue") and the
QueueDescription entity on learn.microsoft.com: PUT creates (409 if it exists), GET describes,
DELETE removes; settings are ISO 8601 durations and booleans.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from datetime import timedelta

import pytest
import pytest_asyncio
from azure.core.exceptions import ResourceExistsError, ResourceNotFoundError
from azure.servicebus import NEXT_AVAILABLE_SESSION, ServiceBusMessage
from azure.servicebus.aio import ServiceBusClient
from azure.servicebus.aio.management import ServiceBusAdministrationClient

from queue_runtime.testing.servicebus_emulator import (
    ServiceBusEmulator,
    plain_http_transport,
    running_emulator,
)

pytestmark = pytest.mark.asyncio


@pytest.fixture(scope="module")
def admin_emulator() -> Iterator[ServiceBusEmulator]:
    with running_emulator() as emulator:
        yield emulator


@pytest_asyncio.fixture
async def admin(
    admin_emulator: ServiceBusEmulator,
) -> AsyncIterator[ServiceBusAdministrationClient]:
    text = admin_emulator.admin_connection_string
    assert text is not None
    async with ServiceBusAdministrationClient.from_connection_string(
        text, transport=plain_http_transport()
    ) as client:
        yield client


async def test_create_describe_and_delete(
    admin: ServiceBusAdministrationClient, admin_emulator: ServiceBusEmulator
) -> None:
    created = await admin.create_queue(
        "orders",
        requires_session=True,
        max_delivery_count=3,
        lock_duration=timedelta(seconds=5),
        default_message_time_to_live=timedelta(minutes=10),
        dead_lettering_on_message_expiration=True,
        requires_duplicate_detection=True,
    )
    assert created.name == "orders"
    assert created.requires_session is True
    assert created.max_delivery_count == 3
    assert created.lock_duration == timedelta(seconds=5)
    assert created.default_message_time_to_live == timedelta(minutes=10)
    assert created.dead_lettering_on_message_expiration is True
    assert created.requires_duplicate_detection is True
    options = admin_emulator.queue_options("orders")
    assert options is not None and options.requires_session and options.lock_duration == 5
    described = await admin.get_queue("orders")
    assert described.max_delivery_count == 3 and described.requires_session
    with pytest.raises(ResourceExistsError):
        await admin.create_queue("orders")
    names = [q.name async for q in admin.list_queues()]
    assert "orders" in names
    await admin.delete_queue("orders")
    with pytest.raises(ResourceNotFoundError):
        await admin.get_queue("orders")
    with pytest.raises(ResourceNotFoundError):
        await admin.delete_queue("orders")


async def test_user_metadata_is_kept(admin: ServiceBusAdministrationClient) -> None:
    created = await admin.create_queue("annotated", user_metadata="owner=<billing> & co")
    assert created.user_metadata == "owner=<billing> & co"
    assert (await admin.get_queue("annotated")).user_metadata == "owner=<billing> & co"
    plain = await admin.create_queue("unannotated")
    assert plain.user_metadata is None
    await admin.delete_queue("annotated")
    await admin.delete_queue("unannotated")


async def test_defaults_are_the_services(admin: ServiceBusAdministrationClient) -> None:
    created = await admin.create_queue("plain-defaults")
    assert created.requires_session is False
    assert created.max_delivery_count == 10
    assert created.lock_duration == timedelta(minutes=1)
    assert created.dead_lettering_on_message_expiration is False
    assert created.default_message_time_to_live is not None
    assert created.default_message_time_to_live > timedelta(days=365 * 1000)
    await admin.delete_queue("plain-defaults")


async def test_update_and_runtime_properties(
    admin: ServiceBusAdministrationClient, admin_emulator: ServiceBusEmulator
) -> None:
    properties = await admin.create_queue("counted")
    properties.max_delivery_count = 4
    await admin.update_queue(properties)
    assert (await admin.get_queue("counted")).max_delivery_count == 4
    async with (
        ServiceBusClient.from_connection_string(admin_emulator.connection_string) as client,
        client.get_queue_sender("counted") as sender,
    ):
        await sender.send_messages([ServiceBusMessage("a"), ServiceBusMessage("b")])
    runtime = await admin.get_queue_runtime_properties("counted")
    assert runtime.active_message_count == 2
    assert runtime.dead_letter_message_count == 0
    await admin.delete_queue("counted")


async def test_a_queue_created_over_http_carries_messages(
    admin: ServiceBusAdministrationClient, admin_emulator: ServiceBusEmulator
) -> None:
    await admin.create_queue("via-http", requires_session=True, lock_duration=timedelta(seconds=5))
    async with ServiceBusClient.from_connection_string(admin_emulator.connection_string) as client:
        async with client.get_queue_sender("via-http") as sender:
            await sender.send_messages(ServiceBusMessage("hello", session_id="s"))
        async with client.get_queue_receiver(
            "via-http", session_id=NEXT_AVAILABLE_SESSION, max_wait_time=5
        ) as receiver:
            [message] = await receiver.receive_messages(max_wait_time=5)
            assert str(message) == "hello" and message.session_id == "s"
            await receiver.complete_message(message)
    await admin.delete_queue("via-http")


async def test_the_amqp_port_serves_the_management_api_too(
    admin_emulator: ServiceBusEmulator,
) -> None:
    """The emulator tells HTTP from AMQP by a connection's first bytes, so the connection
    string that the messaging client uses is enough for the administration client."""
    async with ServiceBusAdministrationClient.from_connection_string(
        admin_emulator.connection_string, transport=plain_http_transport()
    ) as admin:
        await admin.create_queue("one-port", max_delivery_count=2)
        assert (await admin.get_queue("one-port")).max_delivery_count == 2
        await admin.delete_queue("one-port")
    assert "one-port" not in admin_emulator.queue_names()
