"""The contract's rules as database transactions, written once for every dialect.

Each operation is a generator that yields the statements it needs (`Query`, `Execute`,
`ExecuteMany`) and `Wake` for queues whose waiters should look again, and returns its result.
A driver runs it inside one transaction: synchronously, on the loop or in a worker thread
(SQLite), or with awaits (PostgreSQL). The rules mirror `QueueEngine` (``engine.py``): lowest
sequence number first within a partition, returned messages ahead of later ones,
``delivery_count`` counted at delivery, a spent message dead-lettered when it comes back
(abandon, lock lapse, session release), settlement only under a live lock, sessions leased one
holder at a time.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Generator, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple, TypeGuard, TypeVar

from ..._errors import (
    MessageLockLost,
    ProviderError,
    QueueAlreadyExists,
    QueueError,
    QueueNotFound,
    SessionLocked,
    SessionLockLost,
    ValidationError,
)
from ..._messages import Message, validate_message
from ..._names import DEAD_LETTER_SUFFIX
from ...engine import MAX_DELIVERY_COUNT_EXCEEDED, TTL_EXPIRED, QueueSettings, QueueStatistics
from ._codec import Receipt, message_row
from ._sent import FRESH
from ._statements import Statements

__all__ = [
    "Execute",
    "ExecuteMany",
    "Op",
    "Query",
    "QueueRow",
    "Step",
    "Taken",
    "Unsettled",
    "Wake",
    "abandon",
    "accept_next",
    "accept_session",
    "alone",
    "check_lease",
    "complete",
    "complete_each",
    "complete_many",
    "create_queue",
    "dead_letter",
    "delete_queue",
    "explain_unsettled",
    "finish_alone",
    "get_state",
    "peek",
    "receive",
    "release",
    "release_session",
    "release_taken",
    "renew_lock",
    "renew_session",
    "send",
    "session_ready",
    "session_receive",
    "set_state",
    "settle_many",
    "statistics",
]

T = TypeVar("T")


# steps are named tuples: made once or more per statement, and a tuple is the cheapest to make


class Query(NamedTuple):
    """Rows of a statement (a SELECT or a ``RETURNING``); ``last``: see `Execute`."""

    sql: str
    params: tuple[Any, ...]
    last: bool = False


class Execute(NamedTuple):
    """A statement's affected row count.

    ``last``: the op runs no statement after this one, and fails after it only when it
    changed nothing. When it is also the op's first, a driver may run it as a transaction of
    its own (one statement is atomic by itself), without ``BEGIN`` and ``COMMIT``.
    """

    sql: str
    params: tuple[Any, ...]
    last: bool = False


class ExecuteMany(NamedTuple):
    """One statement over many parameter rows (nothing comes back)."""

    sql: str
    rows: Sequence[tuple[Any, ...]]


class Wake(NamedTuple):
    """After commit: tell waiters on ``queue`` (in every process) to look again."""

    queue: str


Step = Query | Execute | ExecuteMany | Wake
#: An operation: yields steps, receives their results, returns its own.
Op = Generator[Step, Any, T]


def alone(step: Step) -> TypeGuard[Query | Execute]:
    """Whether ``step``, an op's first, is also its last statement: a driver may run it as a
    transaction of its own, then `finish_alone`."""
    return (type(step) is Query or type(step) is Execute) and step.last


def finish_alone(op: Op[T], value: Any) -> tuple[T, list[str]]:
    """The rest of an op after its only statement returned ``value``: the op's result and
    the queues to wake. A statement there breaks the `last` promise (a bug in the rules):
    `ProviderError`, saying that the first statement committed by itself."""
    wakes: list[str] = []
    while True:
        try:
            step = op.send(value)
        except StopIteration as stop:
            return stop.value, wakes
        if not isinstance(step, Wake):
            raise ProviderError(
                f"a statement after the last one ({type(step).__name__} {step.sql!r}); "
                "the last one committed by itself"
            )
        wakes.append(step.queue)
        value = None


_EXPIRED_TEXT = "the message's time to live ran out"


@dataclass(frozen=True, slots=True)
class QueueRow:
    """A queue as stored."""

    id: int
    name: str
    dead_letter_id: int
    is_dead_letter: bool
    settings: QueueSettings

    @property
    def sessions(self) -> bool:
        """Whether its messages are received through sessions."""
        return self.settings.requires_session and not self.is_dead_letter


def _queue_row(row: Sequence[Any]) -> QueueRow:
    # a queue's row never changes while its id lives: decode each once
    return _decode_queue_row(tuple(row))


@functools.lru_cache(maxsize=1024)
def _decode_queue_row(row: tuple[Any, ...]) -> QueueRow:
    return QueueRow(
        id=row[0],
        name=row[1],
        dead_letter_id=row[2] or 0,
        is_dead_letter=bool(row[3]),
        settings=QueueSettings(
            requires_session=bool(row[4]),
            max_delivery_count=row[5],
            lock_duration=row[6],
            default_message_ttl=row[7],
            dead_letter_on_expiration=bool(row[8]),
        ),
    )


def load_queue(st: Statements, name: str) -> Op[QueueRow]:
    rows = yield Query(st.select_queue, (name,))
    if not rows:
        raise QueueNotFound(f"queue {name!r} does not exist")
    return _queue_row(rows[0])


# -- administration -----------------------------------------------------------------------


def create_queue(st: Statements, name: str, settings: QueueSettings) -> Op[None]:
    rows = yield Query(st.select_queue, (name,))
    if not rows:
        inserted = yield Query(
            st.insert_queue,
            (
                name,
                0,
                int(settings.requires_session),
                settings.max_delivery_count,
                settings.lock_duration,
                settings.default_message_ttl,
                int(settings.dead_letter_on_expiration),
            ),
        )
        if inserted:
            dlq = QueueSettings(lock_duration=settings.lock_duration)
            [(dlq_id,)] = yield Query(
                st.insert_queue,
                (
                    name + DEAD_LETTER_SUFFIX,
                    1,
                    0,
                    dlq.max_delivery_count,
                    dlq.lock_duration,
                    None,
                    0,
                ),
            )
            yield Execute(st.link_dead_letter, (dlq_id, inserted[0][0]))
            return
        rows = yield Query(st.select_queue, (name,))  # created meanwhile by another client
    existing = _queue_row(rows[0]).settings
    if existing != settings:
        raise QueueAlreadyExists(f"queue {name!r} exists with other settings: {existing}")


def delete_queue(st: Statements, name: str) -> Op[None]:
    queue = yield from load_queue(st, name)
    if queue.is_dead_letter:
        raise ValidationError("a dead-letter queue is deleted with its queue")
    yield Execute(st.delete_queues, (queue.id, queue.dead_letter_id))


# -- sending ----------------------------------------------------------------------------------


def send(
    st: Statements,
    name: str,
    known: QueueRow | None,
    messages: Sequence[Message],
    now: float,
    max_size: int,
    looks: Sequence[int | None],
) -> Op[tuple[QueueRow, int]]:
    """Validate every message against the queue (all or none are stored), then store them;
    returns the queue and, for a single message stored, its sequence number (else 0).

    ``looks`` says, message by message, how its id is deduplicated (`_sent.SentIds.note`):
    None, by the unique index; `FRESH`, not at all (generated, never sent); a sequence number,
    by looking for it above that number first (generated, perhaps sent before). ``known`` is
    the queue as last read (None: load it); if its row is gone meanwhile the insert fails its
    foreign key and the driver raises `QueueGone`.
    """
    queue = known or (yield from load_queue(st, name))
    requires_session = queue.settings.requires_session
    for message in messages:
        validate_message(message, max_size=max_size, requires_session=requires_session)
    if queue.is_dead_letter:
        raise ValidationError("messages cannot be sent to a dead-letter queue")
    ttl = queue.settings.default_message_ttl
    blob = st.dialect.blob_parameter
    rows = []
    generated: set[str] = set()  # in this batch (given ids: the statement skips repeats)
    for message, look in zip(messages, looks, strict=True):
        partition = (message.session_id or "") if requires_session else ""
        if look is None:
            rows.append(message_row(queue.id, partition, message, now, ttl, blob, 1))
            continue
        message_id = message.message_id
        if message_id in generated:
            continue
        generated.add(message_id)
        if look != FRESH and (yield Query(st.find_sent, (queue.id, partition, look, message_id))):
            continue
        rows.append(message_row(queue.id, partition, message, now, ttl, blob, 0))
    seq = 0
    if len(rows) == 1 and len(messages) == 1:  # most sends: one statement, which says its seq
        [(sql, run)] = st.runs("insert_message_seq", rows)
        stored = yield Query(sql, run[0], True)
        seq = stored[0][0] if stored else 0
    elif st.dialect.array_insert and len(rows) > 1:  # one statement over arrays
        yield Execute(*st.insert_columns(rows))
    else:
        for sql, run in st.runs("insert_message", rows):
            if len(run) == 1:
                yield Execute(sql, run[0])
            else:
                yield ExecuteMany(sql, run)
    yield Wake(name)
    return queue, seq


# -- what falls due with time ---------------------------------------------------------------


def sweep(st: Statements, queue: QueueRow, now: float) -> Op[None]:
    """Dead-letter messages that came back spent; expire (or dead-letter) outlived ones."""
    if queue.is_dead_letter:
        return
    settings = queue.settings
    moved = yield Execute(
        st.dead_letter_spent,
        (
            queue.dead_letter_id,
            MAX_DELIVERY_COUNT_EXCEEDED,
            queue.id,
            now,
            settings.max_delivery_count,
        ),
    )
    if settings.dead_letter_on_expiration:
        moved += yield Execute(
            st.dead_letter_expired,
            (queue.dead_letter_id, TTL_EXPIRED, _EXPIRED_TEXT, queue.id, now, now, now),
        )
    else:
        yield Execute(st.delete_expired, (queue.id, now, now, now))
    if moved:
        yield Wake(queue.name + DEAD_LETTER_SUFFIX)


# -- receiving --------------------------------------------------------------------------------

#: What a receive op returns: the queue, the locked rows, whether it swept the queue first.
Taken = tuple[QueueRow, list[Any], bool]


#: Stands for "never spent" in the delivery filter of a dead-letter queue.
_UNLIMITED = 2**31 - 1


def _spendable(queue: QueueRow) -> int:
    """Deliveries after which a message is spent (a dead-letter queue never spends one)."""
    return _UNLIMITED if queue.is_dead_letter else queue.settings.max_delivery_count


def _lock(
    st: Statements,
    queue: QueueRow,
    partition: str,
    locked_until: float,
    max_messages: int,
    now: float,
    token: int,
) -> Op[list[Any]]:
    params = (token, locked_until, queue.id, partition, now, now, _spendable(queue), now)
    if max_messages == 1:
        rows = yield Query(st.lock_one, params, True)
    else:
        rows = yield Query(st.lock_next, (*params, max_messages), True)
    return list(rows)


def _deliverable_queue(st: Statements, name: str) -> Op[QueueRow]:
    return _without_sessions((yield from load_queue(st, name)))


def _without_sessions(queue: QueueRow) -> QueueRow:
    """``queue``, unless its messages are received through sessions."""
    if queue.sessions:
        raise ValidationError(
            f"queue {queue.name!r} requires sessions: use accept_session to receive from it"
        )
    return queue


def _take(
    st: Statements,
    known: QueueRow | None,
    load: Callable[[], Op[QueueRow]],
    partition: str,
    lock_until: Callable[[QueueRow], float],
    max_messages: int,
    now: float,
    token: int,
    sweep_first: bool,
) -> Op[Taken]:
    """Lock the partition's next deliverable messages.

    ``known`` is the queue as last read (None: ``load`` it, then sweep it). Returns the
    queue, the locked rows and whether it swept. A caller that got nothing without a sweep
    runs the op again with ``known=None``: the queue may have been deleted, or hold messages
    whose lapsed locks only a sweep notices. (Not in this op: then the lock, most often its
    only statement, runs without a transaction around it.)
    """
    queue = known or (yield from load())
    swept = sweep_first or known is None
    if swept:
        yield from sweep(st, queue, now)
    rows = yield from _lock(st, queue, partition, lock_until(queue), max_messages, now, token)
    return queue, rows, swept


def receive(
    st: Statements,
    name: str,
    known: QueueRow | None,
    max_messages: int,
    now: float,
    token: int,
    sweep_first: bool,
) -> Op[Taken]:
    """Lock up to ``max_messages`` deliverable messages of a queue without sessions."""
    return (
        yield from _take(
            st,
            known and _without_sessions(known),
            lambda: _deliverable_queue(st, name),
            "",
            lambda queue: now + queue.settings.lock_duration,
            max_messages,
            now,
            token,
            sweep_first,
        )
    )


def peek(
    st: Statements,
    name: str,
    session_id: str | None,
    max_messages: int,
    from_sequence: int,
    now: float,
) -> Op[list[Any]]:
    """Messages (available and locked) in sequence order, without locking them."""
    queue = yield from load_queue(st, name)
    yield from sweep(st, queue, now)
    if session_id is None:
        rows = yield Query(st.peek, (queue.id, now, from_sequence, max_messages))
    else:
        rows = yield Query(
            st.peek_session, (queue.id, session_id, now, from_sequence, max_messages)
        )
    return list(rows)


# -- settling ---------------------------------------------------------------------------------


def _check_session(st: Statements, receipt: Receipt, now: float) -> Op[None]:
    if receipt.lease:
        rows = yield Query(
            st.check_lease, (receipt.queue_id, receipt.session_id, receipt.lease, now)
        )
        if not rows:
            raise SessionLockLost(f"the lock on session {receipt.session_id!r} was lost")


def _lock_lost() -> MessageLockLost:
    return MessageLockLost("the message was already settled or its lock was lost")


class Unsettled(MessageLockLost):
    """A session message's settlement changed nothing: its lock or its session's lease is
    gone. The client runs `explain_unsettled` to raise the one that applies."""


def complete(st: Statements, receipt: Receipt, now: float) -> Op[None]:
    """One statement: a session message's lease is checked by the ``DELETE`` itself."""
    if receipt.lease:
        params = (receipt.seq, receipt.token, now)
        lease = (receipt.queue_id, receipt.session_id, receipt.lease, now)
        if not (yield Execute(st.complete_leased, (*params, *lease), True)):
            raise Unsettled("the message was already settled or its session's lock was lost")
    elif not (yield Execute(st.complete, (receipt.seq, receipt.token, now), True)):
        raise _lock_lost()


