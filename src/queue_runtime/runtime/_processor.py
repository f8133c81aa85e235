"""`Processor`: turns any `QueueClient` into a production consumer.

Session queues: up to ``max_concurrent_sessions`` workers, each holding one session and
handling its messages strictly in order, releasing it the moment it is drained. Queues
without sessions: up to ``max_concurrency`` handlers at once, fed by receives of at most the
free capacity. A stop or a lost lock never costs a delivery of a message no handler started:
where the adapter can give messages back uncounted (``capabilities.release``) a session's
worker receives ahead and releases what it did not start; elsewhere only what is about to be
handled is received, and what a receive brings is handled, also when a stop comes meanwhile.
Around every handler: the middleware chain (tracing, rate limit, circuit breaker, timeout,
the user's own); after it, settlement (complete, retry with backoff, or dead-letter). One
renewal task keeps the locks of whatever is held alive.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import signal
import time
from collections import deque
from collections.abc import Awaitable, Coroutine, Sequence
from dataclasses import dataclass
from typing import Final, Literal, TypeVar

from .._errors import (
    ClientClosed,
    MessageLockLost,
    QueueError,
    SessionLockLost,
    UnsupportedOperation,
    ValidationError,
)
from .._messages import ReceivedMessage
from .._names import QueueName
from ..ports import QueueClient, SessionClient
from ..telemetry import (
    DESTINATION_NAME,
    SYSTEM,
    enabled,
    instruments,
    messaging_system,
    metering,
    process_span,
    record_failure,
)
from ._breaker import STATE_VALUES, Breaker, CircuitBreaker, Interrupted
from ._health import Counters, Health, HealthServer
from ._limits import Lane, LaneScheduler, RateLimit, RateLimiter, lanes_of
from ._middleware import (
    Handler,
    MessageContext,
    Middleware,
    Next,
    RateLimitMiddleware,
    TimeoutMiddleware,
    compose,
    endpoint,
)
from ._policy import RetryPolicy, describe_error, verdict
from ._service import Service

__all__ = ["Processor"]

_log = logging.getLogger("queue_runtime.runtime")
_LANE_POLL: Final = 0.05  # seconds one blocking receive waits when several lanes share it
_ERROR_BACKOFF: Final = (0.05, 5.0)  # after a failed receive: first and longest pause
# a lock is renewed once less than 60% of it is left, looked at every quarter of it: a renewal
# starts with at least 35% of the lock left, time enough for a slow provider round trip
_RENEW_AHEAD: Final = 0.6
_RENEW_TICK: Final = 0.25
_Outcome = Literal["done", "retry", "lost", "stopped"]
_T = TypeVar("_T")


#: Raised inside a worker when the processor stops while it waits.
_Stopped = Interrupted


@dataclass(slots=True, eq=False)
class _Lease:
    """A lock the renewal task keeps alive: one message's, or one session's."""

    message: ReceivedMessage | None
    session: SessionClient | None
    locked_until: float
    renew_ahead: float
    lost: bool = False


def _ids(message: ReceivedMessage, queue: QueueName) -> dict[str, object]:
    return {
        "queue": str(queue),
        "message_id": message.message_id,
        "session_id": message.session_id,
        "delivery_count": message.delivery_count,
    }


class Processor(Service):
    """Runs ``handler`` over the messages of ``queue`` (or of several lanes, highest first).

    ``handler`` takes the `ReceivedMessage`, its body parsed into a pydantic model (annotate
    the parameter with the model), or the `MessageContext`. Success completes the message;
    `PermanentError` (or a body that does not parse) dead-letters it at once; any other
    exception is retried per ``retry`` and dead-lettered with the last error once
    ``retry.max_attempts`` attempts are spent. See ``specs/runtime.md``.
    """

    def __init__(
        self,
        client: QueueClient,
        queue: QueueName | str | Lane | Sequence[QueueName | str | Lane],
        handler: Handler,
        *,
        max_concurrent_sessions: int = 8,
        max_concurrency: int = 16,
        retry: RetryPolicy = RetryPolicy(),  # noqa: B008 - frozen, shared safely
        circuit_breaker: CircuitBreaker | None = CircuitBreaker(),  # noqa: B008 - frozen
        rate_limit: RateLimit | None = None,
        handler_timeout: float | None = None,
        middleware: Sequence[Middleware] = (),
        sessions: bool | None = None,
        session_prefetch: int = 16,
        session_idle_timeout: float = 0.0,
        receive_timeout: float = 1.0,
        lock_renewal: bool = True,
        shutdown_timeout: float = 30.0,
        health_port: int | None = None,
        health_host: str = "127.0.0.1",
    ) -> None:
        if not isinstance(client, QueueClient):
            raise ValidationError(f"client must be a QueueClient, not {type(client).__name__}")
        for name, value in (
            ("max_concurrent_sessions", max_concurrent_sessions),
            ("max_concurrency", max_concurrency),
            ("session_prefetch", session_prefetch),
        ):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValidationError(f"{name} must be a positive int, not {value!r}")
        for name, number in (
            ("session_idle_timeout", session_idle_timeout),
            ("receive_timeout", receive_timeout),
            ("shutdown_timeout", shutdown_timeout),
        ):
            if not isinstance(number, (int, float)) or isinstance(number, bool) or number < 0:
                raise ValidationError(f"{name} must be non-negative seconds, not {number!r}")
        self.client = client
        self.lanes = lanes_of(queue)
        self._scheduler = LaneScheduler(self.lanes)
        if not isinstance(retry, RetryPolicy):
            raise ValidationError(f"retry must be a RetryPolicy, not {type(retry).__name__}")
        if circuit_breaker is not None and not isinstance(circuit_breaker, CircuitBreaker):
            raise ValidationError(
                f"circuit_breaker must be a CircuitBreaker or None, not {type(circuit_breaker)}"
            )
        self.retry = retry
        self.max_concurrent_sessions = max_concurrent_sessions
        self.max_concurrency = max_concurrency
        self._sessions_mode = sessions
        self._prefetch = session_prefetch
        self._idle_timeout = float(session_idle_timeout)
        self._receive_timeout = float(receive_timeout)
        self._lock_renewal = lock_renewal
        self.shutdown_timeout = float(shutdown_timeout)
        self._system = messaging_system(type(client))
        self.counters = Counters()
        self._breaker = (
            None
            if circuit_breaker is None
            else Breaker(circuit_breaker, on_change=self._breaker_changed)
        )
        # the breaker comes first (no rate-limit token is spent while it is open); `_attempt`
        # applies it itself, which spares every message a middleware layer
        builtins: list[Middleware] = []
        if rate_limit is not None:
            builtins.append(RateLimitMiddleware(RateLimiter(rate_limit)))
        inner: list[Middleware] = list(middleware)
        if handler_timeout is not None:
            inner.append(TimeoutMiddleware(float(handler_timeout)))
        target = endpoint(handler)
        self._chain: Next = compose([*builtins, *inner], target)
        self._health_server = (
            None
            if health_port is None
            else HealthServer(self.health, host=health_host, port=health_port)
        )
        self._state: Literal["new", "running", "stopping", "stopped"] = "new"
        self._stop_event: asyncio.Event | None = None
        self._stopped_event: asyncio.Event | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._renewer: asyncio.Task[None] | None = None
        self._renewing: dict[_Lease, asyncio.Task[None]] = {}  # renewals under way
        self._leases: dict[int, _Lease] = {}  # sessions held
        self._held_messages: dict[int, ReceivedMessage] = {}  # messages being handled
        self._message_leases: dict[int, _Lease] = {}  # ... those the renewal task renewed
        self._renew_tick = 1.0
        self._renew_soon = asyncio.Event()
        self._lock_estimate = 0.0  # seconds a message lock lasts (from the first receive)
        self._held: dict[int, SessionClient] = {}
        self._ready_sessions: list[tuple[Lane, SessionClient]] = []
        self._buffer: deque[tuple[Lane, ReceivedMessage]] = deque()
        self._busy = 0
        self._refilling = False
        #: Message workers waiting for the receive under way; after it, as many are woken as
        #: it brought messages, one of them to receive next (not all: a wake-up for nothing
        #: is a task switch per worker and receive).
        self._parked: deque[asyncio.Future[None]] = deque()
        self._in_flight = 0
        self._last_error: str | None = None
        self._stop_task: asyncio.Task[None] | None = None
        self._release = False  # the client's capabilities.release, read at start
        self._receive_failing = False  # the last receive or accept failed (not ready)
        self._stopping = False

    def __repr__(self) -> str:
        queues = ", ".join(str(lane.queue) for lane in self.lanes)
        return f"Processor(queues=[{queues}], state={self._state!r})"

    # -- lifecycle -------------------------------------------------------------------------

    @property
    def running(self) -> bool:
        return self._state == "running"

    async def start(self) -> None:
        """Start receiving in the background. Raises `ValidationError` if already used."""
        if self._state != "new":
            raise ValidationError(f"this processor was already started (it is {self._state})")
        self._stop_event = asyncio.Event()
        self._stopped_event = asyncio.Event()
        self._state = "running"
        try:
            sessions = await self._detect_sessions()
        except BaseException:
            for _, session in self._ready_sessions:
                await self._close_session(session)
            self._ready_sessions.clear()
            self._state = "stopped"
            self._stopped_event.set()
            raise
        self._sessions_mode = sessions
        self._release = self.client.capabilities.release
        if sessions:
            workers = [self._session_worker() for _ in range(self.max_concurrent_sessions)]
        else:
            workers = [self._message_worker() for _ in range(self.max_concurrency)]
        self._tasks = [asyncio.create_task(w) for w in workers]
        if self._lock_renewal and not self.client.capabilities.lock_renewal:
            _log.info("the adapter cannot renew locks: handlers must finish within the lock")
            self._lock_renewal = False
        if self._lock_renewal:
            self._renewer = asyncio.create_task(self._renew_loop())
        if self._health_server is not None:
            await self._health_server.start()
        _log.info(
            "processor started on %s (%s)",
            ", ".join(str(lane.queue) for lane in self.lanes),
            "sessions" if sessions else "messages",
        )

    async def stop(self, timeout: float | None = None) -> None:
        """Stop gracefully: start no new receive, let handlers in flight, and those of what
        receives already under way bring (they end within ``receive_timeout``), finish within
        ``timeout`` seconds (default ``shutdown_timeout``; then they are cancelled and their
        messages abandoned), release sessions."""
        if self._state == "new":
            self._state = "stopped"
            return
        assert self._stop_event is not None
        assert self._stopped_event is not None
        if self._state != "running":
            await self._stopped_event.wait()
            return
        self._state = "stopping"
        self._stopping = True
        self._stop_event.set()
        self._unpark(len(self._parked))  # they see the stop (or park for the last receive)
        if self._breaker is not None:
            self._breaker.wake()
        deadline = self.shutdown_timeout if timeout is None else float(timeout)
        if self._tasks:
            _, pending = await asyncio.wait(self._tasks, timeout=deadline)
            for task in pending:
                task.cancel()
            if pending:
                _log.warning("stop: %d handlers did not finish in %ss", len(pending), deadline)
                await asyncio.gather(*pending, return_exceptions=True)
        await self._give_back_buffered()
        for _, session in self._ready_sessions:
            await self._close_session(session)
        self._ready_sessions.clear()
        if self._renewer is not None:
            self._renewer.cancel()
            renewals = list(self._renewing.values())
            for renewal in renewals:
                renewal.cancel()
            await asyncio.gather(self._renewer, *renewals, return_exceptions=True)
        if self._health_server is not None:
            await self._health_server.stop()
        self._state = "stopped"
        self._stopped_event.set()
        _log.info("processor stopped (%s)", self.counters)

    async def run(self) -> None:
        """Start, then process until `stop` is called or the process gets SIGTERM/SIGINT."""
        await self.start()
        loop = asyncio.get_running_loop()
        installed: list[signal.Signals] = []
        for sig in (signal.SIGTERM, signal.SIGINT):
            try:
                loop.add_signal_handler(sig, self._on_signal, sig)
                installed.append(sig)
            except (NotImplementedError, RuntimeError, ValueError):  # not the main thread
                pass
        try:
            assert self._stop_event is not None
            await self._stop_event.wait()
            if self._stop_task is not None:
                await self._stop_task
            await self.stop()
        finally:
            for sig in installed:
                loop.remove_signal_handler(sig)

    def _on_signal(self, sig: signal.Signals) -> None:
        _log.info("received %s: stopping", sig.name)
        if self._stop_task is None:
            self._stop_task = asyncio.get_running_loop().create_task(self.stop())

    # -- health ----------------------------------------------------------------------------

    def health(self) -> Health:
        """What the processor is doing right now."""
        breaker = "closed" if self._breaker is None else self._breaker.name
        running = self._state == "running"
        return Health(
            running=running,
            ready=running and breaker != "open" and not self._receive_failing,
            in_flight=self._in_flight,
            sessions=tuple(s.session_id for s in self._held.values()),
            breaker=breaker,
            last_error=self._last_error,
            counters={
                name: getattr(self.counters, name) for name in self.counters.__dataclass_fields__
            },
        )

    @property
    def health_port(self) -> int | None:
        """The port of the health endpoint (when ``health_port`` was given)."""
        return None if self._health_server is None else self._health_server.port

    def _breaker_changed(self, state: str) -> None:
        _log.warning("circuit breaker %s", state.replace("_", "-"))
        if enabled():
            instruments().breaker_state.set(STATE_VALUES[state], {SYSTEM: self._system})

    def _error(self, text: str, error: BaseException) -> None:
        self._last_error = f"{text}: {describe_error(error)}"

    # -- waiting that ends when the processor stops ---------------------------------------

    async def _receiving(self, awaitable: Awaitable[_T]) -> _T:
        """A receive or accept: cut short by a stop where the adapter takes nothing with a
        cancelled one (``capabilities.release``); elsewhere left to run out (it waits
        ``receive_timeout`` at most), and what it brings is handled."""
        if self._release:
            return await self._until_stopped(awaitable)
        return await awaitable

    async def _until_stopped(self, awaitable: Awaitable[_T]) -> _T:
        """Await ``awaitable`` (a wait that takes nothing, or a cancel-safe receive) unless
        the processor stops first: then it is cancelled and `_Stopped` raised."""
        assert self._stop_event is not None
        if self._stop_event.is_set():
            if isinstance(awaitable, Coroutine):
                awaitable.close()  # never started
            raise _Stopped
        work = asyncio.ensure_future(awaitable)
        stop = asyncio.ensure_future(self._stop_event.wait())
        try:
            await asyncio.wait((work, stop), return_when=asyncio.FIRST_COMPLETED)
        finally:
            stop.cancel()
        if work.done():
            return work.result()
        work.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await work
        raise _Stopped

    async def _pause(self, seconds: float) -> bool:
        """Sleep ``seconds`` unless stopped first; returns False if stopped."""
        assert self._stop_event is not None
        if seconds <= 0:
            return not self._stop_event.is_set()
        try:
            async with asyncio.timeout(seconds):
                await self._stop_event.wait()
        except TimeoutError:
            return True
        return False

    # -- session queues ----------------------------------------------------------------------

    async def _detect_sessions(self) -> bool:
        if self._sessions_mode is not None:
            return self._sessions_mode
        modes: set[bool] = set()
        for lane in self.lanes:
            try:
                session = await self.client.accept_session(lane.queue, timeout=0)
            except (ValidationError, UnsupportedOperation):
                modes.add(False)
                continue
            modes.add(True)
            if session is not None:
                self._ready_sessions.append((lane, session))
        if len(modes) > 1:
            raise ValidationError("the lanes of one processor must all have sessions or none")
        return modes.pop()

    async def _accept(self) -> tuple[Lane, SessionClient] | None:
        if self._ready_sessions:
            return self._ready_sessions.pop(0)
        order = self._scheduler.order()
        for lane in order:
            session = await self.client.accept_session(lane.queue, timeout=0)
            if session is not None:
                return lane, session
        lane = order[0]
        wait = self._receive_timeout if len(self.lanes) == 1 else _LANE_POLL
        session = await self._receiving(self.client.accept_session(lane.queue, timeout=wait))
        return None if session is None else (lane, session)

    async def _session_worker(self) -> None:
        failures = 0
        assert self._stop_event is not None
        while not self._stop_event.is_set():
            try:
                if self._breaker is not None and not self._breaker.receiving():
                    await self._until_stopped(self._breaker.wait_receiving())
                accepted = await self._accept()
            except _Stopped:
                return
            except QueueError as error:
                failures += 1
                if not await self._receive_failed("accept_session", error, failures):
                    return
                continue
            failures = 0
            self._receive_failing = False
            if accepted is None:
                continue
            lane, session = accepted
            await self._hold(lane, session)

    async def _hold(self, lane: Lane, session: SessionClient) -> None:
        """Handle the session's messages in order until it is drained or lost; release it."""
        key = id(session)
        self._held[key] = session
        lease = None
        if self._lock_renewal:
            lease = self._session_lease(session)
        pending: deque[ReceivedMessage] = deque()
        try:
            await self._drain(lane, session, pending, lease)
        except (SessionLockLost, MessageLockLost) as error:
            self._lock_lost(lease, f"session {session.session_id!r}", error)
        except QueueError as error:
            self._error(f"session {session.session_id!r}", error)
            _log.warning("session %r failed: %s", session.session_id, describe_error(error))
        finally:
            self._held.pop(key, None)
            if lease is not None:
                self._leases.pop(id(lease), None)
            if pending:  # received ahead, never started: back uncounted (lock lost or not)
                await self._give_back(session, lane, list(pending))
            await self._close_session(session)

    async def _drain(
        self,
        lane: Lane,
        session: SessionClient,
        pending: deque[ReceivedMessage],
        lease: _Lease | None,
    ) -> None:
        """Handle the session's messages one by one, in order. Ahead of the one in hand only
        where they can go back uncounted (``capabilities.release``); elsewhere the next is
        received once the one before is settled, and handled whatever happens meanwhile."""
        assert self._stop_event is not None
        stop, breaker = self._stop_event, self._breaker
        ahead = self._prefetch if self._release else 1
        while not stop.is_set():
            if not pending:
                if breaker is not None and not breaker.receiving():
                    return  # release it; the worker waits for the breaker before accepting
                try:
                    batch = await self._next_messages(session, ahead)
                except _Stopped:
                    return
                if not batch:
                    return  # drained: release it, take the next session
                self.counters.received += len(batch)
                pending.extend(batch)
            message = pending.popleft()
            outcome = await self._process(lane, message, session, lease)
            if outcome == "lost":
                return  # the session lock is gone (what is pending goes back if it can)
            if outcome == "retry" and pending:
                # it comes back ahead of later messages, which this worker holds: take it again
                again = await session.receive_message(timeout=0)
                if again is not None:
                    self.counters.received += 1
                    if again.message_id == message.message_id:
                        pending.appendleft(again)  # before anything later of the session
                    else:
                        pending.append(again)

    async def _next_messages(self, session: SessionClient, count: int) -> list[ReceivedMessage]:
        """Up to ``count`` of the session's next messages; with ``session_idle_timeout``
        waited for, cut short by a stop (`_Stopped`) where that is safe, else in slices of at
        most ``receive_timeout`` so that a stop is seen between them."""
        idle = self._idle_timeout
        if not idle:
            return await session.receive_messages(max_messages=count, timeout=0)
        if self._release:
            receive = session.receive_messages(max_messages=count, timeout=idle)
            return await self._until_stopped(receive)
        assert self._stop_event is not None
        loop = asyncio.get_running_loop()
        deadline = loop.time() + idle
        while True:
            left = deadline - loop.time()
            wait = min(left, self._receive_timeout) if self._receive_timeout else left
            batch = await session.receive_messages(max_messages=count, timeout=max(wait, 0.0))
            if batch or left <= wait or self._stop_event.is_set():
                return batch

    async def _close_session(self, session: SessionClient) -> None:
        try:
            await session.close()
        except QueueError as error:
            _log.debug("closing session %r: %s", session.session_id, describe_error(error))

    # -- queues without sessions ------------------------------------------------------------

    async def _message_worker(self) -> None:
        assert self._stop_event is not None
        stop, buffer, held = self._stop_event, self._buffer, self._held_messages
        failures = 0
        while True:
            if buffer and not (self._stopping and self._release):
                # handled even when stopping, unless it can go back uncounted (end of stop)
                lane, message = buffer.popleft()
                key = id(message)
                leases = self._message_leases
                if leases and (lease := leases.get(key)) is not None and lease.lost:
                    del held[key], leases[key]  # its lock lapsed while it waited: not ours
                    continue
                self._busy += 1
                try:
                    if enabled():
                        await self._traced(lane, message, None, None)
                    else:
                        await self._attempt(lane, message, None, None, False)
                finally:
                    self._busy -= 1
                    del held[key]
                    if self._message_leases:
                        self._message_leases.pop(key, None)
                continue
            if self._refilling:  # a receive under way (also when stopping): it may bring work
                parked = asyncio.get_running_loop().create_future()
                self._parked.append(parked)
                try:
                    await parked
                finally:
                    if not parked.done():  # cancelled: not parked any more
                        self._parked.remove(parked)
                continue
            if stop.is_set():
                return
            self._refilling = True
            try:
                await self._refill()
                failures = 0
                self._receive_failing = False
            except _Stopped:
                pass
            except QueueError as error:
                failures += 1
                if not await self._receive_failed("receive", error, failures):
                    return
            finally:
                self._refilling = False
                # one for each message but the refiller's own, and one to receive next (no
                # free worker waits for a receive that nobody makes); stopping, all of them
                self._unpark(len(self._parked) if stop.is_set() else len(buffer))

    def _unpark(self, count: int) -> None:
        parked = self._parked
        for _ in range(min(count, len(parked))):
            parked.popleft().set_result(None)

    async def _refill(self) -> None:
        """Receive at most the free capacity, and where what is not started goes back
        uncounted (``capabilities.release``) and locks are renewed, as much again ahead of
        it (at most ``2 * max_concurrency`` held, their locks renewed while they wait): a
        receive then brings about as many messages as there are workers, not only those free
        at that moment.

        Elsewhere what it brings is handled by the free workers it was received for, also when
        the processor stops meanwhile (see `_receiving`)."""
        breaker = self._breaker
        if breaker is not None and breaker.state.state != "closed":
            await self._until_stopped(breaker.wait_receiving())
        ahead = self.max_concurrency if self._release and self._lock_renewal else 0
        room = self.max_concurrency + ahead - self._busy - len(self._buffer)
        if breaker is not None and breaker.state.state != "closed":
            room = min(room, breaker.config.half_open_max_calls)
        if room <= 0:
            return
        client = self.client
        order = self._scheduler.order()
        for lane in order:
            batch = await client.receive_messages(lane.queue, max_messages=room, timeout=0)
            if batch:
                break
        else:
            lane = order[0]
            wait = self._receive_timeout if len(self.lanes) == 1 else _LANE_POLL
            receive = client.receive_messages(lane.queue, max_messages=room, timeout=wait)
            batch = await self._receiving(receive)
        if batch:
            self.counters.received += len(batch)
            self._buffer.extend([(lane, m) for m in batch])
            held = self._held_messages  # the renewal task finds them here until settled
            for message in batch:
                held[id(message)] = message
            until = batch[0].locked_until_timestamp
            if until is not None and self._lock_estimate == 0:
                self._lock_estimate = duration = until - time.time()
                self._set_renew_tick(duration)

    async def _give_back_buffered(self) -> None:
        """Messages received for free workers that none started (a stop on an adapter with
        ``capabilities.release``, or workers cancelled when the stop ran out of time)."""
        buffer = self._buffer
        for _, message in buffer:
            self._held_messages.pop(id(message), None)
        while buffer:
            lane = buffer[0][0]
            batch = [m for ln, m in buffer if ln is lane]
            self._buffer = buffer = deque(item for item in buffer if item[0] is not lane)
            await self._give_back(self.client, lane, batch)

    async def _give_back(
        self, settler: SessionClient | QueueClient, lane: Lane, messages: list[ReceivedMessage]
    ) -> None:
        """Release messages no handler started (uncounted where ``capabilities.release``); one
        that cannot go back comes back when its lock runs out."""
        try:
            await settler.release_messages(messages)
        except QueueError as error:
            _log.info(
                "giving back %d unstarted messages of %s: %s",
                len(messages),
                lane.queue,
                describe_error(error),
            )
        else:
            self.counters.released += len(messages)

    async def _receive_failed(self, what: str, error: QueueError, failures: int) -> bool:
        """Log a failed receive/accept and pause (longer each time); False: the worker ends
        (the processor stops, or the client was closed under it)."""
        if isinstance(error, ClientClosed):
            self._fatal(error)
            return False
        self.counters.receive_errors += 1
        self._receive_failing = True
        self._error(f"{what} failed", error)
        _log.warning("%s failed (%d in a row): %s", what, failures, describe_error(error))
        return await self._pause(_retry_pause(failures))

    def _fatal(self, error: QueueError) -> None:
        self._error("client closed", error)
        _log.error("the client was closed under the processor: stopping")
        if self._stop_task is None and self._state == "running":
            self._stop_task = asyncio.get_running_loop().create_task(self.stop(0))

    # -- one message --------------------------------------------------------------------------

    def _process(
        self,
        lane: Lane,
        message: ReceivedMessage,
        session: SessionClient | None,
        lease: _Lease | None,
    ) -> Awaitable[_Outcome]:
        """Run the chain on ``message`` and settle it; never raises a handler's error.

        Without telemetry this is `_attempt` itself (no extra coroutine on the hot path).
        """
        if enabled():
            return self._traced(lane, message, session, lease)
        return self._attempt(lane, message, session, lease, False)

    async def _traced(
        self,
        lane: Lane,
        message: ReceivedMessage,
        session: SessionClient | None,
        lease: _Lease | None,
    ) -> _Outcome:
        queue = str(lane.queue)
        with process_span(self._system, queue, message, message.delivery_count):
            if not metering():
                return await self._attempt(lane, message, session, lease, True)
            tel = instruments()
            labels = {SYSTEM: self._system, DESTINATION_NAME: queue}
            tel.in_flight.add(1, labels)
            start = time.perf_counter()
            try:
                return await self._attempt(lane, message, session, lease, True)
            finally:
                tel.in_flight.add(-1, labels)
                tel.duration.record(time.perf_counter() - start, labels)

    async def _attempt(
        self,
        lane: Lane,
        message: ReceivedMessage,
        session: SessionClient | None,
        lease: _Lease | None,
        traced: bool,
    ) -> _Outcome:
        settler: SessionClient | QueueClient = self.client if session is None else session
        if self._stopping and self._release:  # taken just as the stop came: not started
            await self._give_back(settler, lane, [message])
            return "stopped"
        attempt = message.delivery_count
        context = MessageContext(message, lane.queue, attempt, session)
        breaker, started = self._breaker, -1.0  # the chain's first step (-1: not admitted)
        self._in_flight += 1
        try:
            try:
                if breaker is not None:
                    if breaker.state.state != "closed":
                        await breaker.admit()
                    started = breaker.started()
                await self._chain(context)
            except _Stopped:  # the breaker held it back until the stop: nothing ran
                await self._give_back(settler, lane, [message])
                return "stopped"
            except asyncio.CancelledError as cancelled:
                if breaker is not None and started >= 0:
                    breaker.finished(cancelled, started)
                # stop() ran out of time: give the message back, then let the task end
                await asyncio.shield(self._settle(settler, lane, message, lease, "abandon"))
                raise
            except Exception as error:
                if breaker is not None and started >= 0:
                    breaker.finished(error, started)
                if traced:
                    record_failure(error)
                return await self._failed(settler, lane, message, lease, error, attempt)
            if breaker is not None and not breaker.quiet:
                breaker.finished(None, started)
            if lease is None and self._message_leases:
                lease = self._message_leases.get(id(message))
            if lease is not None and lease.lost:
                return self._lost_at_settle(lease, message, lane)
            try:
                await settler.complete_message(message)
            except (MessageLockLost, SessionLockLost) as lost:
                self._lock_lost(lease, f"message {message.message_id!r}", lost, message)
                return "lost"
            except QueueError as failure:
                self._settle_failed(message, lane, "complete", failure)
                return "done"
            self.counters.completed += 1
            return "done"
        finally:
            self._in_flight -= 1

    async def _failed(
        self,
        settler: SessionClient | QueueClient,
        lane: Lane,
        message: ReceivedMessage,
        lease: _Lease | None,
        error: Exception,
        attempt: int,
    ) -> _Outcome:
        self.counters.failures += 1
        self._error(f"handler failed on {message.message_id}", error)
        decision = verdict(self.retry, error, attempt)
        ids = _ids(message, lane.queue)
        if decision.action == "dead_letter":
            _log.warning(
                "dead-lettering message %s (session %s, attempt %d): %s",
                message.message_id,
                message.session_id,
                attempt,
                decision.description,
                extra={**ids, "reason": decision.reason},
            )
            return await self._settle(
                settler,
                lane,
                message,
                lease,
                "dead_letter",
                reason=decision.reason,
                description=decision.description,
            )
        self.counters.retries += 1
        if enabled():
            instruments().retries.add(1, {SYSTEM: self._system})
        _log.info(
            "message %s (session %s) failed attempt %d of %d, retrying in %.2fs: %s",
            message.message_id,
            message.session_id,
            attempt,
            self.retry.max_attempts,
            decision.delay,
            describe_error(error),
            extra=ids,
        )
        await self._pause(decision.delay)  # the lock is renewed meanwhile; stop cuts it short
        outcome = await self._settle(settler, lane, message, lease, "abandon")
        return "retry" if outcome == "done" else outcome

    async def _settle(
        self,
        settler: SessionClient | QueueClient,
        lane: Lane,
        message: ReceivedMessage,
        lease: _Lease | None,
        action: Literal["abandon", "dead_letter"],
        *,
        reason: str | None = None,
        description: str | None = None,
    ) -> _Outcome:
        if lease is None and self._message_leases:
            lease = self._message_leases.get(id(message))
        if lease is not None and lease.lost:
            return self._lost_at_settle(lease, message, lane)
        try:
            if action == "abandon":
                await settler.abandon_message(message)
                self.counters.abandoned += 1
            else:
                await settler.dead_letter_message(message, reason=reason, description=description)
                self.counters.dead_lettered += 1
        except (MessageLockLost, SessionLockLost) as lost:
            self._lock_lost(lease, f"message {message.message_id!r}", lost, message)
            return "lost"
        except QueueError as failure:
            self._settle_failed(message, lane, action, failure)
        return "done"

    def _settle_failed(
        self, message: ReceivedMessage, lane: Lane, action: str, error: QueueError
    ) -> None:
        # the outcome may be unknown: the lock runs out and the message comes back if not
        self.counters.settle_errors += 1
        self._error(f"{action} of {message.message_id} failed", error)
        _log.warning(
            "%s of message %s failed (it is redelivered when its lock runs out): %s",
            action,
            message.message_id,
            describe_error(error),
            extra=_ids(message, lane.queue),
        )

    def _lost_at_settle(self, lease: _Lease, message: ReceivedMessage, lane: Lane) -> _Outcome:
        _log.warning(
            "not settling message %s: its lock was lost while the handler ran",
            message.message_id,
            extra=_ids(message, lane.queue),
        )
        return "lost"

    # -- lock renewal --------------------------------------------------------------------------

    def _session_lease(self, session: SessionClient) -> _Lease:
        until = session.locked_until.timestamp()
        duration = until - time.time()
        lease = _Lease(None, session, until, duration * _RENEW_AHEAD)
        self._leases[id(lease)] = lease
        if duration * _RENEW_TICK < self._renew_tick:
            self._set_renew_tick(duration)
        return lease

    def _set_renew_tick(self, lock_duration: float) -> None:
        """Look at held locks four times per ``lock_duration`` (from now on, not only after
        the current, longer, pause)."""
        tick = max(lock_duration * _RENEW_TICK, 0.01)
        if tick < self._renew_tick:
            self._renew_tick = tick
            self._renew_soon.set()

    async def _renew_loop(self) -> None:
        """Renew each held lock ``renew_ahead`` before it lapses: it wakes at the next such
        moment (looking at least every tick, for locks taken meanwhile), and each renewal runs
        on its own, so a slow one delays no other."""
        renewing = self._renewing
        pause = self._renew_tick
        while True:
            try:
                async with asyncio.timeout(pause):
                    await self._renew_soon.wait()
            except TimeoutError:
                pass
            self._renew_soon.clear()
            now = time.time()
            pause = self._renew_tick
            due: list[_Lease] = []
            for lease in self._leases.values():
                if not lease.lost and lease not in renewing:
                    if (left := lease.locked_until - now - lease.renew_ahead) <= 0:
                        due.append(lease)
                    elif left < pause:
                        pause = left
            for key, message in list(self._held_messages.items()):
                held = self._message_leases.get(key)
                if held is None:
                    until = message.locked_until_timestamp
                    if until is None:
                        continue
                    held = _Lease(message, None, until, self._lock_estimate * _RENEW_AHEAD)
                if not held.lost and held not in renewing:
                    if (left := held.locked_until - now - held.renew_ahead) <= 0:
                        self._message_leases[key] = held
                        due.append(held)
                    elif left < pause:
                        pause = left
            pause = max(pause, 0.01)
            for lease in due:
                renewing[lease] = task = asyncio.create_task(self._renew(lease))
                task.add_done_callback(functools.partial(self._renewed, lease))

    def _renewed(self, lease: _Lease, _: object) -> None:
        self._renewing.pop(lease, None)

    async def _renew(self, lease: _Lease) -> None:
        what = (
            f"message {lease.message.message_id!r}"
            if lease.message is not None
            else f"session {lease.session.session_id!r}"  # type: ignore[union-attr]
        )
        asked = time.time()
        try:
            if lease.message is not None:
                until = await self.client.renew_message_lock(lease.message)
            else:
                assert lease.session is not None
                until = await lease.session.renew_session_lock()
        except (MessageLockLost, SessionLockLost) as error:
            message = lease.message
            still_held = (
                id(lease) in self._leases
                if message is None
                else self._message_leases.get(id(message)) is lease
            )
            if still_held:  # not settled meanwhile
                self._lock_lost(lease, what, error)
            return
        except QueueError as error:
            self._error(f"renewing the lock of {what}", error)
            _log.warning("renewing the lock of %s failed: %s", what, describe_error(error))
            return
        lease.locked_until = until.timestamp()
        # the lock's whole duration, as this renewal shows it: a lock first seen short (its
        # receive or accept was slow) is renewed ahead by the full margin from now on
        duration = lease.locked_until - asked
        if duration * _RENEW_AHEAD > lease.renew_ahead:
            lease.renew_ahead = duration * _RENEW_AHEAD
            if lease.message is not None:
                self._lock_estimate = max(self._lock_estimate, duration)
        self.counters.lock_renewals += 1
        if enabled():
            instruments().lock_renewals.add(
                1, {SYSTEM: self._system, "queue_runtime.outcome": "renewed"}
            )

    def _lock_lost(
        self,
        lease: _Lease | None,
        what: str,
        error: QueueError,
        message: ReceivedMessage | None = None,
    ) -> None:
        if lease is not None:
            if lease.lost:
                return
            lease.lost = True
            message = message or lease.message
        self.counters.locks_lost += 1
        self._error(f"lock of {what} lost", error)
        extra: dict[str, object] = {}
        if message is not None:
            extra = {"message_id": message.message_id, "session_id": message.session_id}
        elif lease is not None and lease.session is not None:
            extra = {"session_id": lease.session.session_id}
        _log.warning("lock of %s lost: %s", what, describe_error(error), extra=extra)
        if enabled():
            instruments().lock_renewals.add(
                1, {SYSTEM: self._system, "queue_runtime.outcome": "lost"}
            )


def _retry_pause(failures: int) -> float:
    first, longest = _ERROR_BACKOFF
    return float(min(longest, first * 2 ** min(failures - 1, 20)))
