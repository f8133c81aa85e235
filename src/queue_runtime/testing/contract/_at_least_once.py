"""Behaviour 8: under concurrent producers and consumers nothing vanishes and nothing is
completed twice; every message is completed exactly once or ends in the DLQ."""

from __future__ import annotations

import asyncio
from collections import Counter, defaultdict

import pytest

import queue_runtime as qr

from .._target import ContractTarget
from ._fixtures import ContractFixtures, receive_exactly

__all__ = ["AtLeastOnceContract"]

PRODUCERS = 3
PER_PRODUCER = 20
CONSUMERS = 3
SESSIONS = ("s0", "s1", "s2", "s3")


def _fate(seq: int, delivery_count: int) -> str:
    """What a consumer does with message number ``seq`` of its producer."""
    if seq % 7 == 3:
        return "dead-letter"
    if seq % 4 == 1 and delivery_count == 1:
        return "abandon"
    return "complete"


def _budget(target: ContractTarget) -> float:
    return max(60.0, 12 * target.receive_timeout)


class _Ledger:
    """What the test's producers sent and its consumers did."""

    def __init__(self) -> None:
        self.sent: dict[str, tuple[int, int, str | None]] = {}  # id -> (producer, seq, session)
        self.completed: Counter[str] = Counter()
        self.dead: Counter[str] = Counter()
        self.done = asyncio.Event()
        self.total = PRODUCERS * PER_PRODUCER

    def settled(self, message_id: str, fate: str) -> None:
        (self.completed if fate == "complete" else self.dead)[message_id] += 1
        if sum(self.completed.values()) + sum(self.dead.values()) >= self.total:
            self.done.set()

    def expected_dead(self) -> set[str]:
        return {mid for mid, (_, seq, _) in self.sent.items() if _fate(seq, 1) == "dead-letter"}

    def check(self) -> None:
        assert len(self.sent) == self.total
        twice = {mid: n for mid, n in (self.completed + self.dead).items() if n > 1}
        assert not twice, f"settled more than once: {twice}"
        assert set(self.completed) | set(self.dead) == set(self.sent), (
            f"vanished: {sorted(set(self.sent) - set(self.completed) - set(self.dead))}"
        )
        assert set(self.dead) == self.expected_dead()


async def _run(ledger: _Ledger, target: ContractTarget, *tasks: asyncio.Future[None]) -> None:
    try:
        async with asyncio.timeout(_budget(target)):
            await asyncio.gather(*tasks)
    except TimeoutError:
        missing = set(ledger.sent) - set(ledger.completed) - set(ledger.dead)
        pytest.fail(f"messages never settled within {_budget(target)} s: {len(missing)} missing")
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


async def _check_dead_letters(
    client: qr.QueueClient, target: ContractTarget, queue: qr.QueueName, ledger: _Ledger
) -> None:
    expected = ledger.expected_dead()
    dead = await receive_exactly(client, target, queue.dead_letter, len(expected))
    assert Counter(m.message_id for m in dead) == Counter(expected)
    assert {m.dead_letter_reason for m in dead} <= {"contract-test"}
    for message in dead:
        await client.complete_message(message)


