"""Service Bus queue semantics for the emulator: sequence numbers, locks, sessions, DLQ.

Why not `queue_runtime.engine.QueueEngine`: Service Bus addresses messages by sequence number
and lock token (deferral, receive-by-sequence-number, cancel-scheduled, peek from a sequence
number including locked, deferred and scheduled messages, renewal of many locks at once) and
counts deliveries from 0; the engine counts from 1 and has none of those operations. This
module mirrors the engine's rules (strict order per partition, abandon/expiry return a message
ahead of later ones, spent messages dead-lettered with ``MaxDeliveryCountExceeded``) on the
Service Bus data model. Every call takes ``now`` (epoch seconds); nothing here blocks or does I/O.
"""

from __future__ import annotations

import heapq
import itertools
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from enum import IntEnum
from typing import Any, Final

from ._codec import ParsedMessage

__all__ = [
    "MAX_DELIVERY_COUNT_EXCEEDED",
    "TTL_EXPIRED",
    "BrokerError",
    "Condition",
    "Queue",
    "QueueOptions",
    "Session",
    "State",
    "Store",
    "Stored",
]

MAX_DELIVERY_COUNT_EXCEEDED: Final = "MaxDeliveryCountExceeded"
TTL_EXPIRED: Final = "TTLExpiredException"
DEAD_LETTER_SUFFIX: Final = "/$deadletterqueue"


class Condition:
    """AMQP error conditions the SDK maps to its exception classes (``exceptions.py``)."""

    MESSAGE_LOCK_LOST: Final = "com.microsoft:message-lock-lost"
    SESSION_LOCK_LOST: Final = "com.microsoft:session-lock-lost"
    SESSION_CANNOT_BE_LOCKED: Final = "com.microsoft:session-cannot-be-locked"
    MESSAGE_NOT_FOUND: Final = "com.microsoft:message-not-found"
    ARGUMENT_ERROR: Final = "com.microsoft:argument-error"
    TIMEOUT: Final = "com.microsoft:timeout"
    NOT_FOUND: Final = "amqp:not-found"
    NOT_ALLOWED: Final = "amqp:not-allowed"
    NOT_IMPLEMENTED: Final = "amqp:not-implemented"
    UNAUTHORIZED: Final = "amqp:unauthorized-access"
    MESSAGE_SIZE_EXCEEDED: Final = "amqp:link:message-size-exceeded"


#: Management status code for each condition (``statusCode`` in a $management reply).
STATUS_CODES: Final = {
    Condition.MESSAGE_LOCK_LOST: 410,
    Condition.SESSION_LOCK_LOST: 410,
    Condition.SESSION_CANNOT_BE_LOCKED: 410,
    Condition.MESSAGE_NOT_FOUND: 404,
    Condition.NOT_FOUND: 404,
    Condition.ARGUMENT_ERROR: 400,
    Condition.NOT_ALLOWED: 400,
    Condition.NOT_IMPLEMENTED: 501,
    Condition.TIMEOUT: 408,
    Condition.UNAUTHORIZED: 401,
    Condition.MESSAGE_SIZE_EXCEEDED: 413,
}


class BrokerError(Exception):
    """A refusal the broker reports to the client as an AMQP error condition."""

    def __init__(self, condition: str, description: str) -> None:
        super().__init__(description)
        self.condition = condition
        self.description = description

    @property
    def status_code(self) -> int:
        return STATUS_CODES.get(self.condition, 500)


class State(IntEnum):
    """``x-opt-message-state`` as the service reports it."""

    ACTIVE = 0
    DEFERRED = 1
    SCHEDULED = 2