def explain_unsettled(st: Statements, receipt: Receipt, now: float) -> Op[None]:
    """Raise why a settlement changed nothing: `SessionLockLost` when the lease is gone,
    else `MessageLockLost`."""
    yield from _check_session(st, receipt, now)
    raise _lock_lost()


def abandon(st: Statements, receipt: Receipt, now: float) -> Op[None]:
    """Unlock at once; a spent message goes to the dead-letter queue instead."""
    yield from _check_session(st, receipt, now)
    queue = yield from load_queue(st, receipt.queue)
    rows = yield Query(st.unlock, (receipt.seq, receipt.token, now))
    if not rows:
        raise _lock_lost()
    if rows[0][0] >= queue.settings.max_delivery_count and not queue.is_dead_letter:
        yield Execute(
            st.dead_letter_one, (queue.dead_letter_id, MAX_DELIVERY_COUNT_EXCEEDED, receipt.seq)
        )
        yield Wake(queue.name + DEAD_LETTER_SUFFIX)
    else:
        yield Wake(queue.name)


def release(st: Statements, receipts: Sequence[Receipt]) -> Op[list[QueueError | None]]:
    """Give deliveries back as if never made: unlocked, ``delivery_count`` lowered again; also
    once their locks lapsed, while nobody received them since (their token still matches).
    Per receipt, `MessageLockLost` where that was no longer so."""
    groups: dict[int, list[int]] = {}
    for receipt in receipts:
        groups.setdefault(receipt.token, []).append(receipt.seq)
    done: set[int] = set()
    encode = st.dialect.list_parameter
    for token, seqs in groups.items():
        rows = yield Query(st.release_group, (token, encode(seqs)))
        done.update(row[0] for row in rows)
    for queue in {receipt.queue for receipt in receipts if receipt.seq in done}:
        yield Wake(queue)
    return [None if receipt.seq in done else _lock_lost() for receipt in receipts]