class AtLeastOnceContract(ContractFixtures):
    async def test_concurrent_producers_and_consumers_lose_nothing(
        self,
        client: qr.QueueClient,
        second_client: qr.QueueClient,
        contract_target: ContractTarget,
        queue: qr.QueueName,
    ) -> None:
        ledger = _Ledger()
        clients = (client, second_client)
        poll = max(contract_target.quiet_timeout, 0.05)

        async def produce(producer: int) -> None:
            sender = clients[producer % 2]
            for seq in range(PER_PRODUCER):
                message = qr.Message(
                    f"p{producer}-{seq}".encode(),
                    attributes={"producer": str(producer), "seq": str(seq)},
                )
                ledger.sent[message.message_id] = (producer, seq, None)
                await sender.send_message(queue, message)
                await asyncio.sleep(0)

        async def consume(consumer: int) -> None:
            receiver = clients[consumer % 2]
            while not ledger.done.is_set():
                batch = await receiver.receive_messages(queue, max_messages=4, timeout=poll)
                for message in batch:
                    fate = _fate(int(message.attributes["seq"]), message.delivery_count)
                    if fate == "abandon":
                        await receiver.abandon_message(message)
                        continue
                    if fate == "dead-letter":
                        await receiver.dead_letter_message(message, reason="contract-test")
                    else:
                        await receiver.complete_message(message)
                    ledger.settled(message.message_id, fate)

        await _run(
            ledger,
            contract_target,
            *(asyncio.ensure_future(produce(p)) for p in range(PRODUCERS)),
            *(asyncio.ensure_future(consume(c)) for c in range(CONSUMERS)),
        )
        ledger.check()
        assert await client.receive_message(queue, timeout=contract_target.quiet_timeout) is None
        await _check_dead_letters(client, contract_target, queue, ledger)

    async def test_concurrent_session_processing_loses_nothing_and_keeps_order(
        self,
        client: qr.QueueClient,
        second_client: qr.QueueClient,
        contract_target: ContractTarget,
        session_queue: qr.QueueName,
    ) -> None:
        ledger = _Ledger()
        # a second client plays a second process only where exclusivity spans processes
        across = "exclusive_sessions_across_processes" in client.capabilities
        clients = (client, second_client) if across else (client,)
        poll = max(contract_target.quiet_timeout, 0.05)
        completed_order: dict[tuple[str, int], list[int]] = defaultdict(list)
        held: set[str] = set()

        async def produce(producer: int) -> None:
            sender = clients[producer % len(clients)]
            seq = 0
            while seq < PER_PRODUCER:
                batch = []
                for _ in range(1 + seq % 2):  # single sends and pairs
                    if seq == PER_PRODUCER:
                        break
                    session_id = SESSIONS[(seq + producer) % len(SESSIONS)]
                    message = qr.Message(
                        f"p{producer}-{seq}".encode(),
                        session_id=session_id,
                        attributes={"producer": str(producer), "seq": str(seq)},
                    )
                    ledger.sent[message.message_id] = (producer, seq, session_id)
                    batch.append(message)
                    seq += 1
                await sender.send_messages(session_queue, batch)
                await asyncio.sleep(0)

        async def consume(consumer: int) -> None:
            receiver = clients[consumer % len(clients)]
            while not ledger.done.is_set():
                session = await receiver.accept_session(session_queue, timeout=poll)
                if session is None:
                    continue
                async with session:
                    sid = session.session_id
                    assert sid not in held, f"session {sid!r} held twice at once"
                    held.add(sid)
                    try:
                        await drain(session, sid)
                    finally:
                        held.discard(sid)

        async def drain(session: qr.SessionClient, sid: str) -> None:
            while True:
                batch = await session.receive_messages(max_messages=4, timeout=poll)
                if not batch:
                    return
                abandoning = False
                for message in batch:
                    assert message.session_id == sid
                    producer = int(message.attributes["producer"])
                    seq = int(message.attributes["seq"])
                    fate = _fate(seq, message.delivery_count)
                    if abandoning or fate == "abandon":
                        # in-order processing: what follows an abandoned message waits too
                        abandoning = True
                        await session.abandon_message(message)
                        continue
                    if fate == "dead-letter":
                        await session.dead_letter_message(message, reason="contract-test")
                    else:
                        await session.complete_message(message)
                        completed_order[(sid, producer)].append(seq)
                    ledger.settled(message.message_id, fate)

        await _run(
            ledger,
            contract_target,
            *(asyncio.ensure_future(produce(p)) for p in range(PRODUCERS)),
            *(asyncio.ensure_future(consume(c)) for c in range(CONSUMERS)),
        )
        ledger.check()
        for (sid, producer), seqs in completed_order.items():
            expected = sorted(
                seq
                for p, seq, s in ledger.sent.values()
                if (p, s) == (producer, sid) and _fate(seq, 1) != "dead-letter"
            )
            assert seqs == expected, f"session {sid!r}, producer {producer}: out of order"
        assert (
            await client.accept_session(session_queue, timeout=contract_target.quiet_timeout)
            is None
        )
        await _check_dead_letters(client, contract_target, session_queue, ledger)
