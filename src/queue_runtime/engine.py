"""The queue semantics of the contract as a synchronous state machine.

`QueueEngine` owns messages, locks, sessions and dead-letter queues, and nothing else: no I/O,
no awaiting, no clock of its own (every call takes ``now`` in epoch seconds). The in-memory
adapter wraps it with asyncio waiting; a protocol emulator or a SQL adapter can reuse or mirror
it rather than re-derive the rules. Work that falls due with time (lock expiry, scheduled
messages) is applied lazily by the next call that looks, and `next_due` says when to look.

Rules it enforces:
- peek-lock: a delivered message is locked for the queue's lock duration; complete removes it,
  abandon or expiry returns it ahead of later messages (strict order per partition);
- a message delivered ``max_delivery_count`` times and released again goes to the DLQ with
  reason ``MaxDeliveryCountExceeded`` instead of a further delivery;
- a settlement with a stale lock token raises `MessageLockLost` and changes nothing;
- a session is held by one lease at a time; its messages are locked under the session lease,
  and released together when the lease ends (close or expiry).
"""

from __future__ import annotations

import heapq
import itertools
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Final

from ._errors import (
    MessageLockLost,
    QueueAlreadyExists,
    QueueError,
    QueueNotFound,
    SessionLocked,
    SessionLockLost,
    ValidationError,
)
from ._messages import Message, frozen_attributes, validate_message
from ._names import DEAD_LETTER_SUFFIX

__all__ = [
    "MAX_DELIVERY_COUNT_EXCEEDED",
    "TTL_EXPIRED",
    "QueueEngine",
    "QueueSettings",
    "QueueStatistics",
    "SessionLease",
    "StoredMessage",
]

#: Dead-letter reason for a message delivered too often.
MAX_DELIVERY_COUNT_EXCEEDED: Final = "MaxDeliveryCountExceeded"
#: Dead-letter reason for a message whose time to live ran out (when the queue asks for it).
TTL_EXPIRED: Final = "TTLExpiredException"


@dataclass(frozen=True, slots=True)
class QueueSettings:
    """A queue's definition; equal settings make ``create_queue`` idempotent."""

    requires_session: bool = False
    max_delivery_count: int = 10
    lock_duration: float = 30.0
    default_message_ttl: float | None = None
    dead_letter_on_expiration: bool = False

    def differences(self, other: QueueSettings) -> list[str]:
        """What differs from ``other``, as ``"name: ours != theirs"`` lines (for errors)."""
        return [
            f"{name}: {getattr(self, name)!r} != {getattr(other, name)!r}"
            for name in self.__dataclass_fields__
            if getattr(self, name) != getattr(other, name)
        ]

    def __post_init__(self) -> None:
        if not 1 <= self.max_delivery_count <= 2000:
            raise ValidationError("max_delivery_count must be between 1 and 2000")
        if not 0 < self.lock_duration <= 3600:
            raise ValidationError("lock_duration must be more than 0 and at most 1 hour")
        if self.default_message_ttl is not None and self.default_message_ttl <= 0:
            raise ValidationError("default_message_ttl must be positive")


@dataclass(slots=True, eq=False)
class StoredMessage:
    """A message as the engine holds it, with its delivery state."""

    message: Message
    sequence_number: int
    enqueued_at: float
    expires_at: float | None
    delivery_count: int = 0
    #: Non-zero while delivered and unsettled.
    lock_token: int = 0
    #: The token of its latest delivery while that delivery may still be given back
    #: (released): kept when its lock lapses, cleared when it is settled.
    delivery_token: int = 0
    locked_until: float = 0.0
    dead_letter_reason: str | None = None
    dead_letter_description: str | None = None

    @property
    def session_id(self) -> str | None:
        return self.message.session_id


@dataclass(frozen=True, slots=True)
class SessionLease:
    """Proof of holding a session: valid while ``token`` is the session's current lease."""

    queue: str
    session_id: str
    token: int
    locked_until: float


