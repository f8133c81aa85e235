"""What this process holds of each SQS queue: received messages, session leases, waiters.

SQS has no sessions, only FIFO message groups: while any message of a group is in flight
(received, not yet deleted or visible again), SQS delivers no other message of that group to
anyone. The adapter builds sessions on that:

- every message received from a queue, by any client of the process, lands here first, filed
  under its group (session queues) or in one plain list (other queues), and stays *held*
  (invisible in SQS) until settled or until its visibility runs out;
- a `Lease` makes a group exclusive to one `SqsSessionClient` in the process; messages of other
  groups received meanwhile wait here for their own session, never released in a way that
  burns a receive;
- abandons and lease ends within a session are local: the message stays in flight and comes
  back first, with a delivery count this registry keeps (SQS's count plus local redeliveries).

One `QueueState` per endpoint and queue URL, shared by every client of the process. It is
guarded by a lock (polls deposit from worker threads) and wakes waiting coroutines of any
event loop thread-safely. Times are ``time.monotonic()`` seconds; every deadline already has
`MARGIN` taken off, so a lock that looks valid here is valid in SQS.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Final, TypeVar

from ..._errors import MessageLockLost, SessionLocked, SessionLockLost
from ._codec import Incoming

__all__ = [
    "MARGIN",
    "Entry",
    "Group",
    "Lease",
    "QueueSettingsView",
    "QueueState",
    "forget_state",
    "queue_state",
]

#: Seconds before SQS's estimated end of a lock at which the adapter stops trusting it: a
#: settlement sent later could reach SQS after the message went to someone else.
MARGIN: Final = 0.2
#: Local delivery-count adjustments kept per queue (oldest dropped first).
_MAX_ADJUSTMENTS: Final = 50_000

_T = TypeVar("_T")


@dataclass(frozen=True, slots=True)
class QueueSettingsView:
    """What the registry needs to know of a queue to decide a message's fate."""

    max_delivery_count: int
    lock_seconds: int
    default_ttl: float | None
    dead_letter_on_expiration: bool
    #: A dead-letter queue: no expiry, no max delivery count.
    dead_letter: bool


class Lease:
    """A session's hold on a message group within this process."""

    __slots__ = ("closed", "group_id", "owner", "session_id", "token", "until", "until_wall")

    def __init__(
        self,
        group_id: str,
        session_id: str,
        token: int,
        until: float,
        until_wall: float,
        owner: object = None,
    ) -> None:
        self.group_id = group_id
        #: The client whose session holds the lease.
        self.owner = owner
        self.session_id = session_id
        self.token = token
        #: Monotonic time at which the lease lapses.
        self.until = until
        self.until_wall = until_wall
        self.closed = False

    def alive(self, now: float) -> bool:
        return not self.closed and now < self.until

    def move_until(self, until: float) -> None:
        """Set a new expiry, keeping the wall-clock copy in step."""
        self.until_wall += until - self.until
        self.until = until


class Entry:
    """One received SQS message while this process holds it."""

    __slots__ = (
        "busy",
        "count",
        "deadline",
        "deadline_wall",
        "delivered",
        "group",
        "incoming",
        "kept",
        "lease",
        "moved",
        "next_count",
        "receiver",
        "seq",
        "settled",
        "token",
    )

    def __init__(
        self,
        incoming: Incoming,
        deadline: float,
        deadline_wall: float,
        next_count: int,
        receiver: object,
        seq: int,
        group: Group | None,
    ) -> None:
        self.incoming = incoming
        #: Monotonic time at which the lock is no longer trusted (MARGIN included).
        self.deadline = deadline
        self.deadline_wall = deadline_wall
        #: The delivery count its next delivery reports.
        self.next_count = next_count
        #: The delivery count of its current delivery (when delivered).
        self.count = 0
        self.delivered = False
        #: Changes on every delivery; a receipt with another token is stale.
        self.token = 0
        self.settled = False
        #: Being settled or disposed of right now.
        self.busy = False
        self.receiver = receiver
        self.seq = seq
        self.group = group
        #: The session lease it was delivered under (session queues).
        self.lease: Lease | None = None
        #: Already sent to the dead-letter queue (only the delete is left to do).
        self.moved = False
        #: Times the keeper extended it while no live session held it.
        self.kept = 0

    def extend(self, start: float, start_wall: float, seconds: float) -> None:
        """Its visibility was set to ``seconds`` by a call sent at ``start``."""
        self.deadline = start + seconds - MARGIN
        self.deadline_wall = start_wall + seconds - MARGIN


