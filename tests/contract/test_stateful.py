"""The in-memory adapter driven side by side with a pure-Python model of the contract.

Hypothesis picks sequences of sends, receives, settlements, session accepts and closes, and
clock jumps past locks; after each step the adapter's answers must match the model's
predictions: which messages come (in order per partition), their delivery counts, which
calls fail and with which error. At the end everything still in the broker is drained and
compared with the model, so every sent message is accounted for exactly once.

Only the public port is used (`QueueClient`/`SessionClient` and the `ContractTarget`'s
``advance``). Hypothesis rules are synchronous, so each example runs its own event loop.
"""

from __future__ import annotations

import asyncio
import functools
import secrets
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, TypeVar

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

import queue_runtime as qr
from queue_runtime.testing import memory_target

T = TypeVar("T")

MAX_DELIVERY_COUNT = 2
LOCK = 30.0
SESSIONS = ("a", "b", "c")
AVAILABLE, LOCKED, COMPLETED, DEAD = "available", "locked", "completed", "dead-lettered"
PLAIN, SESSION = "plain", "session"
MAX_DELIVERY_COUNT_EXCEEDED = "MaxDeliveryCountExceeded"


@dataclass
class Model:
    """One sent message as the model sees it."""

    id: str
    kind: str  # PLAIN or SESSION
    session_id: str | None
    seq: int
    delivery_count: int = 0
    place: str = AVAILABLE
    locked_until: float = 0.0  # messages of the plain queue
    lease: int | None = None  # session messages: the lease holding them
    reason: str | None = None


@dataclass
class Lease:
    id: int
    session_id: str
    until: float
    handle: qr.SessionClient
    valid: bool = True


@dataclass
class Delivery:
    """A `ReceivedMessage` the test still holds (possibly stale)."""

    received: qr.ReceivedMessage
    client: int
    delivery_count: int
    lease: int | None = None


@dataclass
class Broker:
    plain: qr.QueueName
    session: qr.QueueName
    clients: list[qr.QueueClient] = field(default_factory=list)


def step(method: Callable[..., None]) -> Callable[..., None]:
    """Remember that a step failed, so teardown does not pile a second failure on it."""

    @functools.wraps(method)
    def wrapper(self: QueueMachine, *args: Any, **kwargs: Any) -> None:
        self.failed = True
        method(self, *args, **kwargs)
        self.failed = False

    return wrapper


class QueueMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.failed = False
        self.loop = asyncio.new_event_loop()
        self.target = memory_target()
        self.broker = Broker(
            plain=qr.QueueName(f"ct-{secrets.token_hex(4)}"),
            session=qr.QueueName(f"ct-{secrets.token_hex(4)}"),
        )
        self.run(self._open())
        self.now = 0.0
        self.seq = 0
        self.messages: dict[str, Model] = {}
        self.leases: list[Lease] = []
        self.deliveries: list[Delivery] = []
        self.session_deliveries: list[Delivery] = []
        # a lock that lapsed is applied by the next receive on its queue (as on SQS)
        self.pending = {PLAIN: False, SESSION: False}

    async def _open(self) -> None:
        for _ in range(2):
            client = self.target.make_client()
            await client.open()
            self.broker.clients.append(client)
        lock = timedelta(seconds=LOCK)
        client = self.broker.clients[0]
        await client.create_queue(
            self.broker.plain, max_delivery_count=MAX_DELIVERY_COUNT, lock_duration=lock
        )
        await client.create_queue(
            self.broker.session,
            requires_session=True,
            max_delivery_count=MAX_DELIVERY_COUNT,
            lock_duration=lock,
        )

    def run(self, coroutine: Coroutine[Any, Any, T]) -> T:
        return self.loop.run_until_complete(coroutine)

    def refused(self, error: type[Exception], coroutine: Coroutine[Any, Any, Any]) -> None:
        with pytest.raises(error):
            self.run(coroutine)

    def client(self, index: int) -> qr.QueueClient:
        return self.broker.clients[index % len(self.broker.clients)]

    # -- model helpers -----------------------------------------------------------------

    def available(self, kind: str, session_id: str | None = None) -> list[Model]:
        return sorted(
            (
                m
                for m in self.messages.values()
                if m.kind == kind
                and m.place == AVAILABLE
                and (session_id is None or m.session_id == session_id)
            ),
            key=lambda m: m.seq,
        )

    def release(self, message: Model) -> None:
        """Back to its partition, or to the DLQ once it was delivered too often."""
        message.lease = None
        if message.delivery_count >= MAX_DELIVERY_COUNT:
            message.place, message.reason = DEAD, MAX_DELIVERY_COUNT_EXCEEDED
        else:
            message.place = AVAILABLE

    def end_lease(self, lease: Lease) -> None:
        lease.valid = False
        held = [m for m in self.messages.values() if m.place == LOCKED and m.lease == lease.id]
        for message in sorted(held, key=lambda m: m.seq):
            self.release(message)

    def valid_lease(self, session_id: str) -> Lease | None:
        return next((x for x in self.leases if x.valid and x.session_id == session_id), None)

    def deliver(self, expected: list[Model], got: list[qr.ReceivedMessage]) -> None:
        assert [m.message_id for m in got] == [m.id for m in expected]
        for model, received in zip(expected, got, strict=True):
            model.delivery_count += 1
            assert received.delivery_count == model.delivery_count
            assert received.session_id == model.session_id
            assert received.body == str(model.seq).encode()
            model.place = LOCKED

    # -- sending -----------------------------------------------------------------------

    @rule(
        session_id=st.none() | st.sampled_from(SESSIONS),
        count=st.integers(1, 3),
        client=st.integers(0, 1),
    )
    @step
    def send(self, session_id: str | None, count: int, client: int) -> None:
        kind = PLAIN if session_id is None else SESSION
        queue = self.broker.plain if kind == PLAIN else self.broker.session
        batch = []
        for _ in range(count):
            self.seq += 1
            batch.append(qr.Message(str(self.seq).encode(), session_id=session_id))
        ids = self.run(self.client(client).send_messages(queue, batch))
        assert ids == [m.message_id for m in batch]
        for i, message in enumerate(batch):
            seq = self.seq - count + 1 + i
            self.messages[message.message_id] = Model(message.message_id, kind, session_id, seq)

    # -- the queue without sessions ------------------------------------------------------

    @rule(max_messages=st.integers(1, 3), client=st.integers(0, 1))
    @step
    def receive(self, max_messages: int, client: int) -> None:
        got = self.run(
            self.client(client).receive_messages(
                self.broker.plain, max_messages=max_messages, timeout=0
            )
        )
        self.pending[PLAIN] = False
        expected = self.available(PLAIN)[:max_messages]
        self.deliver(expected, got)
        for model, received in zip(expected, got, strict=True):
            model.locked_until = self.now + LOCK
            self.deliveries.append(Delivery(received, client, model.delivery_count))

    @precondition(lambda self: self.deliveries)
    @rule(
        index=st.integers(0, 10**6),
        action=st.sampled_from(["complete", "abandon", "dead_letter", "renew"]),
    )
    @step
    def settle(self, index: int, action: str) -> None:
        delivery = self.deliveries[index % len(self.deliveries)]
        model = self.messages[delivery.received.message_id]
        client = self.client(delivery.client)
        received = delivery.received
        current = model.place == LOCKED and model.delivery_count == delivery.delivery_count
        if not current:
            operation = {
                "complete": client.complete_message,
                "abandon": client.abandon_message,
                "dead_letter": client.dead_letter_message,
                "renew": client.renew_message_lock,
            }[action]
            self.refused(qr.MessageLockLost, operation(received))
            return
        if action == "complete":
            self.run(client.complete_message(received))
            model.place = COMPLETED
        elif action == "abandon":
            self.run(client.abandon_message(received))
            self.release(model)
        elif action == "dead_letter":
            self.run(client.dead_letter_message(received, reason="model"))
            model.place, model.reason = DEAD, "model"
        else:
            until = self.run(client.renew_message_lock(received))
            assert received.locked_until is not None
            assert until >= received.locked_until
            model.locked_until = self.now + LOCK

    # -- the session queue ---------------------------------------------------------------

    @rule(session_id=st.sampled_from(SESSIONS), client=st.integers(0, 1))
    @step
    def accept_named(self, session_id: str, client: int) -> None:
        coroutine = self.client(client).accept_session(self.broker.session, session_id)
        self.pending[SESSION] = False
        if self.valid_lease(session_id) is not None:
            self.refused(qr.SessionLocked, coroutine)
            return
        handle = self.run(coroutine)
        assert handle is not None and handle.session_id == session_id
        self.leases.append(Lease(len(self.leases), session_id, self.now + LOCK, handle))

    @rule(client=st.integers(0, 1))
    @step
    def accept_next(self, client: int) -> None:
        handle = self.run(self.client(client).accept_session(self.broker.session, timeout=0))
        self.pending[SESSION] = False
        ready = {
            sid
            for sid in SESSIONS
            if self.valid_lease(sid) is None and self.available(SESSION, sid)
        }
        if not ready:
            assert handle is None
            return
        assert handle is not None and handle.session_id in ready
        self.leases.append(Lease(len(self.leases), handle.session_id, self.now + LOCK, handle))

    @precondition(lambda self: self.leases)
    @rule(index=st.integers(0, 10**6), max_messages=st.integers(1, 3))
    @step
    def session_receive(self, index: int, max_messages: int) -> None:
        lease = self.leases[index % len(self.leases)]
        coroutine = lease.handle.receive_messages(max_messages=max_messages, timeout=0)
        if not lease.valid:
            self.refused(qr.SessionLockLost, coroutine)
            return
        got = self.run(coroutine)
        self.pending[SESSION] = False
        expected = self.available(SESSION, lease.session_id)[:max_messages]
        self.deliver(expected, got)
        for model, received in zip(expected, got, strict=True):
            model.lease = lease.id
            self.session_deliveries.append(Delivery(received, 0, model.delivery_count, lease.id))

    @precondition(lambda self: self.session_deliveries)
    @rule(
        index=st.integers(0, 10**6),
        action=st.sampled_from(["complete", "abandon", "dead_letter"]),
    )
    @step
    def session_settle(self, index: int, action: str) -> None:
        delivery = self.session_deliveries[index % len(self.session_deliveries)]
        assert delivery.lease is not None
        lease = self.leases[delivery.lease]
        model = self.messages[delivery.received.message_id]
        session = lease.handle
        operation = {
            "complete": session.complete_message,
            "abandon": session.abandon_message,
            "dead_letter": session.dead_letter_message,
        }[action]
        if not lease.valid:
            self.refused(qr.SessionLockLost, operation(delivery.received))
            return
        current = (
            model.place == LOCKED
            and model.lease == lease.id
            and model.delivery_count == delivery.delivery_count
        )
        if not current:
            self.refused(qr.MessageLockLost, operation(delivery.received))
            return
        self.run(operation(delivery.received))
        if action == "complete":
            model.place, model.lease = COMPLETED, None
        elif action == "abandon":
            self.release(model)
        else:
            model.place, model.lease, model.reason = DEAD, None, None

    @precondition(lambda self: self.leases)
    @rule(index=st.integers(0, 10**6))
    @step
    def renew_session(self, index: int) -> None:
        lease = self.leases[index % len(self.leases)]
        if not lease.valid:
            self.refused(qr.SessionLockLost, lease.handle.renew_session_lock())
            return
        self.run(lease.handle.renew_session_lock())
        lease.until = self.now + LOCK

    @precondition(lambda self: self.leases)
    @rule(index=st.integers(0, 10**6))
    @step
    def close_session(self, index: int) -> None:
        lease = self.leases[index % len(self.leases)]
        self.run(lease.handle.close())  # idempotent, and a no-op once the lock lapsed
        if lease.valid:
            self.end_lease(lease)

    # -- time ----------------------------------------------------------------------------

    @rule(seconds=st.sampled_from([0.7, 11.3, LOCK + 1]))
    @step
    def advance(self, seconds: float) -> None:
        self.run(self.target.advance(seconds))
        self.now += seconds
        for model in sorted(self.messages.values(), key=lambda m: m.seq):
            if model.kind == PLAIN and model.place == LOCKED and model.locked_until <= self.now:
                self.release(model)
                self.pending[PLAIN] = True
        for lease in self.leases:
            if lease.valid and lease.until <= self.now:
                self.end_lease(lease)
                self.pending[SESSION] = True

    # -- dead-letter queues ----------------------------------------------------------------

    @rule(kind=st.sampled_from([PLAIN, SESSION]))
    @step
    def inspect_dead_letters(self, kind: str) -> None:
        if self.pending[kind]:
            return  # a lapsed lock may not have been applied yet: nothing to compare
        queue = self.broker.plain if kind == PLAIN else self.broker.session
        client = self.client(0)
        got = self.run(client.receive_messages(queue.dead_letter, max_messages=100, timeout=0))
        expected = {m.id: m for m in self.messages.values() if m.kind == kind and m.place == DEAD}
        assert sorted(m.message_id for m in got) == sorted(expected)
        for received in got:
            model = expected[received.message_id]
            model.delivery_count = received.delivery_count  # the DLQ counts deliveries on
            assert received.dead_letter_reason == model.reason
            assert received.session_id == model.session_id
            self.run(client.abandon_message(received))

    # -- invariants ------------------------------------------------------------------------

    @invariant()
    def every_message_is_in_exactly_one_place(self) -> None:
        places = {AVAILABLE: 0, LOCKED: 0, COMPLETED: 0, DEAD: 0}
        for model in self.messages.values():
            places[model.place] += 1
            if model.place == LOCKED and model.kind == SESSION:
                assert model.lease is not None and self.leases[model.lease].valid
            if model.place == LOCKED and model.kind == PLAIN:
                assert model.locked_until > self.now
            if model.place == AVAILABLE:
                assert model.delivery_count < MAX_DELIVERY_COUNT
        assert sum(places.values()) == len(self.messages) == self.seq

    @invariant()
    def at_most_one_valid_lease_per_session(self) -> None:
        for session_id in SESSIONS:
            assert sum(1 for x in self.leases if x.valid and x.session_id == session_id) <= 1

    # -- the end: drain and account for everything ---------------------------------------

    def teardown(self) -> None:
        try:
            if not self.failed:
                self.drain_and_compare()
        finally:
            self.run(self._close())
            self.loop.close()

    async def _close(self) -> None:
        for client in self.broker.clients:
            await client.aclose()

    def drain_and_compare(self) -> None:
        for lease in self.leases:
            self.run(lease.handle.close())
            if lease.valid:
                self.end_lease(lease)
        self.advance(LOCK + 1)
        client = self.client(0)
        got = self.run(client.receive_messages(self.broker.plain, max_messages=1000, timeout=0))
        self.deliver(self.available(PLAIN), got)
        for received in got:
            self.run(client.complete_message(received))
            self.messages[received.message_id].place = COMPLETED
        while True:
            session = self.run(client.accept_session(self.broker.session, timeout=0))
            if session is None:
                break
            got = self.run(session.receive_messages(max_messages=1000, timeout=0))
            self.deliver(self.available(SESSION, session.session_id), got)
            for received in got:
                self.run(session.complete_message(received))
                self.messages[received.message_id].place = COMPLETED
            self.run(session.close())
        assert not self.available(PLAIN) and not self.available(SESSION)
        self.pending = {PLAIN: False, SESSION: False}
        self.inspect_dead_letters(PLAIN)
        self.inspect_dead_letters(SESSION)


def test_memory_adapter_matches_the_model() -> None:
    run_state_machine_as_test(
        QueueMachine,
        settings=settings(
            max_examples=50,
            stateful_step_count=30,
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow],
        ),
    )
