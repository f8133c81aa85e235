"""Issue-6 hardening of the core: durations, URLs, errors, logging and documentation."""

from __future__ import annotations

import logging
import math
import pydoc

import pytest

import queue_runtime as qr
from queue_runtime._arguments import message_sequence, timeout_seconds
from queue_runtime._clock import to_seconds
from queue_runtime.adapters.memory import InMemoryQueueClient
from queue_runtime.engine import QueueSettings


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf])
def test_non_finite_durations_are_refused(value: float) -> None:
    with pytest.raises(qr.ValidationError):
        to_seconds(value)
    with pytest.raises(qr.ValidationError):
        timeout_seconds(value, 30.0)


def test_a_generator_is_not_a_batch() -> None:
    with pytest.raises(qr.ValidationError):
        message_sequence(qr.Message(b"x") for _ in range(2))
    batch = [qr.Message(b"x")]
    assert message_sequence(batch) is batch


@pytest.mark.parametrize(
    "url",
    ["sqs://?region=a&region=b", "memory://?max_message_size=1&max_message_size=2"],
)
def test_repeated_url_query_parameters_are_refused(url: str) -> None:
    with pytest.raises(qr.ConfigurationError, match="repeats"):
        qr.QueueConfig.from_url(url)


def test_queue_already_exists_names_the_settings_that_differ() -> None:
    ours = QueueSettings(max_delivery_count=5, lock_duration=10)
    assert ours.differences(QueueSettings()) == [
        "max_delivery_count: 5 != 10",
        "lock_duration: 10 != 30.0",
    ]


@pytest.mark.asyncio
async def test_queue_already_exists_message_lists_each_difference() -> None:
    async with InMemoryQueueClient() as client:
        await client.create_queue("q", max_delivery_count=5)
        with pytest.raises(qr.QueueAlreadyExists, match=r"max_delivery_count: 5 != 3"):
            await client.create_queue("q", max_delivery_count=3)


def test_batch_errors_say_what_is_unknown() -> None:
    sent = qr.BatchSendError("lost reply", sent=["a"], failed=[], unknown=["b", "c"])
    assert (sent.unknown, sent.outcome_unknown) == (("b", "c"), True)
    lost = qr.MessageLockLost("gone")
    maybe = qr.ConnectionError("reply lost", outcome_unknown=True)
    settle = qr.BatchSettleError("x", settled=["a"], failed=[("b", lost), ("c", maybe)])
    assert settle.unknown == ("c",) and settle.outcome_unknown and not settle.retryable
    only_retryable = qr.BatchSettleError("x", settled=[], failed=[("c", maybe)])
    assert only_retryable.retryable


def test_redacting_filter_removes_credentials_from_records() -> None:
    record = logging.LogRecord(
        "botocore.endpoint",
        logging.DEBUG,
        __file__,
        1,
        "headers: %s",
        ({"x-amz-security-token": "FQoGZXIvYXdzEXAMPLE", "Authorization": "AWS4 abc"},),
        None,
    )
    assert qr.RedactingFilter().filter(record)
    text = record.getMessage()
    assert "FQoGZXIvYXdzEXAMPLE" not in text and "AWS4" not in text
    assert "x-amz-security-token" in text


@pytest.mark.asyncio
async def test_the_memory_adapter_logs_ids_never_bodies(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="queue_runtime")
    async with InMemoryQueueClient() as client:
        await client.create_queue("logged", requires_session=True)
        await client.send_message("logged", qr.Message(b"secret-body", session_id="pr-1"))
        session = await client.accept_session("logged", "pr-1")
        assert session is not None
        async with session:
            got = await session.receive_message(timeout=0)
            assert got is not None
            await session.complete_message(got)
    names = {r.name for r in caplog.records}
    assert names == {"queue_runtime.adapters.memory"}
    text = caplog.text
    assert "pr-1" in text and "logged" in text and "secret-body" not in text


def test_help_on_the_message_types_reads_as_documentation() -> None:
    for cls, fields in (
        (qr.Message, ["body", "session_id", "attributes", "message_id", "time_to_live"]),
        (qr.ReceivedMessage, ["delivery_count", "dead_letter_reason", "receipt"]),
    ):
        text = pydoc.render_doc(cls, renderer=pydoc.plaintext)
        assert "Alias for field number" not in text
        for field in fields:
            assert field in text


def test_timeout_none_is_documented_as_the_configured_default() -> None:
    for method in (qr.QueueClient.receive_message, qr.SessionClient.receive_message):
        assert method.__doc__
    for port in (qr.QueueClient, qr.SessionClient):
        doc = pydoc.render_doc(port, renderer=pydoc.plaintext)
        assert "default_timeout" in doc and "30 seconds" in doc