class Group:
    """The held messages of one message group (session), in the order SQS delivered them."""

    __slots__ = ("entries", "id", "lease")

    def __init__(self, group_id: str) -> None:
        self.id = group_id
        self.entries: list[Entry] = []
        self.lease: Lease | None = None


class _Waiter:
    __slots__ = ("future", "loop")

    def __init__(self) -> None:
        self.loop = asyncio.get_running_loop()
        self.future: asyncio.Future[None] = self.loop.create_future()

    def wake(self) -> None:
        if self.future.done():
            return
        with contextlib.suppress(RuntimeError):  # its loop is closed: nobody waits any more
            self.loop.call_soon_threadsafe(_resolve, self.future)

    async def wait(self, timeout: float | None) -> None:
        try:
            async with asyncio.timeout(timeout):
                await self.future
        except TimeoutError:
            pass


def _resolve(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


class QueueState:
    """The process's view of one SQS queue; see the module docstring."""

    def __init__(self, key: tuple[str, str], *, session: bool) -> None:
        self.key = key
        self.session = session
        self.settings: QueueSettingsView | None = None
        # re-entrant: a poll future that is already done runs its callback at once
        self.lock = threading.RLock()
        self.groups: dict[str, Group] = {}
        self.plain: list[Entry] = []
        #: SQS message id -> what to add to ApproximateReceiveCount for the delivery count.
        self.adjust: dict[str, int] = {}
        self.polling: Future[None] | None = None
        self._waiters: set[_Waiter] = set()
        self._seq = itertools.count(1)
        self._tokens = itertools.count(1)

    # -- waiting ------------------------------------------------------------------------

    def take_or_wait(
        self,
        take: Callable[[], _T | None],
        start_poll: Callable[[], Future[None]] | None,
    ) -> tuple[_T | None, _Waiter | None, Future[None] | None]:
        """``take()``'s result if any; else a registered waiter, and the poll this call
        started (when ``start_poll`` is given and no poll of the queue is in flight)."""
        with self.lock:
            got = take()
            if got is not None:
                return got, None, None
            waiter = _Waiter()
            self._waiters.add(waiter)
            started = None
            if start_poll is not None and self.polling is None:
                started = self.polling = start_poll()
                started.add_done_callback(self._poll_finished)
            return None, waiter, started

    def remove_waiter(self, waiter: _Waiter | None) -> None:
        if waiter is not None:
            with self.lock:
                self._waiters.discard(waiter)

    def wake_all(self) -> None:
        with self.lock:
            for waiter in self._waiters:
                waiter.wake()

    def _poll_finished(self, future: Future[None]) -> None:
        with self.lock:
            if self.polling is future:
                self.polling = None
            self.wake_all()

    # -- receiving ------------------------------------------------------------------------

    def deposit(
        self, received: list[Incoming], start: float, start_wall: float, receiver: object
    ) -> None:
        """File messages a poll received (the poll was sent at monotonic ``start``)."""
        if not received:
            return
        settings = self.settings
        seconds = settings.lock_seconds if settings else 0
        deadline, deadline_wall = start + seconds - MARGIN, start_wall + seconds - MARGIN
        with self.lock:
            if self.session:
                seen: set[str] = set()
                for incoming in received:
                    group_id = incoming.group_id or ""
                    group = self.groups.get(group_id)
                    if group is None:
                        group = self.groups[group_id] = Group(group_id)
                    if group_id not in seen:
                        # SQS delivered this group again, so nothing of it is in flight: what
                        # we still hold of it lapsed unnoticed
                        seen.add(group_id)
                        for stale in list(group.entries):
                            self._drop(stale)
                    group.entries.append(
                        self._entry(incoming, deadline, deadline_wall, receiver, group)
                    )
            else:
                ids = {incoming.sqs_id for incoming in received}
                for stale in [e for e in self.plain if e.incoming.sqs_id in ids]:
                    self._drop(stale)
                self.plain.extend(
                    self._entry(incoming, deadline, deadline_wall, receiver, None)
                    for incoming in received
                )
            self.wake_all()

    def _entry(
        self,
        incoming: Incoming,
        deadline: float,
        deadline_wall: float,
        receiver: object,
        group: Group | None,
    ) -> Entry:
        count = incoming.receive_count + self.adjust.get(incoming.sqs_id, 0)
        return Entry(
            incoming, deadline, deadline_wall, max(count, 1), receiver, next(self._seq), group
        )

    def take_plain(self, max_messages: int) -> tuple[list[Entry], list[tuple[Entry, str]]]:
        """Up to ``max_messages`` held messages of a queue without sessions, now delivered;
        and messages to dispose of instead (expired or spent), marked busy."""
        now, wall = time.monotonic(), time.time()
        delivered: list[Entry] = []
        doomed: list[tuple[Entry, str]] = []
        with self.lock:
            keep: list[Entry] = []
            for entry in self.plain:
                if now >= entry.deadline and not entry.busy:
                    self._drop(entry, remove=False)
                    continue
                if len(delivered) < max_messages and not entry.busy:
                    why = self._doom(entry, wall)
                    if why is None:
                        self._deliver(entry, None)
                        delivered.append(entry)
                        continue
                    entry.busy = True
                    doomed.append((entry, why))
                keep.append(entry)
            self.plain = keep
        return delivered, doomed

    def take_session(
        self, lease: Lease, max_messages: int
    ) -> tuple[list[Entry], list[tuple[Entry, str]]]:
        """The session's next held messages in order, now delivered under ``lease``; and
        messages to dispose of first (expired or spent). Raises `SessionLockLost`."""
        now, wall = time.monotonic(), time.time()
        delivered: list[Entry] = []
        doomed: list[tuple[Entry, str]] = []
        with self.lock:
            group = self.groups.get(lease.group_id)
            if group is None or group.lease is not lease or not lease.alive(now):
                raise SessionLockLost(f"the lock on session {lease.session_id!r} was lost")
            self._revalidate(group, now)
            for entry in list(group.entries):
                if entry.delivered or entry.busy:
                    continue
                why = self._doom(entry, wall)
                if why is not None:
                    entry.busy = True
                    doomed.append((entry, why))
                    break  # dispose of it before delivering what follows, to keep the order
                self._deliver(entry, lease)
                delivered.append(entry)
                if len(delivered) >= max_messages:
                    break
        return delivered, doomed

    def _deliver(self, entry: Entry, lease: Lease | None) -> None:
        entry.kept = 0
        entry.delivered = True
        entry.count = entry.next_count
        entry.token = next(self._tokens)
        entry.lease = lease

    def _doom(self, entry: Entry, wall: float) -> str | None:
        """Why ``entry`` must not be delivered ("expired", "spent"), or None."""
        settings = self.settings
        if settings is None or settings.dead_letter:
            return None
        message = entry.incoming.message
        ttl = message.time_to_live
        seconds = ttl.total_seconds() if ttl is not None else settings.default_ttl
        if seconds is not None and entry.incoming.enqueued + seconds <= wall:
            return "expired"
        if entry.next_count > settings.max_delivery_count:
            return "spent"
        return None

    # -- sessions -------------------------------------------------------------------------

    def new_lease(
        self, group_id: str, session_id: str, seconds: float, owner: object = None
    ) -> Lease:
        now, wall = time.monotonic(), time.time()
        return Lease(
            group_id,
            session_id,
            next(self._tokens),
            now + seconds - MARGIN,
            wall + seconds - MARGIN,
            owner,
        )

    def claim(self, lease: Lease) -> list[Entry]:
        """Give ``lease`` its group; returns held messages whose visibility must be extended
        to cover the lease. Raises `SessionLocked` if another live lease holds the group."""
        now = time.monotonic()
        with self.lock:
            group = self.groups.get(lease.group_id)
            if group is None:
                group = self.groups[lease.group_id] = Group(lease.group_id)
            holder = group.lease
            if holder is not None and holder is not lease and holder.alive(now):
                raise SessionLocked(f"session {lease.session_id!r} is held by another receiver")
            return self._take_over(group, lease, now)

    def claim_next(
        self, make_lease: Callable[[Group], Lease]
    ) -> tuple[Lease | None, list[Entry], list[tuple[Entry, str]]]:
        """Lease the group that has waited longest with a deliverable message.

        Returns the lease (None if no group is ready), the messages whose visibility must be
        extended for it, and messages to dispose of (expired or spent heads of groups).
        """
        now, wall = time.monotonic(), time.time()
        doomed: list[tuple[Entry, str]] = []
        with self.lock:
            ready = [
                group
                for group in self.groups.values()
                if group.entries and (group.lease is None or not group.lease.alive(now))
            ]
            ready.sort(key=lambda group: group.entries[0].seq)
            for group in ready:
                self._end_lease(group)
                self._revalidate(group, now)
                deliverable = False
                for entry in group.entries:
                    if entry.busy:
                        continue
                    why = self._doom(entry, wall)
                    if why is None:
                        deliverable = True
                        break
                    entry.busy = True
                    doomed.append((entry, why))
                if deliverable:
                    lease = make_lease(group)
                    return lease, self._take_over(group, lease, now), doomed
                self._collect(group)
        return None, [], doomed

    def _take_over(self, group: Group, lease: Lease, now: float) -> list[Entry]:
        self._end_lease(group)
        group.lease = lease
        self._revalidate(group, now)
        for entry in group.entries:
            entry.kept = 0
        if not group.entries:
            return []
        earliest = min(entry.deadline for entry in group.entries)
        tolerance = min(1.0, 0.1 * (self.settings.lock_seconds if self.settings else 0))
        if earliest >= lease.until - tolerance:
            # visible long enough already: the lease may end a little early instead of a call
            lease.move_until(min(lease.until, earliest))
            return []
        return [entry for entry in group.entries if not entry.busy]

    def _end_lease(self, group: Group) -> None:
        """Detach a lapsed or closed lease: what it had delivered comes back, first."""
        lease, group.lease = group.lease, None
        if lease is None:
            return
        for entry in group.entries:
            if entry.delivered and not entry.busy:
                entry.delivered = False
                entry.next_count = entry.count + 1
                entry.token = next(self._tokens)
                entry.lease = None

    def release(self, lease: Lease) -> list[Entry]:
        """End ``lease`` (session close); returns messages the caller makes visible again.

        With unsettled deliveries, the group goes back to SQS whole, so the session (or any
        process) gets them again in order together with messages sent since, which SQS
        withholds while any message of the group is in flight. Otherwise the messages it
        fetched but did not deliver stay held for the group's next session: giving them back
        would count a receive against them that was no delivery.
        """
        now = time.monotonic()
        released: list[Entry] = []
        with self.lock:
            lease.closed = True
            group = self.groups.get(lease.group_id)
            if group is not None and group.lease is lease:
                unsettled = any(entry.delivered for entry in group.entries)
                self._end_lease(group)
                if unsettled and not any(entry.busy for entry in group.entries):
                    for entry in list(group.entries):
                        self._drop(entry)
                        if now < entry.deadline:
                            released.append(entry)
                self._collect(group)
            self.wake_all()
        return released

    def session_entries(self, lease: Lease) -> list[Entry]:
        """The held messages of a live lease's group (to renew them)."""
        now = time.monotonic()
        with self.lock:
            group = self.groups.get(lease.group_id)
            if group is None or group.lease is not lease or not lease.alive(now):
                raise SessionLockLost(f"the lock on session {lease.session_id!r} was lost")
            return [entry for entry in group.entries if not entry.settled]

    def extended(
        self, entries: list[Entry], start: float, start_wall: float, seconds: float
    ) -> None:
        with self.lock:
            for entry in entries:
                if not entry.settled:
                    entry.extend(start, start_wall, seconds)

    # -- settling -------------------------------------------------------------------------

    def reserve(self, entry: Entry, token: int) -> None:
        """Check that the delivery ``token`` of ``entry`` may be settled, and mark it busy.

        Raises `MessageLockLost` (settled, redelivered, lock lapsed) or `SessionLockLost`
        (its session's lease is gone).
        """
        now = time.monotonic()
        with self.lock:
            if entry.settled or entry.token != token or not entry.delivered:
                raise MessageLockLost("the message was already settled or its lock was lost")
            if entry.busy:
                raise MessageLockLost("the message is being settled by another call")
            lease = entry.lease
            if lease is not None and not lease.alive(now):
                raise SessionLockLost(f"the lock on session {lease.session_id!r} was lost")
            if now >= entry.deadline:
                raise MessageLockLost("the message lock expired; it will be delivered again")
            entry.busy = True

    def settled(self, entry: Entry) -> None:
        """The message left the queue (deleted, or moved to the dead-letter queue)."""
        with self.lock:
            entry.settled = True
            entry.busy = False
            self.adjust.pop(entry.incoming.sqs_id, None)
            self._remove(entry)

    def unreserve(self, entry: Entry) -> None:
        """A settlement failed without changing anything: the message is as it was."""
        with self.lock:
            entry.busy = False

    def returned(self, entry: Entry) -> None:
        """A session message was abandoned: it stays held and comes back first."""
        with self.lock:
            entry.busy = False
            entry.delivered = False
            entry.next_count = entry.count + 1
            entry.token = next(self._tokens)
            entry.lease = None

    def released(self, entry: Entry) -> None:
        """A message was made visible in SQS again (abandon outside sessions)."""
        with self.lock:
            entry.settled = True
            entry.busy = False
            self._remove(entry)

    def lost(self, entry: Entry) -> None:
        """SQS no longer honours our receipt: forget the message (it comes back by itself)."""
        with self.lock:
            entry.busy = False
            self._drop(entry)

    def keep_due(
        self, receiver: object, lead: float, max_keeps: int
    ) -> tuple[list[Entry], list[Entry]]:
        """Held messages ``receiver`` keeps that lapse within ``lead`` seconds: those to
        extend, and those to give back to SQS now (forgotten here; the caller makes them
        visible). A message no live session holds is extended ``max_keeps`` times, then its
        whole group goes back, in order. Nothing is left to lapse unnoticed: SQS (and moto)
        re-deliver an explicitly released group in order, a lapsed one not necessarily."""
        now = time.monotonic()
        extend: list[Entry] = []
        release: list[Entry] = []
        with self.lock:
            for group in list(self.groups.values()):
                near = [
                    entry
                    for entry in group.entries
                    if entry.receiver is receiver
                    and not entry.busy
                    and now < entry.deadline < now + lead
                ]
                if not near:
                    continue
                if group.lease is not None and group.lease.alive(now):
                    extend.extend(near)
                elif any(entry.kept >= max_keeps for entry in near):
                    if any(entry.busy for entry in group.entries):
                        continue
                    self._end_lease(group)
                    for entry in list(group.entries):
                        self._drop(entry)
                        if now < entry.deadline:
                            release.append(entry)
                else:
                    for entry in near:
                        entry.kept += 1
                    extend.extend(near)
            for entry in list(self.plain):
                if entry.receiver is not receiver or entry.busy:
                    continue
                if not now < entry.deadline < now + lead:
                    continue
                if entry.kept >= max_keeps:
                    self._drop(entry)
                    release.append(entry)
                else:
                    entry.kept += 1
                    extend.append(entry)
            if release:
                self.wake_all()
        return extend, release

    def release_all(self, receiver: object) -> list[Entry]:
        """Forget held messages that ``receiver`` received and no live session holds; the
        caller makes them visible again. A group goes back whole, so its order stays."""
        now = time.monotonic()
        released: list[Entry] = []
        with self.lock:
            for group in list(self.groups.values()):
                if group.lease is not None and group.lease.alive(now):
                    # a live session of another client holds them: its client keeps them
                    for entry in group.entries:
                        if entry.receiver is receiver:
                            entry.receiver = group.lease.owner
                    continue
                if not any(entry.receiver is receiver for entry in group.entries):
                    continue
                if any(entry.busy for entry in group.entries):
                    continue
                self._end_lease(group)
                for entry in list(group.entries):
                    self._drop(entry)
                    released.append(entry)
            for entry in [e for e in self.plain if e.receiver is receiver and not e.busy]:
                self._drop(entry)
                released.append(entry)
            self.wake_all()
        return [entry for entry in released if now < entry.deadline]

    # -- bookkeeping ----------------------------------------------------------------------

    def _revalidate(self, group: Group, now: float) -> None:
        """Forget messages of ``group`` whose visibility (by our estimate) ran out."""
        for entry in list(group.entries):
            if now >= entry.deadline and not entry.busy:
                self._drop(entry)

    def _drop(self, entry: Entry, *, remove: bool = True) -> None:
        """Forget a held message that goes back to SQS unsettled, remembering its delivery
        count: SQS will count one more receive than it had deliveries."""
        if not entry.settled:
            desired = entry.count + 1 if entry.delivered else entry.next_count
            self._set_adjustment(
                entry.incoming.sqs_id, desired - (entry.incoming.receive_count + 1)
            )
        entry.settled = True
        entry.token = -1
        if remove:
            self._remove(entry)

    def _remove(self, entry: Entry) -> None:
        group = entry.group
        if group is not None:
            if entry in group.entries:
                group.entries.remove(entry)
            self._collect(group)
        elif entry in self.plain:
            self.plain.remove(entry)

    def _collect(self, group: Group) -> None:
        if not group.entries and group.lease is None and self.groups.get(group.id) is group:
            del self.groups[group.id]

    def _set_adjustment(self, sqs_id: str, value: int) -> None:
        adjust = self.adjust
        adjust.pop(sqs_id, None)
        if value:
            adjust[sqs_id] = value
            if len(adjust) > _MAX_ADJUSTMENTS:
                del adjust[next(iter(adjust))]


_states_lock = threading.Lock()
_states: dict[tuple[str, str], QueueState] = {}


def queue_state(endpoint: str, url: str, *, session: bool) -> QueueState:
    """The process-wide state of the queue at ``url`` on ``endpoint``."""
    key = (endpoint, url)
    with _states_lock:
        state = _states.get(key)
        if state is None or state.session != session:
            state = _states[key] = QueueState(key, session=session)
        return state


def forget_state(endpoint: str, url: str) -> None:
    """Drop what the process holds of a deleted queue."""
    with _states_lock:
        state = _states.pop((endpoint, url), None)
    if state is not None:
        state.wake_all()