@dataclass(frozen=True, slots=True)
class QueueOptions:
    """A queue's settings, named as in the Service Bus QueueDescription (durations in seconds).

    Microsoft's limits are lock duration 5 s to 5 min; the emulator also accepts shorter locks
    (down to 0.1 s) so that tests of lock expiry stay fast.
    """

    requires_session: bool = False
    max_delivery_count: int = 10
    lock_duration: float = 60.0
    default_message_time_to_live: float | None = None
    dead_lettering_on_message_expiration: bool = False
    requires_duplicate_detection: bool = False
    duplicate_detection_history_time_window: float = 600.0
    #: Free text kept for the queue's owner (Service Bus allows 1024 characters).
    user_metadata: str | None = None

    def __post_init__(self) -> None:
        if not 1 <= self.max_delivery_count <= 2_000_000_000:
            raise ValueError("max_delivery_count must be at least 1")
        if not 0.1 <= self.lock_duration <= 300:
            raise ValueError("lock_duration must be between 0.1 s and 5 minutes")
        ttl = self.default_message_time_to_live
        if ttl is not None and ttl <= 0:
            raise ValueError("default_message_time_to_live must be positive")
        if not 20 <= self.duplicate_detection_history_time_window <= 7 * 86400:
            raise ValueError("duplicate_detection_history_time_window must be 20 s to 7 days")
        if self.user_metadata is not None and len(self.user_metadata) > 1024:
            raise ValueError("user_metadata must be at most 1024 characters")


@dataclass(slots=True, eq=False)
class Stored:
    """A message in an entity, with its delivery state."""

    parsed: ParsedMessage
    sequence_number: int
    enqueued_at: float
    expires_at: float | None
    session_id: str | None
    state: State = State.ACTIVE
    scheduled_at: float | None = None
    #: Unsuccessful deliveries so far (the AMQP header's delivery-count: 0 on first delivery).
    delivery_count: int = 0
    lock_token: uuid.UUID | None = None
    locked_until: float = 0.0
    dead_letter_source: str | None = None
    dead_letter_reason: str | None = None
    dead_letter_description: str | None = None

    @property
    def locked(self) -> bool:
        return self.lock_token is not None


@dataclass(slots=True, eq=False)
class Session:
    id: str
    state: bytes | None = None
    #: Who holds the session lock (a broker link), or None.
    holder: Any = None
    locked_until: float = 0.0
    available: list[int] = field(default_factory=list)
    #: Lock tokens of messages delivered under the current session lock.
    locked: set[uuid.UUID] = field(default_factory=set)


@dataclass(slots=True, eq=False)
class Queue:
    name: str
    options: QueueOptions
    is_dead_letter: bool = False
    dead_letter: Queue | None = None
    parent: Queue | None = None
    messages: dict[int, Stored] = field(default_factory=dict)
    available: list[int] = field(default_factory=list)
    locks: dict[uuid.UUID, Stored] = field(default_factory=dict)
    scheduled: list[tuple[float, int]] = field(default_factory=list)
    sessions: dict[str, Session] = field(default_factory=dict)
    duplicates: dict[Any, float] = field(default_factory=dict)
    sequence: Iterator[int] = field(default_factory=lambda: itertools.count(1))
    created_at: float = 0.0

    @property
    def requires_session(self) -> bool:
        return self.options.requires_session and not self.is_dead_letter

    def session(self, session_id: str) -> Session:
        session = self.sessions.get(session_id)
        if session is None:
            session = self.sessions[session_id] = Session(session_id)
        return session


