"""The adapter over AMQP against our emulator: what the contract suite does not pin down on its
own -- batches sized by the SDK, native fields, holder-only settlement, spent receipts,
cached links, administration and logging."""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

import queue_runtime as qr

pytestmark = pytest.mark.asyncio


async def test_batches_split_when_the_sdk_batch_is_full(client: Any, queue: qr.QueueName) -> None:
    big = 100 * 1024  # three of these do not fit one 256 KiB batch
    messages = [qr.Message(bytes([i]) * big) for i in range(3)] + [qr.Message(b"small")]
    ids = await client.send_messages(queue, messages)
    assert ids == [m.message_id for m in messages]
    got: list[qr.ReceivedMessage] = []
    while len(got) < 4:
        batch = await client.receive_messages(queue, max_messages=4, timeout=3)
        assert batch, "messages went missing"
        got.extend(batch)
    assert sorted(m.message_id for m in got) == sorted(ids)
    assert [m.sequence_number for m in got] == sorted(m.sequence_number for m in got)
    for message in got:
        await client.complete_message(message)


async def test_a_message_too_big_for_a_batch_sends_nothing(
    client: Any, queue: qr.QueueName
) -> None:
    limit = client.capabilities.max_message_size
    # 4 bytes each in our count, twice that on the wire (AMQP type and length bytes)
    many = {f"{i:04x}": "" for i in range(limit // 5)}
    with pytest.raises(qr.ValidationError):
        await client.send_messages(queue, [qr.Message(b"ok"), qr.Message(b"x", attributes=many)])
    with pytest.raises(qr.ValidationError):
        await client.send_message(queue, qr.Message(b"x", attributes=many))
    assert await client.receive_message(queue, timeout=0.3) is None


async def test_native_fields_arrive(client: Any, queue: qr.QueueName) -> None:
    sent = qr.Message(
        b"\x00body",
        attributes={"event": "push"},
        correlation_id="c-1",
        time_to_live=timedelta(minutes=5),
    )
    await client.send_message(queue, sent)
    got = await client.receive_message(queue, timeout=3)
    assert got is not None
    assert (got.body, got.correlation_id, got.delivery_count) == (b"\x00body", "c-1", 1)
    assert got.sequence_number is not None and got.locked_until is not None
    assert abs((got.enqueued_at - datetime.now(UTC)).total_seconds()) < 30
    await client.abandon_message(got)
    again = await client.receive_message(queue, timeout=3)
    assert again is not None and again.delivery_count == 2
    await client.dead_letter_message(again, reason="bad", description="very bad")
    dead = await client.receive_message(queue.dead_letter, timeout=3)
    assert dead is not None
    assert (dead.dead_letter_reason, dead.dead_letter_description) == ("bad", "very bad")
    assert dead.message_id == sent.message_id
    await client.complete_message(dead)


async def test_session_messages_settle_only_through_their_session(
    client: Any, session_queue: qr.QueueName
) -> None:
    await client.send_message(session_queue, qr.Message(b"s", session_id="a"))
    async with await client.accept_session(session_queue, "a") as session:
        got = await session.receive_message(timeout=3)
        assert got is not None
        for settle in (client.complete_message, client.abandon_message, client.renew_message_lock):
            with pytest.raises(qr.ValidationError):
                await settle(got)
        with pytest.raises(qr.ValidationError):
            await client.dead_letter_message(got)
        async with await client.accept_session(session_queue, "b") as other:
            with pytest.raises(qr.ValidationError):
                await other.complete_message(got)
        await session.complete_message(got)


async def test_a_cancelled_settlement_spends_the_receipt(client: Any, queue: qr.QueueName) -> None:
    await client.send_message(queue, qr.Message(b"x"))
    got = await client.receive_message(queue, timeout=3)
    assert got is not None
    task = asyncio.ensure_future(client.complete_message(got))
    await asyncio.sleep(0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    # it may or may not have completed: never settle it twice
    with pytest.raises(qr.MessageLockLost):
        await client.complete_message(got)
    with pytest.raises(qr.MessageLockLost):
        await client.abandon_message(got)


async def test_next_available_accept_honours_its_timeout(
    client: Any, session_queue: qr.QueueName
) -> None:
    loop = asyncio.get_running_loop()
    for timeout in (0.3, 1.5):
        started = loop.time()
        assert await client.accept_session(session_queue, timeout=timeout) is None
        took = loop.time() - started
        assert timeout * 0.8 <= took < timeout + 2.0


async def test_a_held_session_is_refused_at_once_across_clients(
    client: Any, make_client: Any, session_queue: qr.QueueName
) -> None:
    async with await client.accept_session(session_queue, "held"), make_client() as other:
        loop = asyncio.get_running_loop()
        started = loop.time()
        with pytest.raises(qr.SessionLocked) as caught:
            await other.accept_session(session_queue, "held")
        assert caught.value.retryable
        assert loop.time() - started < 2.0


async def test_links_are_cached_and_closed_with_the_client(make_client: Any, new_name: Any) -> None:
    client = make_client()
    async with client:
        name = new_name()
        await client.create_queue(name)
        for _ in range(3):
            await client.send_message(name, qr.Message(b"x"))
            got = await client.receive_message(name, timeout=3)
            assert got is not None
            await client.complete_message(got)
        assert len(client._outboxes) == 1 and len(client._receivers) == 1
        links = [o.link.handler for o in client._outboxes.values()]
        links += [link.handler for link in client._receivers]
        await client.delete_queue(name)
    assert all(link._shutdown.is_set() for link in links)


async def test_create_queue_is_idempotent_and_names_differences(client: Any, new_name: Any) -> None:
    name = new_name()
    await client.create_queue(name, requires_session=True, max_delivery_count=5, lock_duration=3)
    await client.create_queue(name, requires_session=True, max_delivery_count=5, lock_duration=3)
    with pytest.raises(qr.QueueAlreadyExists) as caught:
        await client.create_queue(name, max_delivery_count=7, lock_duration=3)
    assert "max_delivery_count: 7 != 5" in str(caught.value)
    assert "requires_session" in str(caught.value)
    await client.delete_queue(name)
    with pytest.raises(qr.QueueNotFound):
        await client.delete_queue(name)
    with pytest.raises(qr.QueueNotFound):
        await client.send_message(name, qr.Message(b"x"))


async def test_a_queue_default_ttl_is_read_back_by_another_client(
    make_client: Any, new_name: Any
) -> None:
    """The default TTL lives in the entity's UserMetadata: a second client sees it (create is
    idempotent with it, and its sends carry it)."""
    name = new_name()
    async with make_client() as first, make_client() as second:
        await first.create_queue(name, default_message_ttl=60)
        await second.create_queue(name, default_message_ttl=60)  # equal settings: no error
        with pytest.raises(qr.QueueAlreadyExists) as caught:
            await second.create_queue(name, default_message_ttl=30)
        assert "default_message_ttl: 30.0 != 60.0" in str(caught.value)
        await second.send_message(name, qr.Message(b"x"))
        got = await first.receive_message(name, timeout=3)
        assert got is not None and got.message.time_to_live == timedelta(seconds=60)
        await first.complete_message(got)
        await first.delete_queue(name)


async def test_provider_calls_log_ids_at_debug(
    client: Any, queue: qr.QueueName, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="queue_runtime.adapters.servicebus")
    sent = qr.Message(b"secret body", attributes={"token": "hidden"})
    await client.send_message(queue, sent)
    got = await client.receive_message(queue, timeout=3)
    assert got is not None
    await client.complete_message(got)
    text = caplog.text
    assert sent.message_id in text and str(queue) in text
    assert "secret body" not in text and "hidden" not in text


async def test_statistics_come_from_the_runtime_properties(
    client: Any, queue: qr.QueueName
) -> None:
    later = datetime.now(UTC) + timedelta(minutes=5)
    await client.send_messages(
        queue, [qr.Message(b"a"), qr.Message(b"b"), qr.Message(b"c", scheduled_enqueue_time=later)]
    )
    got = await client.receive_message(queue, timeout=3)
    assert got is not None
    await client.dead_letter_message(got)
    stats = await client.get_queue_statistics(queue)
    assert (stats.active, stats.locked, stats.scheduled, stats.dead_letter) == (1, None, 1, 1)
    with pytest.raises(qr.QueueNotFound):
        await client.get_queue_statistics("no-such-queue")


async def test_a_token_credential_reaches_the_emulator(emulator: Any, new_name: Any) -> None:
    from azure.core.credentials import AccessToken

    from queue_runtime.adapters.servicebus import ServiceBusQueueClient

    class StaticCredential:
        """A synchronous TokenCredential (the emulator takes any token)."""

        def __init__(self) -> None:
            self.scopes: set[str] = set()

        def get_token(self, *scopes: str, **kwargs: Any) -> AccessToken:
            self.scopes.update(scopes)
            return AccessToken("test-token", 2**31)

    credential = StaticCredential()
    config = qr.AzureServiceBusConfig(
        namespace=f"127.0.0.1:{emulator.port}",
        credential=credential,
        use_development_emulator=True,
        admin_endpoint=emulator.admin_endpoint,
    )
    async with ServiceBusQueueClient(config) as client:
        name = new_name()
        await client.create_queue(name)
        await client.send_message(name, qr.Message(b"by token"))
        got = await client.receive_message(name, timeout=3)
        assert got is not None and got.body == b"by token"
        await client.complete_message(got)
        await client.delete_queue(name)
    assert credential.scopes  # the SDK asked the credential, for AMQP and for HTTP


async def test_a_wrong_key_is_a_configuration_error_without_the_key(
    caplog: pytest.LogCaptureFixture,
) -> None:
    from queue_runtime.adapters.servicebus import ServiceBusQueueClient
    from queue_runtime.testing.servicebus_emulator import running_emulator

    caplog.set_level(logging.DEBUG)  # every logger: ours, the SDK's, the emulator's
    with running_emulator(sas_key=("app", "right-key"), admin_port=0) as checked:
        wrong = checked.connection_string.replace("right-key", "wrong-key-c2VjcmV0")
        config = qr.AzureServiceBusConfig(
            connection_string=wrong, admin_endpoint=checked.admin_endpoint, retry_total=0
        )
        checked.create_queue("guarded")
        async with ServiceBusQueueClient(config) as client:
            with pytest.raises(qr.ConfigurationError) as caught:
                await client.receive_message("guarded", timeout=0)
        assert "wrong-key-c2VjcmV0" not in str(caught.value)
        assert not caught.value.retryable
    assert caplog.records and "wrong-key-c2VjcmV0" not in caplog.text


async def test_without_the_manage_right_the_service_checks(
    client: Any, session_queue: qr.QueueName, queue: qr.QueueName
) -> None:
    """A Send/Listen-only key cannot read queue settings: the adapter sends and receives
    anyway and the service refuses what does not fit (here: our emulator)."""
    from unittest import mock

    from queue_runtime.adapters.servicebus._administration import Administration

    refused = mock.AsyncMock(side_effect=qr.ConfigurationError("get queue: 401 Unauthorized"))
    with mock.patch.object(Administration, "settings", new=refused):
        client._settings.clear()
        await client.send_message(queue, qr.Message(b"plain"))
        got = await client.receive_message(queue, timeout=3)
        assert got is not None
        await client.complete_message(got)
        await client.send_message(session_queue, qr.Message(b"s", session_id="a"))
        async with await client.accept_session(session_queue, timeout=3) as session:
            got = await session.receive_message(timeout=3)
            assert got is not None and got.body == b"s"
            await session.complete_message(got)


async def test_the_connection_string_alone_reaches_the_emulator(
    emulator: Any, new_name: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """As a user starts it: ``azure-servicebus://`` with AZURE_SERVICEBUS_CONNECTION_STRING;
    queues are managed on the same port (the emulator answers its ATOM API there too)."""
    monkeypatch.setenv("AZURE_SERVICEBUS_CONNECTION_STRING", emulator.connection_string)
    async with qr.create_client("azure-servicebus://") as client:
        name = new_name()
        await client.create_queue(name, requires_session=True)
        await client.send_message(name, qr.Message(b"hi", session_id="s"))
        async with await client.accept_session(name, timeout=3) as session:
            got = await session.receive_message(timeout=3)
            assert got is not None and got.body == b"hi"
            await session.complete_message(got)
        await client.delete_queue(name)