def release_taken(
    st: Statements, queue: str, partition: str, token: int, session: bool
) -> Op[None]:
    """Give back what a cancelled receive (``session``: accept) with ``token`` took, as if it
    never happened: its messages in ``partition``, or the session lease."""
    if session:
        taken = yield Execute(st.end_lease_taken, (queue, token))
    else:
        taken = yield Execute(st.release_taken, (queue, partition, token))
    if taken:
        yield Wake(queue)


def dead_letter(
    st: Statements,
    receipt: Receipt,
    reason: str | None,
    description: str | None,
    now: float,
) -> Op[None]:
    queue = yield from load_queue(st, receipt.queue)
    if queue.is_dead_letter:
        raise ValidationError("a message in a dead-letter queue cannot be dead-lettered again")
    yield from _check_session(st, receipt, now)
    moved = yield Execute(
        st.dead_letter_locked,
        (queue.dead_letter_id, reason, description, receipt.seq, receipt.token, now),
    )
    if not moved:
        raise _lock_lost()
    yield Wake(queue.name + DEAD_LETTER_SUFFIX)


def renew_lock(st: Statements, receipt: Receipt, now: float) -> Op[float]:
    queue = yield from load_queue(st, receipt.queue)
    until = now + queue.settings.lock_duration
    if not (yield Execute(st.renew_lock, (until, receipt.seq, receipt.token, now))):
        raise _lock_lost()
    return until


