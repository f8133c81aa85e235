"""The in-memory adapter: the reference implementation of the contract, in one process.

A thin asyncio facade over `QueueEngine`: it validates arguments, reads the (injectable)
clock, and parks receivers until the engine reports a message or a due time passes. Clients
built on the same engine behave like separate processes talking to one broker, which is how
tests exercise cross-client session exclusivity. One engine serves one event loop: clients that
share it (``memory://name``) must run on the same loop; it is not a cross-thread broker.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from typing import Final

from .._arguments import (
    check_dead_letter_reason,
    check_max_messages,
    check_sequence_number,
    message_sequence,
    queue_definition,
    queue_name,
    received_sequence,
    timeout_seconds,
)
from .._capabilities import Capabilities
from .._clock import Clock, ManualClock, SystemClock, to_datetime, to_seconds
from .._errors import SessionLockLost, ValidationError
from .._lifecycle import ClientLifecycle
from .._logging import get_logger
from .._messages import Message, ReceivedMessage
from .._names import MessageId, QueueName, SessionId
from .._waiting import Waiters
from ..config import InMemoryConfig
from ..engine import QueueEngine, QueueStatistics, SessionLease, StoredMessage
from ..ports import (
    DEFAULT_LOCK_DURATION,
    DEFAULT_MAX_DELIVERY_COUNT,
    QueueClient,
    SessionClient,
    Timeout,
    batch_settle_error,
    settle_each,
)

__all__ = ["InMemoryQueueClient", "InMemorySessionClient", "shared_engine"]

_DEFAULT_TIMEOUT: Final = 30.0
_log = get_logger("adapters.memory")
_new_tuple = tuple.__new__
_ACCEPT: Final = object()  # waiters for "next available session"
_shared_lock = threading.Lock()
_shared_engines: dict[str, QueueEngine] = {}


def shared_engine(name: str) -> QueueEngine:
    """The process-wide engine behind ``memory://<name>``."""
    with _shared_lock:
        engine = _shared_engines.get(name)
        if engine is None:
            engine = _shared_engines[name] = QueueEngine()
        return engine


# A receipt is (engine, queue name, lock token, session lease token or 0): a plain tuple, as
# it is built for every delivery.
_Receipt = tuple[QueueEngine, str, int, int]