@dataclass(frozen=True, slots=True)
class QueueStatistics:
    """Counts for tests, dashboards and operators, as of the time they were taken.

    ``None`` means the adapter cannot count that (a provider may also count approximately:
    SQS's figures are estimates).
    """

    #: Ready to deliver now.
    active: int | None
    #: Delivered and not yet settled.
    locked: int | None
    #: Waiting for their scheduled enqueue time.
    scheduled: int | None
    #: In the queue's dead-letter queue.
    dead_letter: int | None
    #: Sessions with messages or state (session queues).
    sessions: int | None = None
    #: Sessions currently held.
    locked_sessions: int | None = None
    #: Messages dropped because their time to live ran out.
    expired: int | None = None
    completed: int | None = None

    @property
    def total(self) -> int | None:
        """Messages still in the queue itself (not its dead-letter queue); ``None`` if a part
        is unknown."""
        parts = (self.active, self.locked, self.scheduled)
        return None if None in parts else sum(p for p in parts if p is not None)


class _Partition:
    """Available messages in sequence order: fresh arrivals plus returned ones ahead of them."""

    __slots__ = ("fresh", "returned")

    def __init__(self) -> None:
        self.fresh: deque[StoredMessage] = deque()
        self.returned: list[tuple[int, StoredMessage]] = []

    def __len__(self) -> int:
        return len(self.fresh) + len(self.returned)

    def put_back(self, stored: StoredMessage) -> None:
        heapq.heappush(self.returned, (stored.sequence_number, stored))

    def pop(self) -> StoredMessage | None:
        returned, fresh = self.returned, self.fresh
        if returned and (not fresh or returned[0][0] < fresh[0].sequence_number):
            return heapq.heappop(returned)[1]
        return fresh.popleft() if fresh else None

    def __iter__(self) -> Iterator[StoredMessage]:
        merged = sorted(
            itertools.chain(((s.sequence_number, s) for s in self.fresh), self.returned),
            key=lambda pair: pair[0],
        )
        return (stored for _, stored in merged)


class _Session:
    __slots__ = ("id", "lease_token", "lease_until", "locked", "partition", "state")

    def __init__(self, session_id: str) -> None:
        self.id = session_id
        self.partition = _Partition()
        self.state: bytes | None = None
        self.lease_token = 0
        self.lease_until = 0.0
        #: Messages delivered under the current lease, by lock token.
        self.locked: dict[int, StoredMessage] = {}


@dataclass(slots=True, eq=False)
class _Queue:
    name: str
    settings: QueueSettings
    is_dead_letter: bool = False
    dead_letter: _Queue | None = None
    partition: _Partition = field(default_factory=_Partition)
    #: Every delivered, unsettled message of the queue, by lock token.
    locked: dict[int, StoredMessage] = field(default_factory=dict)
    #: (locked_until, token) in expiry order (one lock duration per queue keeps it sorted).
    lock_expiry: deque[tuple[float, int]] = field(default_factory=deque)
    scheduled: list[tuple[float, int, StoredMessage]] = field(default_factory=list)
    sessions: dict[str, _Session] = field(default_factory=dict)
    #: Unleased sessions with a message ready, oldest first (an ordered set).
    ready_sessions: dict[str, None] = field(default_factory=dict)
    #: (lease_until, session id, lease token) in expiry order.
    lease_expiry: deque[tuple[float, str, int]] = field(default_factory=deque)
    #: Deliveries whose lock lapsed, by token, the newest `_LAPSED_KEPT`: still released
    #: uncounted while nobody received them again.
    lapsed: dict[int, StoredMessage] = field(default_factory=dict)
    expired: int = 0
    completed: int = 0