def _inside(op: Op[T]) -> Op[T]:
    """``op`` as a part of a larger op: none of its statements is the last."""
    value: Any = None
    while True:
        try:
            step = op.send(value)
        except StopIteration as stop:
            result: T = stop.value
            return result
        if type(step) is Query or type(step) is Execute:
            step = step._replace(last=False)
        value = yield step


def settle_many(
    st: Statements,
    settle: Callable[[Statements, Receipt, float], Op[None]],
    receipts: Sequence[Receipt],
    now: float,
) -> Op[list[QueueError | None]]:
    """Settle every receipt in one transaction; per receipt, the error that stopped it (None:
    settled). A failed settlement changes nothing, so the others still commit."""
    outcomes: list[QueueError | None] = []
    for receipt in receipts:
        try:
            yield from _inside(settle(st, receipt, now))
        except (MessageLockLost, SessionLockLost, QueueNotFound) as exc:
            outcomes.append(exc)
        else:
            outcomes.append(None)
    return outcomes


def complete_many(
    st: Statements, receipts: Sequence[Receipt], now: float
) -> Op[list[QueueError | None]]:
    """`settle_many` of `complete`, one statement per receive the messages came from."""
    lost: set[int] = set()
    for queue_id, session_id, lease in {(r.queue_id, r.session_id, r.lease) for r in receipts}:
        if lease and not (yield Query(st.check_lease, (queue_id, session_id, lease, now))):
            lost.add(lease)
    groups: dict[int, list[int]] = {}
    for receipt in receipts:
        if receipt.lease not in lost:
            groups.setdefault(receipt.token, []).append(receipt.seq)
    done: set[int] = set()
    encode = st.dialect.list_parameter
    for token, seqs in groups.items():
        rows = yield Query(st.complete_group, (token, now, encode(seqs)))
        done.update(row[0] for row in rows)
    outcomes: list[QueueError | None] = []
    for receipt in receipts:
        if receipt.lease in lost:
            outcomes.append(SessionLockLost(f"the lock on session {receipt.session_id!r} was lost"))
        else:
            outcomes.append(None if receipt.seq in done else _lock_lost())
    return outcomes


