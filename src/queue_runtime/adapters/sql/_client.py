"""The SQL adapter's `QueueClient` and `SessionClient`, the same for every dialect.

It validates arguments at the edge (the shared `_arguments` checks), reads the clock, runs the
operations of `_rules` through a `Database`, and waits for messages without busy polling:
it parks on wake-ups (this process's commits; PostgreSQL's ``NOTIFY`` from others) and looks
again after a short pause that doubles up to the database's longest, for what no wake-up
announces (locks and schedules falling due; another process's commit on SQLite).
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import random
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime, timedelta
from time import monotonic
from typing import Any, Final, TypeVar

from ..._arguments import (
    check_dead_letter_reason,
    check_max_messages,
    check_sequence_number,
    message_sequence,
    queue_definition,
    queue_name,
    received_sequence,
    timeout_seconds,
)
from ..._capabilities import Capabilities
from ..._clock import Clock, ManualClock, SystemClock, to_datetime, to_seconds
from ..._errors import QueueError, QueueNotFound, SessionLockLost, ValidationError
from ..._lifecycle import ClientLifecycle
from ..._messages import Message, ReceivedMessage
from ..._names import DEAD_LETTER_SUFFIX, MessageId, QueueName, SessionId
from ..._waiting import Waiters
from ...engine import QueueStatistics
from ...ports import (
    DEFAULT_LOCK_DURATION,
    DEFAULT_MAX_DELIVERY_COUNT,
    QueueClient,
    SessionClient,
    Timeout,
    batch_settle_error,
)
from . import _rules as rules
from ._coalesce import Coalescer
from ._codec import Receipt, peeked, received
from ._database import Database, QueueGone, log
from ._sent import SENT
from ._statements import Statements

__all__ = ["SqlQueueClient", "SqlSessionClient"]

R = TypeVar("R")
_DEFAULT_TIMEOUT: Final = 30.0
#: Seconds between sweeps (dead-lettering spent and expired messages) of a busy queue.
SWEEP_INTERVAL: Final = 1.0


class SqlQueueClient(ClientLifecycle, QueueClient):
    """Queues in a SQL database: durable, and shared by every process that opens it.

    ``clock`` decides when locks, TTLs and schedules fall due (a `ManualClock` lets tests
    skip time); every process sharing a database must read the same time.
    """

    def __init__(
        self,
        database: Database,
        *,
        max_message_size: int,
        clock: Clock | None = None,
        default_timeout: float | timedelta = _DEFAULT_TIMEOUT,
    ) -> None:
        self._db = database
        self._st = database.statements
        self._clock = clock or SystemClock()
        self._default_timeout = to_seconds(default_timeout)
        self._max_size = max_message_size
        self._capabilities = Capabilities(
            durable=True,
            exclusive_sessions_across_processes=True,
            max_message_size=max_message_size,
            release=True,
        )
        self._waiters = Waiters()
        #: Wake-ups seen per queue, and clock ticks: a waiter that saw one while it looked
        #: looks again at once instead of parking.
        self._wakes: dict[str, int] = {}
        self._ticks = 0
        self._random = random.Random()
        self._sessions: set[SqlSessionClient] = set()
        #: Queues as last read (their settings never change while their id lives), and when
        #: each was last swept (loop time): a receive sweeps at most every SWEEP_INTERVAL
        #: unless it finds nothing.
        self._queues: dict[str, rules.QueueRow] = {}
        self._swept: dict[str, float] = {}
        self._unsubscribe: Callable[[], None] | None = None
        #: Completions: where the dialect settles many in one statement, those several tasks
        #: make at about the same moment go together (group commit), else one by one.
        self._completions: Coalescer[Receipt] | None = (
            Coalescer(self._complete_one, self._complete_gathered)
            if self._st.dialect.array_insert
            else None
        )

    def __repr__(self) -> str:
        return f"{type(self).__name__}(store={self._db.key!r}, state={self._state!r})"

    @property
    def capabilities(self) -> Capabilities:
        return self._capabilities

    @property
    def clock(self) -> Clock:
        return self._clock

    async def open(self) -> None:
        if not self._needs_open():
            return
        await self._db.open(self._on_wake)
        if isinstance(self._clock, ManualClock):
            self._unsubscribe = self._clock.subscribe(self._on_tick)
        self._state = "open"

    async def aclose(self) -> None:
        if self._state != "open":
            self._state = "closed"
            return
        for session in list(self._sessions):
            try:
                await session.close()
            except QueueError as exc:  # its lease lapses by itself; the client still closes
                log.debug("could not release session %s: %s", session.session_id, exc)
        if self._unsubscribe is not None:
            self._unsubscribe()
        if self._completions is not None:
            await self._completions.aclose()
        self._state = "closed"
        self._waiters.notify_all()
        await self._db.close()

    def _on_wake(self, queue: str) -> None:
        """Waiters on ``queue`` look again (``""``: every waiter)."""
        if not queue:
            self._on_tick()
            return
        self._wakes[queue] = self._wakes.get(queue, 0) + 1
        self._waiters.notify(queue)

    def _on_tick(self) -> None:
        self._ticks += 1
        self._waiters.notify_all()

    def _generation(self, queue: str) -> int:
        return self._wakes.get(queue, 0) + self._ticks

    def _token(self) -> int:
        return self._random.getrandbits(62) + 1

    async def _run(self, op: rules.Op[R], label: str, *, relaxed: bool = False, size: int = 0) -> R:
        """Run ``op`` in one transaction; ``relaxed`` for receiving and settling, whose loss
        in a crash of the database server means a delivery again, ``size`` the bytes it
        writes if known (see `Database.run`). (The hot paths, which checked the client is
        open just before, call the database directly.)"""
        if self._state != "open":
            self._check_open()
        return await self._db.run(op, label, relaxed=relaxed, size=size)

    def _known(self, name: str) -> tuple[rules.QueueRow | None, bool]:
        """The queue as last read, and whether it is due for a sweep."""
        swept = self._swept.get(name, 0.0)
        return self._queues.get(name), monotonic() - swept > SWEEP_INTERVAL

    def _remember(self, queue: rules.QueueRow, swept: bool) -> None:
        self._queues[queue.name] = queue
        if swept:
            self._swept[queue.name] = monotonic()

    async def _take(
        self,
        name: str,
        take: Callable[[rules.QueueRow | None, bool], rules.Op[rules.Taken]],
        label: str,
        recheck: Callable[[], rules.Op[object]] | None = None,
    ) -> tuple[rules.QueueRow, list[Any]]:
        """Run a receive op (``take(known, sweep_first)``) against queue ``name`` as last read;
        when it found nothing without a sweep, once more with the queue read again and swept
        (it may have been deleted, or hold messages whose lapsed locks a sweep notices), or
        only ``recheck`` where that says all there is to know (a session's lease: a drained
        session is the common case, and its receive must not cost a sweep of the queue). The
        caller checked that the client is open."""
        known, sweep = self._known(name)
        try:
            row, rows, swept = await self._db.run(take(known, sweep), label, relaxed=True)
            if not rows and not swept:
                if recheck is not None:
                    await self._db.run(recheck(), label, relaxed=True)
                    return row, rows
                row, rows, swept = await self._db.run(take(None, True), label, relaxed=True)
        except QueueNotFound:
            self._queues.pop(name, None)
            raise
        self._remember(row, swept)
        return row, rows

    async def _until(
        self,
        queue: str,
        wait: float,
        attempt: Callable[[int], Awaitable[R]],
        give_back: Callable[[int], rules.Op[None]],
        limit: Callable[[], float] | None = None,
    ) -> R:
        """``attempt(token)`` until it returns something truthy or ``wait`` seconds pass.

        Between attempts it parks until a wake-up for ``queue`` or a pause that doubles up to
        the database's longest; ``limit()`` (clock time, read at each pause) wakes it at the
        latest then. Cancelled meanwhile, it takes nothing (see `_attempt`).
        """
        generation = self._generation(queue)
        result = await self._attempt(attempt, give_back)
        if result or wait <= 0:
            return result
        loop = asyncio.get_running_loop()
        deadline = loop.time() + wait
        pause, longest = self._db.poll_interval
        while not result:
            remaining = deadline - loop.time()
            if remaining <= 0:
                break
            if generation == self._generation(queue):  # nothing announced while we looked
                park = min(remaining, pause)
                if limit is not None:
                    park = max(0.0, min(park, limit() - self._clock.now()))
                await self._waiters.wait(queue, park)
                pause = min(pause * 2, longest)
            generation = self._generation(queue)
            self._check_open()
            result = await self._attempt(attempt, give_back)
        return result

    async def _fresh(self, lease: rules.Lease, asked: float) -> rules.Lease | None:
        """``lease``, renewed at once when taking it took so long (a wait for a connection or
        the write lock, counted from ``asked``) that less than half of it is left: a lease is
        never handed out spent or nearly so. None if it ran out before it could be renewed."""
        duration = lease.locked_until - asked
        if lease.locked_until - self._clock.now() >= duration / 2:
            return lease
        try:
            op = rules.renew_session(self._st, lease, self._clock.now())
            until = await self._run(op, "renew_session")
        except SessionLockLost:
            log.warning("a lease on session %s ran out while it was taken", lease.session_id)
            return None
        return dataclasses.replace(lease, locked_until=until)

    async def _attempt(
        self, attempt: Callable[[int], Awaitable[R]], give_back: Callable[[int], rules.Op[None]]
    ) -> R:
        """``attempt`` with a token of its own; cancelled before it returns, whatever it took
        under that token goes back as if never taken (``capabilities.release``): a cancelled
        receive or accept takes nothing."""
        token = self._token()
        try:
            return await attempt(token)
        except asyncio.CancelledError:
            await self._give_back_taken(give_back(token))
            raise

    async def _give_back_taken(self, op: rules.Op[None]) -> None:
        # runs to its end even if the caller is cancelled once more (only the wait is cut)
        try:
            await asyncio.shield(self._db.run(op, "give back a cancelled receive", relaxed=True))
        except (QueueError, asyncio.CancelledError) as error:
            log.warning(
                "a cancelled receive could not give back what it took (its locks run out): %s",
                error,
            )

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
        await self._run(rules.create_queue(self._st, name, settings), f"create_queue {name}")

    async def delete_queue(self, queue: QueueName | str) -> None:
        self._check_open()
        name = queue_name(queue)
        self._queues.pop(name, None)
        self._queues.pop(name + DEAD_LETTER_SUFFIX, None)
        await self._run(rules.delete_queue(self._st, name), f"delete_queue {name}")

    # -- sending -------------------------------------------------------------------------

    async def send_message(self, queue: QueueName | str, message: Message) -> MessageId:
        self._check_open()
        name = queue_name(queue)
        await self._send(name, (message,), "send")
        if log.isEnabledFor(logging.DEBUG):
            log.debug("sent queue=%s message_id=%s", name, message.message_id)
        return _message_id(message.message_id)

    async def send_messages(
        self, queue: QueueName | str, messages: Sequence[Message]
    ) -> list[MessageId]:
        self._check_open()
        name = queue_name(queue)
        batch = list(message_sequence(messages))
        if not batch:
            return []
        await self._send(name, batch, "send batch")
        if log.isEnabledFor(logging.DEBUG):
            log.debug("sent queue=%s message_ids=%s", name, [m.message_id for m in batch])
        return [_message_id(m.message_id) for m in batch]

    async def _send(self, name: str, messages: Sequence[Message], label: str) -> None:
        """Store ``messages`` against the queue as last read, or as read now if that row is
        gone (the failed insert rolled back: nothing was stored twice)."""
        known = self._queues.get(name)
        now = self._clock.now()
        size = _body_bytes(messages)
        database = self._db.key
        looks = SENT.note(database, messages)  # before the send: an unknown outcome counts
        while True:
            op = rules.send(self._st, name, known, messages, now, self._max_size, looks)
            try:
                self._queues[name], seq = await self._db.run(op, label, size=size)
                if seq:
                    SENT.saw(database, seq)
                return
            except QueueNotFound as exc:
                self._queues.pop(name, None)
                if known is None or not isinstance(exc, QueueGone):
                    raise
                known = None

    # -- receiving -----------------------------------------------------------------------

    async def receive_message(
        self, queue: QueueName | str, *, timeout: Timeout = None
    ) -> ReceivedMessage | None:
        got = await self._receive(queue, 1, timeout)
        return got[0] if got else None

    async def receive_messages(
        self, queue: QueueName | str, *, max_messages: int = 10, timeout: Timeout = None
    ) -> list[ReceivedMessage]:
        return await self._receive(queue, check_max_messages(max_messages), timeout)

    async def _receive(
        self, queue: QueueName | str, max_messages: int, timeout: Timeout
    ) -> list[ReceivedMessage]:
        self._check_open()
        name = queue_name(queue)
        wait = timeout_seconds(timeout, self._default_timeout)

        async def attempt(token: int) -> list[ReceivedMessage]:
            now = self._clock.now()
            row, rows = await self._take(
                name,
                lambda known, sweep: rules.receive(
                    self._st, name, known, max_messages, now, token, sweep
                ),
                "receive",
            )
            return received(rows, self._db.key, name, row.id, token, 0)

        def give_back(token: int) -> rules.Op[None]:
            return rules.release_taken(self._st, name, "", token, False)

        got = await self._until(name, wait, attempt, give_back)
        _log_delivered(name, None, got)
        return got

    async def peek_messages(
        self,
        queue: QueueName | str,
        *,
        max_messages: int = 10,
        from_sequence_number: int | None = None,
    ) -> list[ReceivedMessage]:
        """Messages in sequence order (available and locked), without locking them or counting
        a delivery; they carry no receipt and cannot be settled."""
        self._check_open()
        return await self._peek(queue_name(queue), None, max_messages, from_sequence_number)

    async def _peek(
        self, name: str, session_id: str | None, max_messages: int, from_sequence: int | None
    ) -> list[ReceivedMessage]:
        check_max_messages(max_messages)
        start = check_sequence_number(from_sequence)
        op = rules.peek(self._st, name, session_id, max_messages, start, self._clock.now())
        return peeked(await self._run(op, "peek"))

    # -- settling ------------------------------------------------------------------------

    def _receipt(self, message: ReceivedMessage, lease: int = 0) -> Receipt:
        """The receipt of a message delivered by this store (outside a session unless
        ``lease`` names the session's lease), else `ValidationError`."""
        self._check_open()
        if not isinstance(message, ReceivedMessage):
            raise ValidationError(f"expected a ReceivedMessage, not {type(message).__name__}")
        receipt = message.receipt
        if type(receipt) is not Receipt or receipt.store != self._db.key:
            if receipt is None:
                raise ValidationError("a peeked message cannot be settled")
            raise ValidationError("this message was not received through this client's store")
        if receipt.lease != lease:
            raise ValidationError(
                "this message was received through a session: settle it through that session"
                if receipt.lease
                else "this message was not received through this session"
            )
        return receipt

    async def complete_message(self, message: ReceivedMessage) -> None:
        await self._complete(self._receipt(message))

    async def abandon_message(self, message: ReceivedMessage) -> None:
        await self._settle(rules.abandon, self._receipt(message), "abandon")

    async def _settle(
        self,
        settle: Callable[[Statements, Receipt, float], rules.Op[None]],
        receipt: Receipt,
        action: str,
    ) -> None:
        now = self._clock.now()
        try:
            await self._db.run(settle(self._st, receipt, now), action, relaxed=True)
        except rules.Unsettled:
            pass  # which lock was lost: asked below, outside this handler
        else:
            _log_settled(action, receipt)
            return
        await self._db.run(rules.explain_unsettled(self._st, receipt, now), action, relaxed=True)

    async def _complete(self, receipt: Receipt) -> None:
        if self._completions is None:
            await self._settle(rules.complete, receipt, "complete")
        else:
            await self._completions(receipt)

    async def _complete_one(self, receipt: Receipt) -> None:
        await self._settle(rules.complete, receipt, "complete")

    async def _complete_gathered(self, receipts: list[Receipt]) -> list[BaseException | None]:
        """Completions that gathered while another was in flight, as one statement; each
        that changed nothing gets its own error (`SessionLockLost` or `MessageLockLost`)."""
        now = self._clock.now()
        done = await self._db.run(
            rules.complete_each(self._st, receipts, now), "complete", relaxed=True
        )
        outcomes: list[BaseException | None] = []
        for receipt in receipts:
            if receipt.seq in done:
                _log_settled("complete", receipt)
                outcomes.append(None)
                continue
            try:
                op = rules.explain_unsettled(self._st, receipt, now)
                await self._db.run(op, "complete", relaxed=True)
            except QueueError as error:
                outcomes.append(error)
            else:  # explain_unsettled always raises
                outcomes.append(rules.Unsettled("the message was not completed"))
        return outcomes

    async def dead_letter_message(
        self,
        message: ReceivedMessage,
        *,
        reason: str | None = None,
        description: str | None = None,
    ) -> None:
        await self._dead_letter(self._receipt(message), reason, description)

    async def _dead_letter(
        self, receipt: Receipt, reason: str | None, description: str | None
    ) -> None:
        check_dead_letter_reason(reason, description)
        op = rules.dead_letter(self._st, receipt, reason, description, self._clock.now())
        await self._run(op, "dead_letter")
        _log_settled("dead_letter", receipt)

    async def complete_messages(self, messages: Sequence[ReceivedMessage]) -> None:
        await self._complete_many(self._receipts(messages))

    async def _complete_many(self, receipts: list[Receipt]) -> None:
        if receipts:
            op = rules.complete_many(self._st, receipts, self._clock.now())
            outcomes = await self._run(op, "complete batch", relaxed=True)
            await self._report_batch(receipts, outcomes)

    async def abandon_messages(self, messages: Sequence[ReceivedMessage]) -> None:
        await self._settle_many(rules.abandon, self._receipts(messages), "abandon batch")

    async def release_messages(self, messages: Sequence[ReceivedMessage]) -> None:
        await self._release(self._receipts(messages))

    async def _release(self, receipts: list[Receipt]) -> None:
        if receipts:
            op = rules.release(self._st, receipts)
            await self._report_batch(receipts, await self._run(op, "release", relaxed=True))

    def _receipts(self, messages: Sequence[ReceivedMessage], lease: int = 0) -> list[Receipt]:
        """Every message's receipt, checked before anything is settled."""
        return [self._receipt(m, lease) for m in received_sequence(messages)]

    async def _settle_many(
        self,
        settle: Callable[[Statements, Receipt, float], rules.Op[None]],
        receipts: list[Receipt],
        label: str,
    ) -> None:
        """Settle every receipt in one transaction; `BatchSettleError` names those that failed."""
        if not receipts:
            return
        op = rules.settle_many(self._st, settle, receipts, self._clock.now())
        await self._report_batch(receipts, await self._run(op, label, relaxed=True))

    async def _report_batch(
        self, receipts: list[Receipt], outcomes: list[QueueError | None]
    ) -> None:
        """Log a settled batch; `BatchSettleError` naming the receipts that failed."""
        if log.isEnabledFor(logging.DEBUG):
            log.debug(
                "settled batch queue=%s seqs=%s", receipts[0].queue, [r.seq for r in receipts]
            )
        ids = [str(r.message_id) for r in receipts]
        failed = [(mid, error) for mid, error in zip(ids, outcomes, strict=True) if error]
        if failed:
            settled = [mid for mid, error in zip(ids, outcomes, strict=True) if error is None]
            raise batch_settle_error(settled, failed)

    async def get_queue_statistics(self, queue: QueueName | str) -> QueueStatistics:
        self._check_open()
        name = queue_name(queue)
        return await self._run(rules.statistics(self._st, name, self._clock.now()), "statistics")

    async def renew_message_lock(self, message: ReceivedMessage) -> datetime:
        receipt = self._receipt(message)
        until = await self._run(
            rules.renew_lock(self._st, receipt, self._clock.now()), "renew_lock"
        )
        return to_datetime(until)

    # -- sessions ------------------------------------------------------------------------

    async def accept_session(
        self,
        queue: QueueName | str,
        session_id: str | None = None,
        *,
        timeout: Timeout = None,
    ) -> SqlSessionClient | None:
        self._check_open()
        name = queue_name(queue)
        wait = timeout_seconds(timeout, self._default_timeout)
        wanted = None if session_id is None else SessionId(session_id)

        async def named(token: int) -> rules.Lease | None:
            assert wanted is not None
            asked = self._clock.now()
            op = rules.accept_session(self._st, name, wanted, asked, token)
            return await self._fresh(await self._run(op, "accept_session"), asked)

        def give_back(token: int) -> rules.Op[None]:
            return rules.release_taken(self._st, name, "", token, True)

        if wanted is None:
            lease = await self._until(name, wait, self._accept_next(name), give_back)
        else:
            for _ in range(3):  # a named lease spent before it was handed out: take it again
                if (lease := await self._attempt(named, give_back)) is not None:
                    break
            else:
                raise SessionLockLost(f"the lease on session {wanted!r} ran out while taken")
        if lease is None:
            return None
        log.debug("accepted queue=%s session_id=%s", name, lease.session_id)
        session = SqlSessionClient(self, lease)
        self._sessions.add(session)
        return session

    def _accept_next(self, name: str) -> Callable[[int], Awaitable[rules.Lease | None]]:
        """One look for the next available session of ``name`` (an attempt of `_until`)."""

        async def attempt(token: int) -> rules.Lease | None:
            known, sweep = self._known(name)
            for _ in range(8):  # a session leased by a concurrent accept: look again
                asked = self._clock.now()
                op = rules.accept_next(self._st, name, known, asked, token, sweep)
                try:
                    row, lease, swept = await self._run(op, "accept_session")
                except QueueNotFound:
                    self._queues.pop(name, None)
                    raise
                self._remember(row, swept)
                if lease is not None:
                    fresh = await self._fresh(lease, asked)
                    if fresh is not None:
                        return fresh
                    continue
                ready = await self._run(rules.session_ready(self._st, row, asked), "accept")
                if not ready:
                    if swept:
                        return None
                    # the queue as last read may be gone, or hold lapsed locks: look again
                    known, sweep = None, True
                else:
                    known, sweep = row, False
            return None

        return attempt


class SqlSessionClient(SessionClient):
    """A session of a `SqlQueueClient`, leased in the database (exclusive across processes)."""

    def __init__(self, client: SqlQueueClient, lease: rules.Lease) -> None:
        self._client = client
        self._st = client._st
        self._clock = client.clock
        self._lease = lease
        self._locked_until = lease.locked_until
        self._closed = False

    def __repr__(self) -> str:
        return f"SqlSessionClient(queue={self._lease.queue!r}, session_id={self.session_id!r})"

    @property
    def session_id(self) -> str:
        return self._lease.session_id

    @property
    def locked_until(self) -> datetime:
        return to_datetime(self._locked_until)

    def _check(self) -> rules.Lease:
        if self._closed:
            raise SessionLockLost(f"session {self.session_id!r} was closed")
        self._client._check_open()
        return self._lease

    async def receive_message(self, *, timeout: Timeout = None) -> ReceivedMessage | None:
        got = await self._receive(1, timeout)
        return got[0] if got else None

    async def receive_messages(
        self, *, max_messages: int = 10, timeout: Timeout = None
    ) -> list[ReceivedMessage]:
        return await self._receive(check_max_messages(max_messages), timeout)

    async def _receive(self, max_messages: int, timeout: Timeout) -> list[ReceivedMessage]:
        lease = self._check()
        client = self._client
        wait = timeout_seconds(timeout, client._default_timeout)

        async def attempt(token: int) -> list[ReceivedMessage]:
            lease = self._check()
            now = self._clock.now()
            _, rows = await client._take(
                lease.queue,
                lambda known, sweep: rules.session_receive(
                    self._st, lease, known, max_messages, now, token, sweep
                ),
                "session receive",
                lambda: rules.check_lease(self._st, lease, now),  # lost: SessionLockLost
            )
            return received(rows, client._db.key, lease.queue, lease.queue_id, token, lease.token)

        def give_back(token: int) -> rules.Op[None]:
            return rules.release_taken(self._st, lease.queue, lease.session_id, token, False)

        # woken by the lease's expiry at the latest, so a lapsed lock is reported
        got = await client._until(
            lease.queue, wait, attempt, give_back, limit=lambda: self._locked_until
        )
        _log_delivered(lease.queue, lease.session_id, got)
        return got

    async def peek_messages(
        self, *, max_messages: int = 10, from_sequence_number: int | None = None
    ) -> list[ReceivedMessage]:
        """The session's messages in sequence order, without locking them."""
        lease = self._check()
        return await self._client._peek(
            lease.queue, lease.session_id, max_messages, from_sequence_number
        )

    def _receipt(self, message: ReceivedMessage) -> Receipt:
        self._check()
        return self._client._receipt(message, self._lease.token)

    async def complete_message(self, message: ReceivedMessage) -> None:
        await self._client._complete(self._receipt(message))

    async def complete_messages(self, messages: Sequence[ReceivedMessage]) -> None:
        self._check()
        await self._client._complete_many(self._client._receipts(messages, self._lease.token))

    async def abandon_messages(self, messages: Sequence[ReceivedMessage]) -> None:
        self._check()
        receipts = self._client._receipts(messages, self._lease.token)
        await self._client._settle_many(rules.abandon, receipts, "abandon batch")

    async def release_messages(self, messages: Sequence[ReceivedMessage]) -> None:
        # also once the lease lapsed: the tokens tell whether anyone received them since
        self._check()
        await self._client._release(self._client._receipts(messages, self._lease.token))

    async def abandon_message(self, message: ReceivedMessage) -> None:
        await self._client._settle(rules.abandon, self._receipt(message), "abandon")

    async def dead_letter_message(
        self,
        message: ReceivedMessage,
        *,
        reason: str | None = None,
        description: str | None = None,
    ) -> None:
        await self._client._dead_letter(self._receipt(message), reason, description)

    async def renew_session_lock(self) -> datetime:
        lease = self._check()
        op = rules.renew_session(self._st, lease, self._clock.now())
        self._locked_until = await self._client._run(op, "renew_session")
        return to_datetime(self._locked_until)

    async def get_state(self) -> bytes | None:
        op = rules.get_state(self._st, self._check(), self._clock.now())
        return await self._client._run(op, "get_state")

    async def set_state(self, state: bytes | None) -> None:
        if state is not None and type(state) is not bytes:
            raise ValidationError(
                f"session state must be bytes or None, not {type(state).__name__}"
            )
        op = rules.set_state(self._st, self._check(), state, self._clock.now())
        await self._client._run(op, "set_state")

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        client = self._client
        client._sessions.discard(self)
        if client._state == "open":
            op = rules.release_session(self._st, self._lease, self._clock.now())
            await client._run(op, "release_session")
            log.debug("released queue=%s session_id=%s", self._lease.queue, self.session_id)


def _body_bytes(messages: Sequence[Message]) -> int:
    """The bytes of the bodies a send would write (the rules validate the messages later)."""
    total = 0
    for message in messages:
        body = getattr(message, "body", None)
        if type(body) is bytes:
            total += len(body)
    return total


def _message_id(checked: str) -> MessageId:
    """A `MessageId` of an id `validate_message` already checked (not checked twice)."""
    return str.__new__(MessageId, checked)


def _log_delivered(queue: str, session_id: str | None, got: list[ReceivedMessage]) -> None:
    if got and log.isEnabledFor(logging.DEBUG):
        log.debug(
            "delivered queue=%s session_id=%s message_ids=%s",
            queue,
            session_id,
            [m.message_id for m in got],
        )


def _log_settled(action: str, receipt: Receipt) -> None:
    if log.isEnabledFor(logging.DEBUG):
        log.debug("%s queue=%s seq=%s", action, receipt.queue, receipt.seq)