class QueueEngine:
    """Queues, their dead-letter queues, locks and sessions, driven by explicit times.

    ``on_available(queue_name, session_id)`` is called whenever messages may have become
    deliverable (``session_id`` is set for a session's messages, ``None`` otherwise), so an
    async facade can wake its waiters without polling.
    """

    def __init__(self, on_available: Callable[[str, str | None], None] | None = None) -> None:
        self._queues: dict[str, _Queue] = {}
        self._sequence = itertools.count(1)
        self._tokens = itertools.count(1)
        self._listeners: list[Callable[[str, str | None], None]] = []
        if on_available is not None:
            self._listeners.append(on_available)

    def subscribe(self, listener: Callable[[str, str | None], None]) -> Callable[[], None]:
        """Add an ``on_available`` listener; returns a function that removes it."""
        self._listeners.append(listener)
        return lambda: self._listeners.remove(listener)

    def _notify(self, queue: _Queue, session_id: str | None) -> None:
        for listener in self._listeners:
            listener(queue.name, session_id)

    # -- administration ------------------------------------------------------------------

    def create_queue(self, name: str, settings: QueueSettings) -> None:
        if name.endswith(DEAD_LETTER_SUFFIX):
            raise ValidationError("dead-letter queues are created with their queue")
        existing = self._queues.get(name)
        if existing is not None:
            if existing.settings != settings:
                raise QueueAlreadyExists(
                    f"queue {name!r} exists with other settings (existing != requested): "
                    + "; ".join(existing.settings.differences(settings))
                )
            return
        dlq_settings = QueueSettings(lock_duration=settings.lock_duration)
        dlq = _Queue(name + DEAD_LETTER_SUFFIX, dlq_settings, is_dead_letter=True)
        self._queues[name] = _Queue(name, settings, dead_letter=dlq)
        self._queues[dlq.name] = dlq

    def delete_queue(self, name: str) -> None:
        queue = self._queue(name)
        if queue.is_dead_letter:
            raise ValidationError("a dead-letter queue is deleted with its queue")
        del self._queues[name]
        del self._queues[name + DEAD_LETTER_SUFFIX]

    def settings(self, name: str) -> QueueSettings:
        return self._queue(name).settings

    def queue_names(self) -> list[str]:
        return [name for name, q in self._queues.items() if not q.is_dead_letter]

    def _queue(self, name: str) -> _Queue:
        try:
            return self._queues[name]
        except KeyError:
            raise QueueNotFound(f"queue {name!r} does not exist") from None

    # -- sending -------------------------------------------------------------------------

    def send(self, name: str, messages: Sequence[Message], now: float, max_size: int) -> None:
        """Validate every message (all or none are stored), then store them in order."""
        queue = self._queues.get(name) or self._queue(name)
        requires_session = queue.settings.requires_session
        for message in messages:
            validate_message(message, max_size=max_size, requires_session=requires_session)
        if (
            len(messages) == 1
            and not queue.is_dead_letter
            and not requires_session
            and not self._listeners
            and queue.settings.default_message_ttl is None
        ):
            message = messages[0]
            if (
                not message.attributes
                and message.time_to_live is None
                and message.scheduled_enqueue_time is None
            ):
                # the common case: nothing to copy, schedule, expire or notify
                queue.partition.fresh.append(
                    StoredMessage(message, next(self._sequence), now, None)
                )
                return
        self.enqueue(name, messages, now)

    def enqueue(self, name: str, messages: Iterable[Message], now: float) -> None:
        """Store already validated messages, in order."""
        queue = self._queue(name)
        if queue.is_dead_letter:
            raise ValidationError("messages cannot be sent to a dead-letter queue")
        default_ttl = queue.settings.default_message_ttl
        plain = not queue.settings.requires_session
        fresh = queue.partition.fresh
        sequence = self._sequence
        touched: set[str | None] = set()
        for message in messages:
            if message.attributes:
                # the sender's mapping may change after sending; what we store must not
                message = message._replace(attributes=frozen_attributes(message.attributes))
            enqueued_at = now
            when = message.scheduled_enqueue_time
            if when is not None and when.timestamp() > now:
                enqueued_at = when.timestamp()
            ttl = message.time_to_live
            ttl_seconds = ttl.total_seconds() if ttl is not None else default_ttl
            stored = StoredMessage(
                message,
                next(sequence),
                enqueued_at,
                None if ttl_seconds is None else enqueued_at + ttl_seconds,
            )
            if enqueued_at > now:
                heapq.heappush(queue.scheduled, (enqueued_at, stored.sequence_number, stored))
            elif plain:
                fresh.append(stored)
            else:
                touched.add(self._make_available(queue, stored, fresh=True))
        if self._listeners:
            if plain and fresh:
                touched.add(None)
            for session_id in touched:
                self._notify(queue, session_id)

    def _make_available(self, queue: _Queue, stored: StoredMessage, *, fresh: bool) -> str | None:
        """File a message as deliverable; returns its session id (None outside sessions)."""
        if not queue.settings.requires_session:
            if fresh:
                queue.partition.fresh.append(stored)
            else:
                queue.partition.put_back(stored)
            return None
        session_id = stored.message.session_id
        assert session_id is not None
        session = queue.sessions.get(session_id)
        if session is None:
            session = queue.sessions[session_id] = _Session(session_id)
        if fresh:
            session.partition.fresh.append(stored)
        else:
            session.partition.put_back(stored)
        if not session.lease_token:
            queue.ready_sessions[session_id] = None
        return session_id

    # -- time ------------------------------------------------------------------------------

    def _advance(self, queue: _Queue, now: float) -> None:
        """Apply what fell due by ``now``: lock and lease expiry, scheduled messages."""
        expiry = queue.lock_expiry
        while expiry and expiry[0][0] <= now:
            _, token = expiry.popleft()
            stored = queue.locked.get(token)
            if stored is not None and stored.locked_until <= now:
                del queue.locked[token]
                _lapsed(queue, token, stored)
                self._release(queue, stored, now)
        leases = queue.lease_expiry
        while leases and leases[0][0] <= now:
            _, session_id, token = leases.popleft()
            session = queue.sessions.get(session_id)
            if session is not None and session.lease_token == token and session.lease_until <= now:
                self._end_lease(queue, session, now)
        scheduled = queue.scheduled
        while scheduled and scheduled[0][0] <= now:
            stored = heapq.heappop(scheduled)[2]
            self._notify(queue, self._make_available(queue, stored, fresh=False))

    def next_due(self, name: str) -> float | None:
        """The earliest time at which something may become deliverable without a call."""
        queue = self._queue(name)
        times = []
        if queue.lock_expiry:
            times.append(queue.lock_expiry[0][0])
        if queue.lease_expiry:
            times.append(queue.lease_expiry[0][0])
        if queue.scheduled:
            times.append(queue.scheduled[0][0])
        return min(times) if times else None

    # -- receiving outside sessions ---------------------------------------------------------

    def receive(self, name: str, max_messages: int, now: float) -> list[StoredMessage]:
        """Lock and return up to ``max_messages`` available messages (none: empty list)."""
        queue = self._queues.get(name) or self._queue(name)
        if queue.settings.requires_session:
            raise ValidationError(
                f"queue {name!r} requires sessions: use accept_session to receive from it"
            )
        if queue.lock_expiry or queue.scheduled:
            self._advance(queue, now)
        return self._deliver(
            queue, queue.partition, max_messages, now, now + queue.settings.lock_duration
        )

    def _deliver(
        self,
        queue: _Queue,
        partition: _Partition,
        max_messages: int,
        now: float,
        locked_until: float,
        session: _Session | None = None,
    ) -> list[StoredMessage]:
        delivered: list[StoredMessage] = []
        spendable = not queue.is_dead_letter
        max_count = queue.settings.max_delivery_count
        pop = partition.pop
        locked, tokens = queue.locked, self._tokens
        while len(delivered) < max_messages:
            stored = pop()
            if stored is None:
                break
            if stored.expires_at is not None and stored.expires_at <= now:
                self._expire(queue, stored)
                continue
            if spendable and stored.delivery_count >= max_count:
                self._to_dead_letter(
                    queue, stored, MAX_DELIVERY_COUNT_EXCEEDED, _max_delivery_text(stored)
                )
                continue
            token = next(tokens)
            stored.delivery_count += 1
            stored.lock_token = stored.delivery_token = token
            stored.locked_until = locked_until
            locked[token] = stored
            if session is None:
                queue.lock_expiry.append((locked_until, token))
            else:
                session.locked[token] = stored
            delivered.append(stored)
        return delivered

    # -- settling ------------------------------------------------------------------------

    # Settlement takes the lock token of the delivery and, for a message delivered under a
    # session lease, that lease's token: only the session's holder may settle it (``lease=0``,
    # a plain client, is refused with a ValidationError).

    def complete(self, name: str, token: int, now: float, lease: int = 0) -> None:
        self._complete(self._queues.get(name) or self._queue(name), token, now, lease)

    def complete_all(
        self, name: str, tokens: Sequence[int], now: float
    ) -> list[tuple[int, QueueError]]:
        """Complete the deliveries ``tokens`` of queue ``name`` (none under a session lease);
        returns ``(index, error)`` for each that could not be completed, the rest are."""
        queue = self._queues.get(name) or self._queue(name)
        failed: list[tuple[int, QueueError]] = []
        for index, token in enumerate(tokens):
            try:
                self._complete(queue, token, now, 0)
            except QueueError as exc:
                failed.append((index, exc))
        return failed

    def _complete(self, queue: _Queue, token: int, now: float, lease: int) -> None:
        stored = queue.locked.get(token)
        if (
            stored is not None
            and stored.locked_until > now
            and (queue.is_dead_letter or not queue.settings.requires_session)
        ):
            del queue.locked[token]  # the common case, without the checks of _take_locked
        else:
            stored = self._take_locked(queue, token, now, lease)
        stored.lock_token = stored.delivery_token = 0
        queue.completed += 1

    def abandon(self, name: str, token: int, now: float, lease: int = 0) -> None:
        queue = self._queue(name)
        stored = self._take_locked(queue, token, now, lease)
        self._release(queue, stored, now)

    def release(self, name: str, token: int, now: float, lease: int = 0) -> None:
        """Give a delivery back as if it never happened: available again at once, its
        ``delivery_count`` lowered again. Also once its lock (or its session's lease) lapsed,
        as long as the lapse has not handed the message back yet (nobody else had it)."""
        queue = self._queue(name)
        stored = queue.locked.get(token)
        if stored is None:
            lapsed = queue.lapsed.pop(token, None)
            if lapsed is None or lapsed.delivery_token != token or lapsed.lock_token:
                raise MessageLockLost("the message was already settled or delivered again")
            lapsed.delivery_token = 0
            lapsed.delivery_count -= 1  # back already, when its lock lapsed
            return
        if stored.session_id is not None and queue.settings.requires_session:
            if not lease:
                raise ValidationError(
                    "a session message is settled only through the SessionClient that received it"
                )
            session = queue.sessions[stored.session_id]
            if session.lease_token != lease or token not in session.locked:
                raise SessionLockLost(f"the lock on session {session.id!r} was lost")
            del session.locked[token]
        del queue.locked[token]
        stored.delivery_count -= 1
        self._release(queue, stored, now)

    def dead_letter(
        self,
        name: str,
        token: int,
        reason: str | None,
        description: str | None,
        now: float,
        lease: int = 0,
    ) -> None:
        queue = self._queue(name)
        if queue.is_dead_letter:
            raise ValidationError("a message in a dead-letter queue cannot be dead-lettered again")
        stored = self._take_locked(queue, token, now, lease)
        self._to_dead_letter(queue, stored, reason, description)

    def renew_lock(self, name: str, token: int, now: float) -> float:
        """Extend a message lock; returns the new expiry."""
        queue = self._queue(name)
        if queue.settings.requires_session and not queue.is_dead_letter:
            raise ValidationError("session messages are locked by their session: renew that")
        stored = self._locked(queue, token, now, 0)
        stored.locked_until = until = now + queue.settings.lock_duration
        queue.lock_expiry.append((until, token))
        return until

    def _locked(self, queue: _Queue, token: int, now: float, lease: int) -> StoredMessage:
        stored = queue.locked.get(token)
        if stored is None:
            raise MessageLockLost("the message was already settled or its lock was lost")
        if stored.session_id is not None and queue.settings.requires_session:
            if not lease:
                raise ValidationError(
                    "a session message is settled only through the SessionClient that received it"
                )
            session = queue.sessions[stored.session_id]
            if session.lease_token != lease:
                raise SessionLockLost(f"the lock on session {session.id!r} was lost")
            if token not in session.locked or session.lease_until <= now:
                if session.lease_until <= now and session.lease_token:
                    self._end_lease(queue, session, now)
                raise SessionLockLost(f"the lock on session {session.id!r} was lost")
        elif stored.locked_until <= now:
            del queue.locked[token]
            self._release(queue, stored, now)
            raise MessageLockLost("the message lock expired; it will be delivered again")
        return stored

    def _take_locked(self, queue: _Queue, token: int, now: float, lease: int) -> StoredMessage:
        """Unlock a delivery that its holder settles (it can no longer be released)."""
        stored = self._locked(queue, token, now, lease)
        stored.delivery_token = 0
        del queue.locked[token]
        if queue.settings.requires_session and stored.session_id is not None:
            session = queue.sessions[stored.session_id]
            del session.locked[token]
            self._collect(queue, session)
        return stored

    def _release(self, queue: _Queue, stored: StoredMessage, now: float) -> None:
        """Return an unlocked message to its partition, or dead-letter it if spent."""
        stored.lock_token = 0
        if stored.delivery_count >= queue.settings.max_delivery_count and not queue.is_dead_letter:
            self._to_dead_letter(
                queue, stored, MAX_DELIVERY_COUNT_EXCEEDED, _max_delivery_text(stored)
            )
            return
        self._notify(queue, self._make_available(queue, stored, fresh=False))

    def _to_dead_letter(
        self, queue: _Queue, stored: StoredMessage, reason: str | None, description: str | None
    ) -> None:
        dlq = queue.dead_letter
        assert dlq is not None
        stored.lock_token = stored.delivery_token = 0
        stored.expires_at = None  # a dead letter waits for someone to look at it
        stored.dead_letter_reason = reason
        stored.dead_letter_description = description
        dlq.partition.put_back(stored)
        self._notify(dlq, None)

    def _expire(self, queue: _Queue, stored: StoredMessage) -> None:
        if queue.settings.dead_letter_on_expiration and not queue.is_dead_letter:
            self._to_dead_letter(queue, stored, TTL_EXPIRED, "the message's time to live ran out")
        else:
            stored.delivery_token = 0
            queue.expired += 1

    # -- sessions ------------------------------------------------------------------------

    def accept_session(self, name: str, session_id: str | None, now: float) -> SessionLease | None:
        """Lease ``session_id``, or the next session with a ready message (None if none).

        Raises `SessionLocked` when ``session_id`` is leased by someone else.
        """
        queue = self._queue(name)
        if not queue.settings.requires_session:
            raise ValidationError(f"queue {name!r} does not require sessions")
        self._advance(queue, now)
        if session_id is None:
            session = self._next_ready_session(queue, now)
            if session is None:
                return None
        else:
            session = queue.sessions.get(session_id)
            if session is None:
                session = queue.sessions[session_id] = _Session(session_id)
            elif session.lease_token:
                raise SessionLocked(f"session {session_id!r} is held by another receiver")
        token = next(self._tokens)
        session.lease_token = token
        session.lease_until = until = now + queue.settings.lock_duration
        queue.ready_sessions.pop(session.id, None)
        queue.lease_expiry.append((until, session.id, token))
        return SessionLease(queue.name, session.id, token, until)

    def _next_ready_session(self, queue: _Queue, now: float) -> _Session | None:
        while queue.ready_sessions:
            session_id = next(iter(queue.ready_sessions))
            session = queue.sessions[session_id]
            if self._has_deliverable(queue, session, now):
                return session
            del queue.ready_sessions[session_id]
            self._collect(queue, session)
        return None

    def _has_deliverable(self, queue: _Queue, session: _Session, now: float) -> bool:
        """Drop expired heads of the session; report whether a message is ready."""
        partition = session.partition
        while True:
            stored = partition.pop()
            if stored is None:
                return False
            if stored.expires_at is not None and stored.expires_at <= now:
                self._expire(queue, stored)
                continue
            partition.put_back(stored)
            return True

    def _lease(self, lease: SessionLease, now: float) -> tuple[_Queue, _Session]:
        queue = self._queue(lease.queue)
        session = queue.sessions.get(lease.session_id)
        if session is None or session.lease_token != lease.token:
            raise SessionLockLost(f"the lock on session {lease.session_id!r} was lost")
        if session.lease_until <= now:
            self._end_lease(queue, session, now)
            raise SessionLockLost(f"the lock on session {lease.session_id!r} expired")
        return queue, session

    def session_receive(
        self, lease: SessionLease, max_messages: int, now: float
    ) -> list[StoredMessage]:
        queue, session = self._lease(lease, now)
        self._advance(queue, now)
        return self._deliver(
            queue, session.partition, max_messages, now, session.lease_until, session
        )

    def check_lease(self, lease: SessionLease, now: float) -> float:
        """Raise `SessionLockLost` unless the lease holds; returns its expiry."""
        return self._lease(lease, now)[1].lease_until

    def renew_session(self, lease: SessionLease, now: float) -> float:
        queue, session = self._lease(lease, now)
        session.lease_until = until = now + queue.settings.lock_duration
        for stored in session.locked.values():
            stored.locked_until = until
        queue.lease_expiry.append((until, session.id, lease.token))
        return until

    def release_session(self, lease: SessionLease, now: float) -> None:
        """End the lease (a no-op if it already ended); unsettled messages become available."""
        queue = self._queues.get(lease.queue)
        session = queue.sessions.get(lease.session_id) if queue else None
        if queue is None or session is None or session.lease_token != lease.token:
            return
        self._end_lease(queue, session, now)

    def _end_lease(self, queue: _Queue, session: _Session, now: float) -> None:
        session.lease_token = 0
        locked = sorted(session.locked.values(), key=lambda s: s.sequence_number)
        session.locked.clear()
        for stored in locked:
            del queue.locked[stored.lock_token]
            _lapsed(queue, stored.lock_token, stored)
            self._release(queue, stored, now)
        if len(session.partition):
            queue.ready_sessions[session.id] = None
            self._notify(queue, session.id)
        self._collect(queue, session)

    def get_state(self, lease: SessionLease, now: float) -> bytes | None:
        return self._lease(lease, now)[1].state

    def set_state(self, lease: SessionLease, state: bytes | None, now: float) -> None:
        self._lease(lease, now)[1].state = state

    def _collect(self, queue: _Queue, session: _Session) -> None:
        """Forget a session that holds nothing: no lease, messages or state."""
        if (
            not session.lease_token
            and session.state is None
            and not session.locked
            and not len(session.partition)
        ):
            queue.sessions.pop(session.id, None)
            queue.ready_sessions.pop(session.id, None)

    # -- introspection -------------------------------------------------------------------

    def statistics(self, name: str, now: float) -> QueueStatistics:
        queue = self._queue(name)
        self._advance(queue, now)
        active = len(queue.partition) + sum(len(s.partition) for s in queue.sessions.values())
        dlq = queue.dead_letter
        return QueueStatistics(
            active=active,
            locked=len(queue.locked),
            scheduled=len(queue.scheduled),
            dead_letter=len(dlq.partition) + len(dlq.locked) if dlq else 0,
            sessions=len(queue.sessions),
            locked_sessions=sum(1 for s in queue.sessions.values() if s.lease_token),
            expired=queue.expired,
            completed=queue.completed,
        )

    def peek(
        self,
        name: str,
        max_messages: int,
        now: float,
        *,
        from_sequence_number: int = 0,
        session_id: str | None = None,
    ) -> list[StoredMessage]:
        """Up to ``max_messages`` messages of the queue (or of one session), ready or locked,
        in sequence order from ``from_sequence_number`` on, without locking or counting them.
        Scheduled messages not yet due are left out."""
        queue = self._queue(name)
        self._advance(queue, now)
        if session_id is None:
            partitions = [queue.partition, *(s.partition for s in queue.sessions.values())]
            locked: Iterable[StoredMessage] = queue.locked.values()
        else:
            session = queue.sessions.get(session_id)
            partitions = [session.partition] if session else []
            locked = session.locked.values() if session else ()
        candidates = (
            stored
            for stored in itertools.chain(itertools.chain.from_iterable(partitions), locked)
            if stored.sequence_number >= from_sequence_number
            and (stored.expires_at is None or stored.expires_at > now)
        )
        return heapq.nsmallest(max_messages, candidates, key=lambda s: s.sequence_number)


#: Lapsed deliveries a queue remembers for `QueueEngine.release` (the oldest are forgotten).
_LAPSED_KEPT: Final = 10_000


def _lapsed(queue: _Queue, token: int, stored: StoredMessage) -> None:
    lapsed = queue.lapsed
    lapsed[token] = stored
    if len(lapsed) > _LAPSED_KEPT:
        del lapsed[next(iter(lapsed))]


def _max_delivery_text(stored: StoredMessage) -> str:
    return f"delivered {stored.delivery_count} times without being completed"