def complete_each(st: Statements, receipts: Sequence[Receipt], now: float) -> Op[set[int]]:
    """Complete deliveries of several receives in one statement (`Dialect.array_insert`);
    returns the sequence numbers completed. One not among them changed nothing: its lock or
    its session's lease is gone (`explain_unsettled` says which)."""
    columns = ([r.seq for r in receipts], [r.token for r in receipts], [r.lease for r in receipts])
    rows = yield Query(st.complete_each, (*columns, now, now), True)
    return {row[0] for row in rows}


def statistics(st: Statements, name: str, now: float) -> Op[QueueStatistics]:
    queue = yield from load_queue(st, name)
    yield from sweep(st, queue, now)
    [(active, locked, scheduled)] = yield Query(st.count_messages, (now, now, now, now, queue.id))
    [(dead,)] = yield Query(st.count_queue, (queue.dead_letter_id,))
    sessions = leased = 0
    if queue.sessions:
        [(sessions,)] = yield Query(st.count_sessions, (queue.id, queue.id, now))
        [(leased,)] = yield Query(st.count_leased, (queue.id, now))
    return QueueStatistics(
        active=int(active),
        locked=int(locked),
        scheduled=int(scheduled),
        dead_letter=0 if queue.is_dead_letter else int(dead),
        sessions=int(sessions),
        locked_sessions=int(leased),
    )