class InMemoryQueueClient(ClientLifecycle, QueueClient):
    """Queues in this process's memory, with the strictest semantics of the contract.

    ``clock`` decides when locks, TTLs and schedules fall due: pass a `ManualClock` and call
    ``clock.advance(...)`` to test lock expiry without sleeping. ``engine`` lets several
    clients share one broker.
    """

    def __init__(
        self,
        config: InMemoryConfig | None = None,
        *,
        clock: Clock | None = None,
        engine: QueueEngine | None = None,
        default_timeout: float | timedelta = _DEFAULT_TIMEOUT,
    ) -> None:
        self._config = config or InMemoryConfig()
        self._clock = clock or SystemClock()
        if engine is None:
            engine = shared_engine(self._config.name) if self._config.name else QueueEngine()
        self._engine = engine
        self._default_timeout = to_seconds(default_timeout)
        self._max_size = self._config.max_message_size
        self._capabilities = Capabilities(max_message_size=self._max_size, release=True)
        self._waiters = Waiters()
        self._sessions: set[InMemorySessionClient] = set()
        self._unsubscribe: list[object] = []
        self._stop_listening: Callable[[], None] | None = None

    def __repr__(self) -> str:
        return f"InMemoryQueueClient(state={self._state!r}, clock={self._clock!r})"

    @property
    def capabilities(self) -> Capabilities:
        return self._capabilities

    @property
    def clock(self) -> Clock:
        return self._clock

    @property
    def engine(self) -> QueueEngine:
        return self._engine

    async def open(self) -> None:
        if not self._needs_open():
            return
        if isinstance(self._clock, ManualClock):
            self._unsubscribe.append(self._clock.subscribe(self._waiters.notify_all))
        self._state = "open"

    async def aclose(self) -> None:
        if self._state != "open":
            self._state = "closed"
            return
        for session in list(self._sessions):
            await session.close()
        for unsubscribe in self._unsubscribe:
            unsubscribe()  # type: ignore[operator]
        self._state = "closed"
        self._waiters.notify_all()

    def _on_available(self, queue: str, session_id: str | None) -> None:
        waiters = self._waiters
        if session_id is None:
            waiters.notify(queue)
        else:
            waiters.notify((queue, session_id))
            waiters.notify((queue, _ACCEPT))

    async def _wait(self, key: object, timeout: float) -> None:
        """Park until the engine reports availability for ``key`` or ``timeout`` passes.

        The client listens to the engine only while something waits, so sending and
        receiving without waiters pays nothing for notifications.
        """
        if not self._waiters:
            self._stop_listening = self._engine.subscribe(self._on_available)
        try:
            await self._waiters.wait(key, timeout)
        finally:
            if not self._waiters and self._stop_listening is not None:
                self._stop_listening()
                self._stop_listening = None

    # -- administration ------------------------------------------------------------------

    async def create_queue(
        self,
        queue: QueueName | str,
        *,
        requires_session: bool = False,
        max_delivery_count: int = DEFAULT_MAX_DELIVERY_COUNT,
        lock_duration: float | timedelta = DEFAULT_LOCK_DURATION,
        default_message_ttl: float | timedelta | None = None,
        dead_letter_on_expiration: bool = False,
    ) -> None:
        self._check_open()
        name, settings = queue_definition(
            queue,
            requires_session=requires_session,
            max_delivery_count=max_delivery_count,
            lock_duration=lock_duration,
            default_message_ttl=default_message_ttl,
            dead_letter_on_expiration=dead_letter_on_expiration,
        )
        self._engine.create_queue(name, settings)
        _log.debug("created queue %s (%s)", name, settings)

    async def delete_queue(self, queue: QueueName | str) -> None:
        self._check_open()
        name = queue_name(queue)
        self._engine.delete_queue(name)
        _log.debug("deleted queue %s", name)

    def statistics(self, queue: QueueName | str) -> QueueStatistics:
        """Counts of active, locked, scheduled and dead-lettered messages, synchronously (for
        tests; `get_queue_statistics` is the port's form)."""
        return self._engine.statistics(queue_name(queue), self._clock.now())

    async def get_queue_statistics(self, queue: QueueName | str) -> QueueStatistics:
        self._check_open()
        return self.statistics(queue)

    async def peek_messages(
        self,
        queue: QueueName | str,
        *,
        max_messages: int = 10,
        from_sequence_number: int | None = None,
    ) -> list[ReceivedMessage]:
        self._check_open()
        return self._peek(queue_name(queue), max_messages, from_sequence_number, None)

    def _peek(
        self,
        queue: str,
        max_messages: int,
        from_sequence_number: int | None,
        session_id: str | None,
    ) -> list[ReceivedMessage]:
        stored = self._engine.peek(
            queue,
            check_max_messages(max_messages),
            self._clock.now(),
            from_sequence_number=check_sequence_number(from_sequence_number),
            session_id=session_id,
        )
        return [
            ReceivedMessage(
                s.message,
                s.delivery_count,
                s.enqueued_at,
                None,
                s.dead_letter_reason,
                s.dead_letter_description,
                s.sequence_number,
            )
            for s in stored
        ]

    # -- sending -------------------------------------------------------------------------

    async def send_message(self, queue: QueueName | str, message: Message) -> MessageId:
        if self._state != "open":
            self._check_open()
        self._engine.send(queue_name(queue), (message,), self._clock.now(), self._max_size)
        return str.__new__(MessageId, message.message_id)

    async def send_messages(
        self, queue: QueueName | str, messages: Sequence[Message]
    ) -> list[MessageId]:
        self._check_open()
        messages = message_sequence(messages)
        self._engine.send(queue_name(queue), messages, self._clock.now(), self._max_size)
        return [str.__new__(MessageId, m.message_id) for m in messages]

    # -- receiving -----------------------------------------------------------------------

    async def receive_message(
        self, queue: QueueName | str, *, timeout: Timeout = None
    ) -> ReceivedMessage | None:
        received = await self._receive(queue, 1, timeout)
        return received[0] if received else None

    async def receive_messages(
        self, queue: QueueName | str, *, max_messages: int = 10, timeout: Timeout = None
    ) -> list[ReceivedMessage]:
        return await self._receive(queue, check_max_messages(max_messages), timeout)

    async def _receive(
        self, queue: QueueName | str, max_messages: int, timeout: Timeout
    ) -> list[ReceivedMessage]:
        if self._state != "open":
            self._check_open()
        name = queue_name(queue)
        wait = timeout_seconds(timeout, self._default_timeout)
        engine, clock = self._engine, self._clock
        stored = engine.receive(name, max_messages, clock.now())
        if not stored and wait > 0:
            loop_deadline = _loop_time() + wait
            while not stored:
                remaining = loop_deadline - _loop_time()
                if remaining <= 0:
                    break
                await self._wait(name, _until_due(engine.next_due(name), clock, remaining))
                self._check_open()
                stored = engine.receive(name, max_messages, clock.now())
        return self._deliver(name, stored, 0)

    def _deliver(
        self, queue: str, stored: list[StoredMessage], lease_token: int
    ) -> list[ReceivedMessage]:
        engine = self._engine
        # tuple.__new__ directly: the named tuple's own __new__ is one more Python call
        return [
            _new_tuple(
                ReceivedMessage,
                (
                    s.message,
                    s.delivery_count,
                    s.enqueued_at,
                    s.locked_until,
                    s.dead_letter_reason,
                    s.dead_letter_description,
                    s.sequence_number,
                    (engine, queue, s.lock_token, lease_token),
                ),
            )
            for s in stored
        ]

    # -- settling ------------------------------------------------------------------------

    def _receipt(self, message: ReceivedMessage) -> _Receipt:
        receipt = getattr(message, "receipt", None)
        if type(receipt) is tuple and receipt[0] is self._engine and self._state == "open":
            return receipt
        self._check_open()
        if not isinstance(message, ReceivedMessage):
            raise ValidationError(f"expected a ReceivedMessage, not {type(message).__name__}")
        if receipt is None:
            raise ValidationError("this message was peeked, not received: it cannot be settled")
        raise ValidationError("this message was not received through this client's broker")

    async def complete_messages(self, messages: Sequence[ReceivedMessage]) -> None:
        # one engine call per message, no await between them: the batch is settled at once
        receipts: list[_Receipt] = [m.receipt for m in self._own(messages)]  # type: ignore[misc]
        if not receipts:
            return
        now, name, complete_all = self._clock.now(), receipts[0][1], self._engine.complete_all
        if all(receipt[1] == name for receipt in receipts):  # one queue: one engine call
            failed = complete_all(name, [r[2] for r in receipts], now)
        else:  # messages of several queues: one call each
            failed = [
                (index, error)
                for index, receipt in enumerate(receipts)
                for _, error in complete_all(receipt[1], (receipt[2],), now)
            ]
        if failed:
            refused = {index for index, _ in failed}
            raise batch_settle_error(
                [m.message_id for i, m in enumerate(messages) if i not in refused],
                [(messages[index].message_id, exc) for index, exc in failed],
            )

    async def abandon_messages(self, messages: Sequence[ReceivedMessage]) -> None:
        await settle_each(self.abandon_message, self._own(messages))

    async def release_messages(self, messages: Sequence[ReceivedMessage]) -> None:
        await settle_each(self._release, self._own(messages))

    async def _release(self, message: ReceivedMessage) -> None:
        receipt = self._receipt(message)
        self._engine.release(receipt[1], receipt[2], self._clock.now())

    def _own(self, messages: Sequence[ReceivedMessage]) -> Sequence[ReceivedMessage]:
        """``messages`` once each is known to be this client's to settle (a batch is checked
        whole before any of it is settled)."""
        if type(messages) is not list and type(messages) is not tuple:
            received_sequence(messages)  # refuses what is not a sequence
        engine, is_open = self._engine, self._state == "open"
        for message in messages:
            receipt = message.receipt if type(message) is ReceivedMessage else None
            if type(receipt) is tuple and receipt[0] is engine and not receipt[3] and is_open:
                continue  # the common case, without the checks below
            received_sequence((message,))
            if self._receipt(message)[3]:
                raise ValidationError(
                    "a session message is settled only through the SessionClient that received it"
                )
        return messages

    async def complete_message(self, message: ReceivedMessage) -> None:
        receipt = message.receipt if type(message) is ReceivedMessage else None
        if type(receipt) is not tuple or receipt[0] is not self._engine or self._state != "open":
            receipt = self._receipt(message)
        self._engine.complete(receipt[1], receipt[2], self._clock.now())

    async def abandon_message(self, message: ReceivedMessage) -> None:
        receipt = self._receipt(message)
        self._engine.abandon(receipt[1], receipt[2], self._clock.now())

    async def dead_letter_message(
        self,
        message: ReceivedMessage,
        *,
        reason: str | None = None,
        description: str | None = None,
    ) -> None:
        receipt = self._receipt(message)
        check_dead_letter_reason(reason, description)
        self._engine.dead_letter(receipt[1], receipt[2], reason, description, self._clock.now())

    async def renew_message_lock(self, message: ReceivedMessage) -> datetime:
        receipt = self._receipt(message)
        return to_datetime(self._engine.renew_lock(receipt[1], receipt[2], self._clock.now()))

    # -- sessions ------------------------------------------------------------------------

    async def accept_session(
        self,
        queue: QueueName | str,
        session_id: str | None = None,
        *,
        timeout: Timeout = None,
    ) -> InMemorySessionClient | None:
        self._check_open()
        name = queue_name(queue)
        engine, clock = self._engine, self._clock
        # checked even where unused (a named accept never waits): bad input is refused
        wait = timeout_seconds(timeout, self._default_timeout)
        if session_id is not None:
            lease = engine.accept_session(name, SessionId(session_id), clock.now())
        else:
            lease = engine.accept_session(name, None, clock.now())
            loop_deadline = _loop_time() + wait
            while lease is None:
                remaining = loop_deadline - _loop_time()
                if remaining <= 0:
                    return None
                key = (name, _ACCEPT)
                await self._wait(key, _until_due(engine.next_due(name), clock, remaining))
                self._check_open()
                lease = engine.accept_session(name, None, clock.now())
        assert lease is not None
        session = InMemorySessionClient(self, lease)
        self._sessions.add(session)
        _log.debug("accepted session %s of %s", lease.session_id, name)
        return session


