"""The `Outbox`'s own logic (group commit, each caller's outcome) on a stand-in sender: which
transfers it makes, and what each caller is told when one fails. The real sender and the
service are in test_sb_concurrency.py."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest
from azure.servicebus import ServiceBusMessage, ServiceBusMessageBatch
from azure.servicebus import exceptions as sb

import queue_runtime as qr
from queue_runtime.adapters.servicebus._codec import METADATA_RESERVE, encode
from queue_runtime.adapters.servicebus._sending import Outbox

pytestmark = pytest.mark.asyncio

LIMIT = 256 * 1024


class StandInSender:
    """Takes transfers like the SDK's sender; ``refuse(ids)`` may raise for one, and ``gate``
    holds each transfer until it is set."""

    def __init__(self, refuse: Callable[[list[str]], Exception | None] = lambda ids: None) -> None:
        self.refuse = refuse
        self.gate = asyncio.Event()
        self.gate.set()
        self.started = asyncio.Event()  # a transfer began
        self.transfers: list[list[str]] = []  # ids of each transfer attempted
        self.stored: list[str] = []

    async def create_message_batch(self) -> ServiceBusMessageBatch:
        return ServiceBusMessageBatch(max_size_in_bytes=LIMIT)

    async def send_messages(self, payload: Any, *, timeout: float) -> None:
        if isinstance(payload, ServiceBusMessage):
            ids = [payload.message_id]
        else:
            ids = [m.message_id for m in payload._messages]
        self.transfers.append(ids)
        self.started.set()
        await self.gate.wait()
        refused = self.refuse(ids)
        if refused is not None:
            raise refused
        self.stored.extend(ids)

    async def close(self) -> None:
        pass


def outbox(sender: StandInSender) -> Outbox:
    return Outbox(
        "orders", sender, batch_limit=LIMIT, max_size=LIMIT - METADATA_RESERVE, plain_limit=LIMIT
    )


async def send(box: Outbox, *messages: qr.Message, single: bool = True) -> None:
    await box.send(
        messages, [encode(m) for m in messages], [len(m.body) for m in messages], single=single
    )


def message(mid: str, session: str | None = None) -> qr.Message:
    return qr.Message(b"x", message_id=mid, session_id=session)


async def in_flight(sender: StandInSender, box: Outbox, first: str) -> asyncio.Future[None]:
    """A first send held in flight, so that the next ones gather behind it."""
    sender.gate.clear()
    task = asyncio.ensure_future(send(box, message(first)))
    await sender.started.wait()
    return task


async def test_sends_arriving_while_one_is_in_flight_go_out_together() -> None:
    sender = StandInSender()
    box = outbox(sender)
    first = await in_flight(sender, box, "first")
    rest = [asyncio.ensure_future(send(box, message(f"m{i}"))) for i in range(10)]
    wave = asyncio.ensure_future(send(box, message("w1"), message("w2"), single=False))
    await asyncio.sleep(0)
    sender.gate.set()
    await asyncio.gather(first, *rest, wave)
    assert sender.transfers == [["first"], [*(f"m{i}" for i in range(10)), "w1", "w2"]]


async def test_one_session_per_batch_and_callers_of_a_session_together() -> None:
    sender = StandInSender()
    box = outbox(sender)
    first = await in_flight(sender, box, "first")
    sessions = ["a", "b", "a", "b", "a"]
    rest = [asyncio.ensure_future(send(box, message(f"m{i}", s))) for i, s in enumerate(sessions)]
    await asyncio.sleep(0)
    sender.gate.set()
    await asyncio.gather(first, *rest)
    assert sender.transfers[1:] == [["m0", "m2", "m4"], ["m1", "m3"]]


async def test_a_refused_shared_batch_is_sent_again_caller_by_caller() -> None:
    def refuse(ids: list[str]) -> Exception | None:
        return sb.MessageSizeExceededError(message="too big") if "bad" in ids else None

    sender = StandInSender(refuse)
    box = outbox(sender)
    first = await in_flight(sender, box, "first")
    good = asyncio.ensure_future(send(box, message("good1")))
    bad = asyncio.ensure_future(send(box, message("bad")))
    wave = asyncio.ensure_future(send(box, message("good2"), message("good3"), single=False))
    await asyncio.sleep(0)
    sender.gate.set()
    outcomes = await asyncio.gather(first, good, bad, wave, return_exceptions=True)
    assert outcomes[:2] == [None, None] and outcomes[3] is None
    assert isinstance(outcomes[2], qr.ValidationError) and "bad" in str(outcomes[2])
    assert sender.transfers[1] == ["good1", "bad", "good2", "good3"]  # refused whole
    assert sorted(sender.stored) == ["first", "good1", "good2", "good3"]  # each once


async def test_a_lost_reply_is_unknown_for_every_caller_of_that_batch_only() -> None:
    def refuse(ids: list[str]) -> Exception | None:
        return sb.OperationTimeoutError(message="no reply") if "lost" in ids else None

    sender = StandInSender(refuse)
    box = outbox(sender)
    first = await in_flight(sender, box, "first")
    lost = asyncio.ensure_future(send(box, message("lost", "a")))
    wave = asyncio.ensure_future(send(box, message("w1", "a"), message("w2", "b"), single=False))
    other = asyncio.ensure_future(send(box, message("other", "b")))
    await asyncio.sleep(0)
    sender.gate.set()
    outcomes = await asyncio.gather(first, lost, wave, other, return_exceptions=True)
    assert outcomes[0] is None and outcomes[3] is None  # the b batch went on
    error = outcomes[1]
    assert isinstance(error, qr.TimeoutError) and error.outcome_unknown and "lost" in str(error)
    batch = outcomes[2]
    assert isinstance(batch, qr.BatchSendError) and batch.outcome_unknown
    assert (batch.sent, batch.unknown, [mid for mid, _ in batch.failed]) == ((), ("w1",), ["w2"])
    assert sender.transfers[1:] == [["lost", "w1"], ["other"]]


async def test_a_send_cancelled_before_its_turn_is_never_sent() -> None:
    sender = StandInSender()
    box = outbox(sender)
    first = await in_flight(sender, box, "first")
    cancelled = asyncio.ensure_future(send(box, message("cancelled")))
    kept = asyncio.ensure_future(send(box, message("kept")))
    await asyncio.sleep(0)
    cancelled.cancel()
    sender.gate.set()
    await asyncio.gather(first, kept)
    assert sender.stored == ["first", "kept"]


async def test_closing_fails_the_sends_not_made_yet() -> None:
    sender = StandInSender()
    box = outbox(sender)
    first = await in_flight(sender, box, "first")
    waiting = asyncio.ensure_future(send(box, message("waiting")))
    await asyncio.sleep(0)
    await box.aclose(qr.ClientClosed("the client was closed before this message was sent"))
    with pytest.raises(qr.ClientClosed) as caught:
        await waiting
    assert not caught.value.outcome_unknown
    sender.gate.set()
    await first
    with pytest.raises(qr.ClientClosed):
        await send(box, message("late"))
    assert sender.stored == ["first"]