# -- sessions ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Lease:
    """A held session, as the database knows it."""

    queue: str
    queue_id: int
    session_id: str
    token: int
    locked_until: float


def accept_session(st: Statements, name: str, session_id: str, now: float, token: int) -> Op[Lease]:
    """Lease ``session_id`` (empty or not); `SessionLocked` when it has another holder."""
    queue = yield from load_queue(st, name)
    if not queue.sessions:
        raise ValidationError(f"queue {name!r} does not require sessions")
    until = now + queue.settings.lock_duration
    rows = yield Query(st.lease_session, (queue.id, session_id, token, until, now))
    if not rows:
        raise SessionLocked(f"session {session_id!r} is held by another receiver")
    return Lease(name, queue.id, session_id, token, until)


#: What a next-available accept returns: the queue, the lease (None: nothing leased), and
#: whether it swept the queue first.
Accepted = tuple[QueueRow, Lease | None, bool]


def accept_next(
    st: Statements,
    name: str,
    known: QueueRow | None,
    now: float,
    token: int,
    sweep_first: bool,
) -> Op[Accepted]:
    """Lease the session whose next message has waited longest: against the queue as last
    read, one statement (`session_ready` tells a race lost from nothing ready). ``known=None``
    reads the queue again and sweeps it first, as a receive does (see `_take`)."""
    queue = known or (yield from load_queue(st, name))
    if not queue.sessions:
        raise ValidationError(f"queue {name!r} does not require sessions")
    swept = sweep_first or known is None
    if swept:
        yield from sweep(st, queue, now)
    until = now + queue.settings.lock_duration
    deliverable = (queue.id, now, now, _spendable(queue), now, now)
    rows = yield Query(st.lease_next_session, (token, until, *deliverable, now), True)
    if not rows:
        return queue, None, swept
    return queue, Lease(name, queue.id, rows[0][0], token, until), swept


