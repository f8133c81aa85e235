"""Issue 6 on SQS: every outcome known (cancelled and lost calls), every input checked, the
holder-only settlement rule, endpoints that hang, honest sizes, and what the logs carry."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
import pytest_asyncio
from sqs_helpers import (
    KEYS,
    REGION,
    HungEndpoint,
    LossyProxy,
    held_request,
    url_of,
    worst_case_message,
)

import queue_runtime as qr
from queue_runtime.adapters.sqs import SqsQueueClient
from queue_runtime.adapters.sqs._codec import encode

pytestmark = pytest.mark.asyncio


@pytest.fixture
def lossy(moto_server: str) -> Iterator[LossyProxy]:
    proxy = LossyProxy(moto_server, set())
    yield proxy
    proxy.close()


@pytest_asyncio.fixture
async def lossy_client(lossy: LossyProxy) -> AsyncIterator[SqsQueueClient]:
    """A client reaching moto through `LossyProxy`, without retries (a retry would hide the
    lost answer)."""
    config = qr.AwsSqsConfig(region=REGION, endpoint_url=lossy.url, max_attempts=1, **KEYS)
    async with SqsQueueClient(config, default_timeout=5) as client:
        yield client


# -- 1. a cancelled settlement ----------------------------------------------------------------


async def test_a_cancelled_abandon_spends_the_receipt(
    client: SqsQueueClient, boto: Any, name: qr.QueueName
) -> None:
    await client.create_queue(name, lock_duration=10)
    await client.send_message(name, qr.Message(b"x"))
    got = await client.receive_message(name, timeout=5)
    assert got is not None
    with held_request(client, "ChangeMessageVisibility") as release:
        abandon = asyncio.ensure_future(client.abandon_message(got))
        await release(abandon)  # cancelled on its way: SQS makes the message visible
    # another consumer (another process: raw boto3) receives it
    raw = boto.receive_message(QueueUrl=url_of(boto, str(name)), WaitTimeSeconds=5)
    assert len(raw["Messages"]) == 1
    # the first holder's receipt is spent: no second holder
    with pytest.raises(qr.MessageLockLost):
        await client.complete_message(got)
    attributes = boto.get_queue_attributes(
        QueueUrl=url_of(boto, str(name)), AttributeNames=["ApproximateNumberOfMessagesNotVisible"]
    )["Attributes"]
    assert attributes["ApproximateNumberOfMessagesNotVisible"] == "1"  # still theirs
    await client.delete_queue(name)


async def test_a_cancelled_dead_lettering_is_not_left_half_way(
    client: SqsQueueClient, name: qr.QueueName
) -> None:
    await client.create_queue(name, lock_duration=10)
    await client.send_message(name, qr.Message(b"x"))
    got = await client.receive_message(name, timeout=5)
    assert got is not None
    with held_request(client, "SendMessage") as release:  # the send to the dead-letter queue
        moving = asyncio.ensure_future(client.dead_letter_message(got, reason="bad"))
        await release(moving)  # cancelled between the send and the delete
    with pytest.raises(qr.MessageLockLost):  # being settled, then settled
        await client.complete_message(got)
    dead = await client.receive_message(qr.QueueName(name).dead_letter, timeout=5)
    assert dead is not None and dead.dead_letter_reason == "bad"
    await client.complete_message(dead)
    assert await client.receive_message(name, timeout=0) is None  # the delete ran too
    await client.delete_queue(name)


async def test_a_lost_settlement_reply_spends_the_receipt(
    lossy_client: SqsQueueClient, lossy: LossyProxy, name: qr.QueueName
) -> None:
    await lossy_client.create_queue(name, lock_duration=10)
    await lossy_client.send_message(name, qr.Message(b"x"))
    got = await lossy_client.receive_message(name, timeout=5)
    assert got is not None
    lossy.lose.add("ChangeMessageVisibility")
    with pytest.raises(qr.ConnectionError) as caught:
        await lossy_client.abandon_message(got)
    assert caught.value.outcome_unknown and "outcome unknown" in str(caught.value)
    lossy.lose.clear()
    with pytest.raises(qr.MessageLockLost):
        await lossy_client.complete_message(got)
    again = await lossy_client.receive_message(name, timeout=5)  # the abandon did happen
    assert again is not None and again.message_id == got.message_id
    await lossy_client.complete_message(again)
    await lossy_client.delete_queue(name)


# -- 2. send_messages takes sequences only ----------------------------------------------------


async def test_send_messages_refuses_a_generator_before_sending(
    client: SqsQueueClient, name: qr.QueueName
) -> None:
    await client.create_queue(name)
    messages = (qr.Message(f"m{i}".encode()) for i in range(3))
    with pytest.raises(qr.ValidationError, match="sequence"):
        await client.send_messages(name, messages)  # type: ignore[arg-type]
    assert await client.receive_message(name, timeout=0) is None  # nothing sent
    await client.delete_queue(name)


# -- 3. create_queue asks SQS ------------------------------------------------------------------


async def test_create_queue_recreates_a_queue_another_client_deleted(
    client: SqsQueueClient, other_client: SqsQueueClient, boto: Any, name: qr.QueueName
) -> None:
    await client.create_queue(name)
    await other_client.delete_queue(name)
    await client.create_queue(name)  # not answered from the cache: the queue exists again
    assert url_of(boto, str(name))
    assert url_of(boto, f"{name}-dlq")
    await client.send_message(name, qr.Message(b"x"))
    got = await client.receive_message(name, timeout=5)
    assert got is not None
    await client.complete_message(got)
    await client.delete_queue(name)


# -- 4. a session's messages are settled through that session only ----------------------------


async def test_a_session_message_is_settled_only_through_its_session(
    client: SqsQueueClient, name: qr.QueueName
) -> None:
    await client.create_queue(name, requires_session=True)
    await client.send_messages(name, [qr.Message(b"a", session_id="s"), qr.Message(b"b", "s")])
    session = await client.accept_session(name, "s")
    assert session is not None
    async with session:
        got = await session.receive_messages(max_messages=2, timeout=5)
        assert [m.body for m in got] == [b"a", b"b"]
        first = got[0]
        for settle in (
            client.complete_message,
            client.abandon_message,
            client.dead_letter_message,
            client.renew_message_lock,
        ):
            with pytest.raises(qr.ValidationError, match="session"):
                await settle(first)
        for settle_many in (client.complete_messages, client.abandon_messages):
            with pytest.raises(qr.ValidationError, match="session"):
                await settle_many(got)
        await session.complete_messages(got)  # the holder may
    await client.delete_queue(name)


# -- 5. an endpoint that never answers ---------------------------------------------------------


async def test_a_hung_endpoint_is_a_retryable_timeout() -> None:
    hung = HungEndpoint()
    url = (
        f"sqs://?region={REGION}&endpoint_url={hung.url}&read_timeout=0.5&max_attempts=2"
        "&connect_timeout=1&access_key_id=testing&secret_access_key=testing"
    )
    config = qr.QueueConfig.from_url(url)
    provider = config.provider
    assert isinstance(provider, qr.AwsSqsConfig)
    assert (provider.read_timeout, provider.max_attempts) == (0.5, 2)
    try:
        async with SqsQueueClient(provider) as client:
            with pytest.raises(qr.TimeoutError) as caught:
                await client.create_queue("hung")
            assert caught.value.retryable
    finally:
        hung.close()


async def test_the_default_timeouts_surface_a_dead_endpoint_within_a_minute() -> None:
    config = qr.AwsSqsConfig()
    # botocore's standard mode waits at most 1 s, then 2 s between attempts
    worst = config.max_attempts * (config.connect_timeout + config.read_timeout) + 3
    assert worst < 60
    with pytest.raises(qr.ConfigurationError):
        qr.AwsSqsConfig(read_timeout=0)
    with pytest.raises(qr.ConfigurationError):
        qr.AwsSqsConfig(max_attempts=0)


async def test_a_long_poll_outlasts_the_read_timeout(
    sqs_config: qr.AwsSqsConfig, name: qr.QueueName
) -> None:
    config = sqs_config.model_copy(update={"read_timeout": 1.0})
    async with SqsQueueClient(config) as client:
        await client.create_queue(name)
        # a 2 s long poll on a client that waits 1 s for other answers
        assert await client.receive_message(name, timeout=2.5) is None
        await client.delete_queue(name)


# -- 6. durations are finite -------------------------------------------------------------------


@pytest.mark.parametrize(
    "settings",
    [
        {"default_message_ttl": float("nan")},
        {"default_message_ttl": float("inf")},
        {"lock_duration": float("nan")},
        {"lock_duration": float("inf")},
    ],
)
async def test_non_finite_durations_are_refused(
    client: SqsQueueClient, boto: Any, name: qr.QueueName, settings: dict[str, float]
) -> None:
    with pytest.raises(qr.ValidationError):
        await client.create_queue(name, **settings)  # type: ignore[arg-type]
    assert not [u for u in boto.list_queues().get("QueueUrls", []) if str(name) in u]
    with pytest.raises(qr.ValidationError):
        SqsQueueClient(default_timeout=float("nan"))


# -- 7. lost replies of sends ------------------------------------------------------------------


async def test_a_lost_batch_reply_is_an_unknown_outcome(
    lossy_client: SqsQueueClient, lossy: LossyProxy, boto: Any, name: qr.QueueName
) -> None:
    await lossy_client.create_queue(name)
    messages = [qr.Message(f"m{i}".encode()) for i in range(15)]
    lossy.lose.add("SendMessageBatch")
    with pytest.raises(qr.BatchSendError) as caught:
        await lossy_client.send_messages(name, messages)
    error = caught.value
    assert "outcome unknown" in str(error) or "unknown outcome" in str(error)
    assert error.outcome_unknown and error.retryable
    assert error.unknown == tuple(m.message_id for m in messages[:10])
    assert error.sent == ()
    assert lossy.lost == ["SendMessageBatch"], lossy.lost
    assert [mid for mid, _ in error.failed] == [m.message_id for m in messages[10:]]
    # SQS did store the first request's messages
    url = url_of(boto, str(name))
    stored = boto.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
    assert stored["ApproximateNumberOfMessages"] == "10"

    lossy.lose = {"SendMessage"}
    with pytest.raises(qr.ConnectionError) as single:
        await lossy_client.send_message(name, qr.Message(b"one"))
    assert single.value.outcome_unknown and "outcome unknown" in str(single.value)
    await lossy_client.delete_queue(name)


async def test_a_retried_fifo_batch_after_a_lost_reply_is_deduplicated(
    lossy_client: SqsQueueClient, lossy: LossyProxy, name: qr.QueueName
) -> None:
    await lossy_client.create_queue(name, requires_session=True)
    messages = [qr.Message(f"m{i}".encode(), session_id="s") for i in range(3)]
    lossy.lose.add("SendMessageBatch")
    with pytest.raises(qr.BatchSendError) as caught:
        await lossy_client.send_messages(name, messages)
    lossy.lose.clear()
    assert len(caught.value.unknown) == 3
    await lossy_client.send_messages(name, messages)  # the retry the error invites
    async with await lossy_client.accept_session(name, "s") as session:
        got = await session.receive_messages(max_messages=10, timeout=2)
        assert [m.body for m in got] == [b"m0", b"m1", b"m2"]  # once each
        await session.complete_messages(got)
    await lossy_client.delete_queue(name)


# -- 8. the advertised size is the size accepted -----------------------------------------------


@pytest.mark.parametrize("fifo", [False, True])
async def test_a_message_of_the_advertised_size_with_many_small_attributes_is_accepted(
    sqs_config: qr.AwsSqsConfig, name: qr.QueueName, fifo: bool
) -> None:
    config = sqs_config.model_copy(update={"max_message_size": 256 * 1024})
    async with SqsQueueClient(config, default_timeout=5) as client:
        await client.create_queue(name, requires_session=fifo)
        size = client.capabilities.max_message_size
        session_id = "\N{GRINNING FACE} s" * 32 if fifo else None  # hashed: travels in qr-meta
        largest = worst_case_message(size, session_id=session_id)
        assert encode(largest, fifo=fifo).size <= 256 * 1024
        await client.send_message(name, largest)
        if fifo:
            session = await client.accept_session(name, session_id)
            assert session is not None
            got = await session.receive_message(timeout=5)
        else:
            got = await client.receive_message(name, timeout=5)
        assert got is not None
        assert dict(got.attributes or {}) == dict(largest.attributes or {})
        assert got.body == largest.body and got.correlation_id == largest.correlation_id
        with pytest.raises(qr.ValidationError):  # one more byte is over the advertised size
            await client.send_message(name, largest._replace(body=largest.body + b"x"))
        await (session.complete_message(got) if fifo else client.complete_message(got))
        if fifo:
            await session.close()
        await client.delete_queue(name)


# -- 9. small things ---------------------------------------------------------------------------


async def test_a_missing_region_says_how_to_set_it(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Any
) -> None:
    for variable in ("AWS_REGION", "AWS_DEFAULT_REGION", "AWS_PROFILE"):
        monkeypatch.delenv(variable, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    with pytest.raises(qr.ConfigurationError) as caught:
        async with SqsQueueClient(qr.AwsSqsConfig(**KEYS)):
            pass
    assert "?region=" in str(caught.value) and "AWS_REGION" in str(caught.value)


async def test_queue_already_exists_names_the_settings_that_differ(
    client: SqsQueueClient, name: qr.QueueName
) -> None:
    await client.create_queue(name, max_delivery_count=5, lock_duration=10)
    with pytest.raises(qr.QueueAlreadyExists) as caught:
        await client.create_queue(name, max_delivery_count=7, lock_duration=10)
    text = str(caught.value)
    assert "max_delivery_count" in text and "7" in text and "5" in text
    assert "lock_duration" not in text
    await client.delete_queue(name)


async def test_the_redacting_filter_removes_the_security_token_from_botocore_logs(
    moto_server: str, caplog: pytest.LogCaptureFixture
) -> None:
    config = qr.AwsSqsConfig(
        region=REGION, endpoint_url=moto_server, session_token="the-session-token-secret", **KEYS
    )
    redacting = qr.RedactingFilter()
    with caplog.at_level(logging.DEBUG, logger="botocore"):
        async with SqsQueueClient(config) as client:
            await client.create_queue("redact-plain")  # botocore logs the headers at DEBUG
            leaked = [r for r in caplog.records if "the-session-token-secret" in r.getMessage()]
            assert leaked  # which is why the filter exists
            caplog.clear()
            caplog.handler.addFilter(redacting)
            try:
                await client.delete_queue("redact-plain")
            finally:
                caplog.handler.removeFilter(redacting)
    assert caplog.records
    assert not [r for r in caplog.records if "the-session-token-secret" in r.getMessage()]