class Store:
    """Every entity of one emulated namespace. Not thread-safe: the broker serialises calls."""

    def __init__(self) -> None:
        self._queues: dict[str, Queue] = {}
        #: (locked_until, token, queue name) of message locks, soonest first.
        self._lock_expiry: list[tuple[float, uuid.UUID, str]] = []

    # -- administration ------------------------------------------------------------------

    def create_queue(self, name: str, options: QueueOptions, now: float) -> Queue:
        key = name.lower()
        if not name or "/" in name.strip("/") or key.endswith("$deadletterqueue"):
            raise BrokerError(Condition.ARGUMENT_ERROR, f"invalid queue name {name!r}")
        existing = self._queues.get(key)
        if existing is not None:
            raise BrokerError("com.microsoft:entity-already-exists", f"queue {name!r} exists")
        queue = Queue(name, options, created_at=now)
        dlq = Queue(name + "/$DeadLetterQueue", options, is_dead_letter=True, parent=queue)
        queue.dead_letter = dlq
        dlq.sequence = queue.sequence
        self._queues[key] = queue
        self._queues[key + DEAD_LETTER_SUFFIX] = dlq
        return queue

    def delete_queue(self, name: str) -> None:
        key = name.lower()
        if key not in self._queues or self._queues[key].is_dead_letter:
            raise BrokerError(Condition.NOT_FOUND, f"queue {name!r} does not exist")
        del self._queues[key]
        del self._queues[key + DEAD_LETTER_SUFFIX]

    def queues(self) -> list[Queue]:
        return [q for q in self._queues.values() if not q.is_dead_letter]

    def find(self, name: str) -> Queue | None:
        return self._queues.get(name.lower())

    def queue(self, name: str) -> Queue:
        queue = self._queues.get(name.lower())
        if queue is None:
            raise BrokerError(
                Condition.NOT_FOUND, f"The messaging entity '{name}' could not be found."
            )
        return queue

    # -- sending -------------------------------------------------------------------------

    def send(
        self, queue: Queue, parsed: ParsedMessage, now: float, scheduled_at: float | None = None
    ) -> int:
        """Store one message; returns its sequence number (0: dropped as a duplicate)."""
        if queue.is_dead_letter:
            raise BrokerError(Condition.NOT_ALLOWED, "cannot send to a dead-letter queue")
        session_id = parsed.session_id
        if queue.requires_session and not session_id:
            raise BrokerError(
                Condition.NOT_ALLOWED,
                f"The SessionId was not set on a message, and it cannot be sent to the "
                f"entity '{queue.name}'. Entities that have session support enabled can only "
                f"receive messages that have the SessionId set to a valid value.",
            )
        if session_id is not None and len(session_id) > 128:
            raise BrokerError(Condition.ARGUMENT_ERROR, "session id longer than 128 characters")
        options = queue.options
        message_id = parsed.message_id
        if options.requires_duplicate_detection and message_id is not None:
            window = options.duplicate_detection_history_time_window
            seen = queue.duplicates.get(message_id)
            if seen is not None and seen + window > now:
                return 0
            queue.duplicates.pop(message_id, None)
            queue.duplicates[message_id] = now  # insertion order = time order
            while queue.duplicates:
                oldest, at = next(iter(queue.duplicates.items()))
                if at + window > now:
                    break
                del queue.duplicates[oldest]
        if scheduled_at is None:
            when = parsed.annotations.get("x-opt-scheduled-enqueue-time")
            if when is not None and int(when) / 1000 > now:
                scheduled_at = int(when) / 1000
        enqueued_at = scheduled_at if scheduled_at is not None else now
        ttl = parsed.ttl / 1000 if parsed.ttl else None
        default_ttl = options.default_message_time_to_live
        if default_ttl is not None and (ttl is None or ttl > default_ttl):
            ttl = default_ttl
        stored = Stored(
            parsed,
            next(queue.sequence),
            enqueued_at,
            None if ttl is None else enqueued_at + ttl,
            session_id if queue.requires_session else None,
        )
        queue.messages[stored.sequence_number] = stored
        if scheduled_at is not None:
            stored.state = State.SCHEDULED
            stored.scheduled_at = scheduled_at
            heapq.heappush(queue.scheduled, (scheduled_at, stored.sequence_number))
        else:
            self._make_available(queue, stored)
        return stored.sequence_number

    def cancel_scheduled(self, queue: Queue, sequence_numbers: list[int]) -> None:
        for number in sequence_numbers:
            stored = queue.messages.get(number)
            if stored is None or stored.state is not State.SCHEDULED:
                raise BrokerError(
                    Condition.MESSAGE_NOT_FOUND,
                    f"no scheduled message with sequence number {number}",
                )
        for number in sequence_numbers:
            del queue.messages[number]

    def _make_available(self, queue: Queue, stored: Stored) -> None:
        stored.state = State.ACTIVE
        if stored.session_id is not None:
            heapq.heappush(queue.session(stored.session_id).available, stored.sequence_number)
        else:
            heapq.heappush(queue.available, stored.sequence_number)

    # -- time ----------------------------------------------------------------------------

    def advance(self, now: float) -> list[tuple[Queue, Session]]:
        """Apply expired message locks and due schedules; returns sessions whose lock lapsed."""
        expiry = self._lock_expiry
        while expiry and expiry[0][0] <= now:
            _, token, name = heapq.heappop(expiry)
            queue = self._queues.get(name)
            stored = queue.locks.get(token) if queue else None
            if queue is not None and stored is not None and stored.locked_until <= now:
                self._unlock(queue, stored, failed=True)
        lapsed: list[tuple[Queue, Session]] = []
        for queue in list(self._queues.values()):
            while queue.scheduled and queue.scheduled[0][0] <= now:
                _, number = heapq.heappop(queue.scheduled)
                stored = queue.messages.get(number)
                if stored is not None and stored.state is State.SCHEDULED:
                    self._make_available(queue, stored)
            if queue.requires_session:
                for session in queue.sessions.values():
                    if session.holder is not None and session.locked_until <= now:
                        lapsed.append((queue, session))
        return lapsed

    def next_due(self) -> float | None:
        times = [self._lock_expiry[0][0]] if self._lock_expiry else []
        for queue in self._queues.values():
            if queue.scheduled:
                times.append(queue.scheduled[0][0])
            for session in queue.sessions.values():
                if session.holder is not None:
                    times.append(session.locked_until)
        return min(times) if times else None

    # -- receiving -----------------------------------------------------------------------

    def take(self, queue: Queue, now: float, session: Session | None = None) -> Stored | None:
        """The next deliverable message of the queue (or of ``session``), or None."""
        heap = session.available if session is not None else queue.available
        while heap:
            stored = queue.messages.get(heap[0])
            heapq.heappop(heap)
            if stored is None or stored.state is not State.ACTIVE or stored.locked:
                continue
            if stored.expires_at is not None and stored.expires_at <= now:
                self._expire(queue, stored)
                continue
            return stored
        return None

    def lock(self, queue: Queue, stored: Stored, now: float, session: Session | None) -> uuid.UUID:
        token = uuid.uuid4()
        stored.lock_token = token
        queue.locks[token] = stored
        if session is not None:
            stored.locked_until = session.locked_until
            session.locked.add(token)
        else:
            stored.locked_until = until = now + queue.options.lock_duration
            heapq.heappush(self._lock_expiry, (until, token, queue.name.lower()))
        return token

    def remove(self, queue: Queue, stored: Stored) -> None:
        """Delete a message (completed, or delivered in receive-and-delete mode)."""
        queue.messages.pop(stored.sequence_number, None)
        if stored.lock_token is not None:
            queue.locks.pop(stored.lock_token, None)
            self._forget_session_lock(queue, stored)
            stored.lock_token = None

    def _forget_session_lock(self, queue: Queue, stored: Stored) -> None:
        if stored.session_id is not None and stored.lock_token is not None:
            session = queue.sessions.get(stored.session_id)
            if session is not None:
                session.locked.discard(stored.lock_token)

    def has_deliverable(self, queue: Queue, session: Session, now: float) -> bool:
        while session.available:
            stored = queue.messages.get(session.available[0])
            if stored is None or stored.state is not State.ACTIVE or stored.locked:
                heapq.heappop(session.available)
                continue
            if stored.expires_at is not None and stored.expires_at <= now:
                heapq.heappop(session.available)
                self._expire(queue, stored)
                continue
            return True
        return False

    # -- settling ------------------------------------------------------------------------

    def locked_message(self, queue: Queue, token: uuid.UUID, now: float) -> Stored:
        """The message ``token`` locks, or the error the service reports for a lost lock."""
        stored = queue.locks.get(token)
        if stored is None:
            raise BrokerError(
                Condition.MESSAGE_LOCK_LOST,
                "The lock supplied is invalid. Either the lock expired, or the message has "
                "already been removed from the queue.",
            )
        if stored.session_id is not None and queue.requires_session:
            session = queue.sessions.get(stored.session_id)
            if session is None or session.holder is None or session.locked_until <= now:
                raise BrokerError(
                    Condition.SESSION_LOCK_LOST, f"the lock on session {stored.session_id} lapsed"
                )
        elif stored.locked_until <= now:
            self._unlock(queue, stored, failed=True)
            raise BrokerError(Condition.MESSAGE_LOCK_LOST, "The message lock expired.")
        return stored

    def complete(self, queue: Queue, stored: Stored) -> None:
        self.remove(queue, stored)

    def abandon(self, queue: Queue, stored: Stored) -> None:
        self._unlock(queue, stored, failed=True)

    def release(self, queue: Queue, stored: Stored) -> None:
        """The receiver gave the delivery back unprocessed (AMQP released): no count."""
        self._unlock(queue, stored, failed=False)

    def defer(self, queue: Queue, stored: Stored) -> None:
        queue.locks.pop(stored.lock_token, None)  # type: ignore[arg-type]
        self._forget_session_lock(queue, stored)
        stored.lock_token = None
        stored.state = State.DEFERRED

    def dead_letter(
        self,
        queue: Queue,
        stored: Stored,
        reason: str | None,
        description: str | None,
    ) -> None:
        if queue.is_dead_letter:
            # the service completes nothing here: a dead letter cannot be dead-lettered again
            raise BrokerError(
                Condition.NOT_ALLOWED, "cannot dead-letter a message in a dead-letter queue"
            )
        self.remove(queue, stored)
        self._to_dead_letter(queue, stored, reason, description)

    def renew_lock(self, queue: Queue, token: uuid.UUID, now: float) -> float:
        stored = self.locked_message(queue, token, now)
        if stored.session_id is not None and queue.requires_session:
            raise BrokerError(
                Condition.NOT_ALLOWED, "session messages are locked by their session: renew that"
            )
        stored.locked_until = until = now + queue.options.lock_duration
        heapq.heappush(self._lock_expiry, (until, token, queue.name.lower()))
        return until

    def _unlock(self, queue: Queue, stored: Stored, *, failed: bool) -> None:
        """End a message's lock: back to its place (or deferred set), or to the DLQ if spent."""
        queue.locks.pop(stored.lock_token, None)  # type: ignore[arg-type]
        self._forget_session_lock(queue, stored)
        stored.lock_token = None
        stored.locked_until = 0.0
        if failed:
            stored.delivery_count += 1
        if (
            failed
            and not queue.is_dead_letter
            and stored.delivery_count >= queue.options.max_delivery_count
        ):
            queue.messages.pop(stored.sequence_number, None)
            self._to_dead_letter(
                queue,
                stored,
                MAX_DELIVERY_COUNT_EXCEEDED,
                f"Message could not be consumed after {stored.delivery_count} delivery attempts.",
            )
        elif stored.state is State.ACTIVE:
            self._make_available(queue, stored)

    def _to_dead_letter(
        self, queue: Queue, stored: Stored, reason: str | None, description: str | None
    ) -> None:
        dlq = queue.dead_letter
        assert dlq is not None
        stored.state = State.ACTIVE
        stored.lock_token = None
        stored.expires_at = None
        stored.session_id = None  # the dead-letter queue has no sessions
        stored.dead_letter_source = queue.name
        stored.dead_letter_reason = reason
        stored.dead_letter_description = description
        dlq.messages[stored.sequence_number] = stored
        heapq.heappush(dlq.available, stored.sequence_number)

    def _expire(self, queue: Queue, stored: Stored) -> None:
        queue.messages.pop(stored.sequence_number, None)
        if queue.options.dead_lettering_on_message_expiration and not queue.is_dead_letter:
            self._to_dead_letter(
                queue, stored, TTL_EXPIRED, "The message expired and was dead lettered."
            )

    # -- deferred messages -----------------------------------------------------------------

    def receive_deferred(
        self,
        queue: Queue,
        sequence_numbers: list[int],
        now: float,
        session: Session | None,
        *,
        delete: bool,
    ) -> list[Stored]:
        found: list[Stored] = []
        for number in sequence_numbers:
            stored = queue.messages.get(number)
            if (
                stored is None
                or stored.state is not State.DEFERRED
                or stored.locked
                or (session is not None and stored.session_id != session.id)
            ):
                raise BrokerError(
                    Condition.MESSAGE_NOT_FOUND,
                    f"Failed to retrieve the deferred message with sequence number {number}.",
                )
            found.append(stored)
        for stored in found:
            if delete:
                self.remove(queue, stored)
            else:
                self.lock(queue, stored, now, session)
        return found

    # -- sessions ------------------------------------------------------------------------

    def lock_session(
        self, queue: Queue, session_id: str | None, holder: Any, now: float
    ) -> Session | None:
        """Lock ``session_id`` (or the next unlocked session with a message: None if none)."""
        if not queue.requires_session:
            raise BrokerError(
                Condition.NOT_ALLOWED,
                f"It is not possible for an entity that requires sessions to create a "
                f"non-sessionful message receiver: '{queue.name}' does not require sessions.",
            )
        if session_id is None:
            for candidate in list(queue.sessions.values()):
                if candidate.holder is None and self.has_deliverable(queue, candidate, now):
                    session = candidate
                    break
                self._collect(queue, candidate)
            else:
                return None
        else:
            session = queue.session(session_id)
            if session.holder is not None and session.locked_until > now:
                raise BrokerError(
                    Condition.SESSION_CANNOT_BE_LOCKED,
                    f"The requested session '{session_id}' cannot be accepted. It may be "
                    f"locked by another receiver.",
                )
            if session.holder is not None:
                self.unlock_session(queue, session)
        session.holder = holder
        session.locked_until = now + queue.options.lock_duration
        return session

    def held_session(
        self, queue: Queue, session_id: str, now: float, holder: Any = None
    ) -> Session:
        session = queue.sessions.get(session_id)
        if (
            session is None
            or session.holder is None
            or session.locked_until <= now
            or (holder is not None and session.holder is not holder)
        ):
            raise BrokerError(
                Condition.SESSION_LOCK_LOST,
                f"The session lock has expired on the MessageSession. Accept a new "
                f"MessageSession. Session id: {session_id}.",
            )
        return session

    def renew_session(self, queue: Queue, session: Session, now: float) -> float:
        session.locked_until = until = now + queue.options.lock_duration
        for token in session.locked:
            queue.locks[token].locked_until = until
        return until

    def unlock_session(self, queue: Queue, session: Session) -> None:
        """End the session lock: its unsettled messages lose their locks (a failed delivery)."""
        session.holder = None
        session.locked_until = 0.0
        for token in sorted(session.locked, key=lambda t: queue.locks[t].sequence_number):
            self._unlock(queue, queue.locks[token], failed=True)
        session.locked.clear()
        self._collect(queue, session)

    def _collect(self, queue: Queue, session: Session) -> None:
        """Forget a session that holds nothing (deferred or scheduled messages recreate it)."""
        if (
            session.holder is None
            and session.state is None
            and not session.locked
            and not session.available
        ):
            queue.sessions.pop(session.id, None)

    # -- browsing ------------------------------------------------------------------------

    def peek(
        self, queue: Queue, from_sequence: int, count: int, now: float, session_id: str | None
    ) -> list[Stored]:
        found: list[Stored] = []
        for number in sorted(queue.messages):
            if number < from_sequence:
                continue
            stored = queue.messages[number]
            if session_id is not None and stored.session_id != session_id:
                continue
            if stored.expires_at is not None and stored.expires_at <= now and not stored.locked:
                continue
            found.append(stored)
            if len(found) >= count:
                break
        return found

    def session_ids(self, queue: Queue) -> list[str]:
        return [s.id for s in queue.sessions.values() if s.state is not None or s.available]