class InMemorySessionClient(SessionClient):
    """A held session of an `InMemoryQueueClient`."""

    def __init__(self, client: InMemoryQueueClient, lease: SessionLease) -> None:
        self._client = client
        self._engine = client.engine
        self._clock = client.clock
        self._lease = lease
        self._locked_until = lease.locked_until
        self._closed = False

    def __repr__(self) -> str:
        return f"InMemorySessionClient(queue={self._lease.queue!r}, session_id={self.session_id!r})"

    @property
    def session_id(self) -> str:
        return self._lease.session_id

    @property
    def locked_until(self) -> datetime:
        return to_datetime(self._locked_until)

    def _check(self) -> SessionLease:
        if self._closed:
            raise SessionLockLost(f"session {self.session_id!r} was closed")
        self._client._check_open()
        self._engine.check_lease(self._lease, self._clock.now())
        return self._lease

    async def receive_message(self, *, timeout: Timeout = None) -> ReceivedMessage | None:
        received = await self._receive(1, timeout)
        return received[0] if received else None

    async def receive_messages(
        self, *, max_messages: int = 10, timeout: Timeout = None
    ) -> list[ReceivedMessage]:
        return await self._receive(check_max_messages(max_messages), timeout)

    async def _receive(self, max_messages: int, timeout: Timeout) -> list[ReceivedMessage]:
        lease = self._check()
        client, engine, clock = self._client, self._engine, self._clock
        wait = timeout_seconds(timeout, client._default_timeout)
        stored = engine.session_receive(lease, max_messages, clock.now())
        if not stored and wait > 0:
            loop_deadline = _loop_time() + wait
            key = (lease.queue, lease.session_id)
            while not stored:
                remaining = loop_deadline - _loop_time()
                if remaining <= 0:
                    break
                # wake by the lease's expiry at the latest, so a lapsed lock is reported
                due = min(self._locked_until, engine.next_due(lease.queue) or self._locked_until)
                await client._wait(key, _until_due(due, clock, remaining))
                lease = self._check()
                stored = engine.session_receive(lease, max_messages, clock.now())
        return client._deliver(lease.queue, stored, lease.token)

    def _receipt(self, message: ReceivedMessage) -> _Receipt:
        receipt = self._client._receipt(message)
        if receipt[3] != self._lease.token:
            raise ValidationError("this message was not received through this session")
        self._check()
        return receipt

    # settling: under this session's lease (the plain client is refused by the engine)

    async def complete_message(self, message: ReceivedMessage) -> None:
        receipt = self._receipt(message)
        self._engine.complete(receipt[1], receipt[2], self._clock.now(), receipt[3])

    async def abandon_message(self, message: ReceivedMessage) -> None:
        receipt = self._receipt(message)
        self._engine.abandon(receipt[1], receipt[2], self._clock.now(), receipt[3])

    async def dead_letter_message(
        self,
        message: ReceivedMessage,
        *,
        reason: str | None = None,
        description: str | None = None,
    ) -> None:
        receipt = self._receipt(message)
        check_dead_letter_reason(reason, description)
        self._engine.dead_letter(
            receipt[1], receipt[2], reason, description, self._clock.now(), receipt[3]
        )

    async def complete_messages(self, messages: Sequence[ReceivedMessage]) -> None:
        await settle_each(self.complete_message, self._own(messages))

    async def abandon_messages(self, messages: Sequence[ReceivedMessage]) -> None:
        await settle_each(self.abandon_message, self._own(messages))

    async def release_messages(self, messages: Sequence[ReceivedMessage]) -> None:
        # also once the lease lapsed (the engine refuses a message handed back meanwhile)
        checked = [self._client._receipt(message) for message in received_sequence(messages)]
        if any(receipt[3] != self._lease.token for receipt in checked):
            raise ValidationError("a message was not received through this session")
        await settle_each(self._release, messages)

    async def _release(self, message: ReceivedMessage) -> None:
        receipt: _Receipt = message.receipt  # type: ignore[assignment]
        self._engine.release(receipt[1], receipt[2], self._clock.now(), receipt[3])

    def _own(self, messages: Sequence[ReceivedMessage]) -> Sequence[ReceivedMessage]:
        for message in received_sequence(messages):
            self._receipt(message)
        return messages

    async def peek_messages(
        self, *, max_messages: int = 10, from_sequence_number: int | None = None
    ) -> list[ReceivedMessage]:
        lease = self._check()
        return self._client._peek(lease.queue, max_messages, from_sequence_number, lease.session_id)

    async def renew_session_lock(self) -> datetime:
        lease = self._check()
        self._locked_until = self._engine.renew_session(lease, self._clock.now())
        return to_datetime(self._locked_until)

    async def get_state(self) -> bytes | None:
        return self._engine.get_state(self._check(), self._clock.now())

    async def set_state(self, state: bytes | None) -> None:
        if state is not None and type(state) is not bytes:
            raise ValidationError(
                f"session state must be bytes or None, not {type(state).__name__}"
            )
        self._engine.set_state(self._check(), state, self._clock.now())

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._client._sessions.discard(self)
        self._engine.release_session(self._lease, self._clock.now())
        _log.debug("released session %s of %s", self._lease.session_id, self._lease.queue)


def _loop_time() -> float:
    return asyncio.get_running_loop().time()


def _until_due(due: float | None, clock: Clock, remaining: float) -> float:
    """How long to park: until ``due`` (clock time) or ``remaining`` (real time), if sooner."""
    if due is None:
        return remaining
    return max(0.0, min(remaining, due - clock.now()))