def session_ready(st: Statements, queue: QueueRow, now: float) -> Op[bool]:
    """Whether some session of ``queue`` has a deliverable message and no live lease."""
    rows = yield Query(
        st.next_ready_session, (queue.id, now, now, _spendable(queue), now, now), True
    )
    return bool(rows)


def check_lease(st: Statements, lease: Lease, now: float) -> Op[float]:
    """The lease's expiry; `SessionLockLost` unless it still holds."""
    rows = yield Query(st.check_lease, (lease.queue_id, lease.session_id, lease.token, now))
    if not rows:
        raise SessionLockLost(f"the lock on session {lease.session_id!r} was lost")
    return float(rows[0][0])


def session_receive(
    st: Statements,
    lease: Lease,
    known: QueueRow | None,
    max_messages: int,
    now: float,
    token: int,
    sweep_first: bool,
) -> Op[Taken]:
    """The session's next messages in order, locked under its lease (see `_take`).

    Against the queue as last read, one statement that checks the lease itself; when it
    locks nothing (no message ready, or the lease gone) the client runs the op again with
    ``known=None``, which checks the lease first (`SessionLockLost`).
    """
    if known is not None and not sweep_first:
        held = (lease.queue_id, lease.session_id, lease.token, now)
        deliverable = (known.id, lease.session_id, now, now, _spendable(known), now)
        if max_messages == 1:
            step = Query(st.lock_leased_one, (token, *held, *deliverable, *held), True)
        else:
            params = (token, *held, *deliverable, max_messages, *held)
            step = Query(st.lock_leased_next, params, True)
        rows = yield step
        return known, list(rows), False
    until = yield from check_lease(st, lease, now)
    return (
        yield from _take(
            st,
            known,
            lambda: load_queue(st, lease.queue),
            lease.session_id,
            lambda queue: until,
            max_messages,
            now,
            token,
            sweep_first,
        )
    )


def renew_session(st: Statements, lease: Lease, now: float) -> Op[float]:
    queue = yield from load_queue(st, lease.queue)
    until = now + queue.settings.lock_duration
    renewed = yield Execute(
        st.renew_lease, (until, lease.queue_id, lease.session_id, lease.token, now)
    )
    if not renewed:
        raise SessionLockLost(f"the lock on session {lease.session_id!r} was lost")
    yield Execute(st.renew_session_messages, (until, lease.queue_id, lease.session_id, now))
    return until


def release_session(st: Statements, lease: Lease, now: float) -> Op[None]:
    """End the lease (a no-op if it already ended); unsettled messages return in order."""
    ended = yield Execute(st.end_lease, (lease.queue_id, lease.session_id, lease.token, now))
    if not ended:
        return
    rows = yield Query(st.select_queue, (lease.queue,))
    if rows:
        queue = _queue_row(rows[0])
        moved = yield Execute(
            st.dead_letter_spent_in_session,
            (
                queue.dead_letter_id,
                MAX_DELIVERY_COUNT_EXCEEDED,
                queue.id,
                lease.session_id,
                now,
                queue.settings.max_delivery_count,
            ),
        )
        if moved:
            yield Wake(queue.name + DEAD_LETTER_SUFFIX)
    yield Execute(st.unlock_session_messages, (lease.queue_id, lease.session_id, now))
    yield Execute(st.forget_session, (lease.queue_id, lease.session_id))
    yield Wake(lease.queue)


def get_state(st: Statements, lease: Lease, now: float) -> Op[bytes | None]:
    yield from check_lease(st, lease, now)
    rows = yield Query(st.get_state, (lease.queue_id, lease.session_id))
    state = rows[0][0] if rows else None
    return None if state is None else bytes(state)


def set_state(st: Statements, lease: Lease, state: bytes | None, now: float) -> Op[None]:
    yield from check_lease(st, lease, now)
    yield Execute(st.set_state, (state, lease.queue_id, lease.session_id))
