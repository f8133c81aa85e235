"""The circuit breaker: pure transitions (`breaker_admit`, `breaker_record`) over an immutable
`BreakerState`, and the small asyncio guard (`Breaker`) the processor waits on."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import timedelta
from typing import Final, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from .._clock import to_seconds
from ._policy import PermanentError

__all__ = [
    "Breaker",
    "BreakerState",
    "CircuitBreaker",
    "Interrupted",
    "breaker_admit",
    "breaker_cancel",
    "breaker_ready_at",
    "breaker_receiving",
    "breaker_record",
]

State = Literal["closed", "open", "half_open"]
#: Gauge values of the states (metrics).
STATE_VALUES: Final[dict[str, int]] = {"closed": 0, "half_open": 1, "open": 2}
_FAILED: Final = 1
_SLOW: Final = 2


class Interrupted(Exception):
    """A wait for the breaker was cut short by `Breaker.wake` (the processor is stopping)."""


class CircuitBreaker(BaseModel):
    """When to stop calling a failing dependency, and how to test that it is back.

    Opens after ``failure_threshold`` consecutive failures, or, when set, when the failure
    rate (``failure_rate_threshold``) or the rate of calls slower than ``slow_call_duration``
    (``slow_call_rate_threshold``) over the last ``window_size`` calls reaches its threshold
    (once ``minimum_calls`` are in the window). Open, it lets nothing through for
    ``recovery_timeout`` seconds; then half-open, it lets ``half_open_max_calls`` probes at a
    time through: ``success_threshold`` successes close it, one failure opens it again.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    failure_threshold: int = Field(default=5, ge=1)
    recovery_timeout: float = Field(default=30.0, ge=0)
    half_open_max_calls: int = Field(default=1, ge=1)
    success_threshold: int = Field(default=1, ge=1)
    failure_rate_threshold: float | None = Field(default=None, gt=0, le=1)
    slow_call_duration: float | None = Field(default=None, gt=0)
    slow_call_rate_threshold: float | None = Field(default=None, gt=0, le=1)
    window_size: int = Field(default=20, ge=1)
    minimum_calls: int = Field(default=10, ge=1)

    @field_validator("recovery_timeout", "slow_call_duration", mode="before")
    @classmethod
    def _seconds(cls, value: object) -> object:
        return to_seconds(value) if isinstance(value, timedelta) else value

    @model_validator(mode="after")
    def _slow_rate_needs_duration(self) -> CircuitBreaker:
        if (self.slow_call_rate_threshold is None) != (self.slow_call_duration is None):
            raise ValueError("slow_call_rate_threshold and slow_call_duration go together")
        return self

    @property
    def uses_window(self) -> bool:
        return self.failure_rate_threshold is not None or self.slow_call_duration is not None


@dataclass(frozen=True, slots=True)
class BreakerState:
    """Where a breaker stands; every transition returns a new one."""

    state: State = "closed"
    consecutive_failures: int = 0
    #: When it last opened (the breaker's clock).
    opened_at: float = 0.0
    #: Probes admitted in half-open and not yet finished.
    probes: int = 0
    probe_successes: int = 0
    #: Outcomes of the last calls (bit 1: failed, bit 2: slow), oldest first.
    window: tuple[int, ...] = ()


_CLOSED: Final = BreakerState()


def _opened(now: float) -> BreakerState:
    return BreakerState(state="open", opened_at=now)


def breaker_ready_at(config: CircuitBreaker, state: BreakerState) -> float | None:
    """When an open breaker turns half-open (``None`` unless open)."""
    return state.opened_at + config.recovery_timeout if state.state == "open" else None


def breaker_admit(
    config: CircuitBreaker, state: BreakerState, now: float
) -> tuple[bool, BreakerState]:
    """Whether a call may go through now, and the state after admitting it."""
    if state.state == "closed":
        return True, state
    if state.state == "open":
        if now < state.opened_at + config.recovery_timeout:
            return False, state
        state = BreakerState(state="half_open", opened_at=state.opened_at)
    if state.probes < config.half_open_max_calls:
        return True, replace(state, probes=state.probes + 1)
    return False, state


def breaker_receiving(config: CircuitBreaker, state: BreakerState, now: float) -> bool:
    """Whether new messages should be taken: not while open, and in half-open only while a
    probe slot is free."""
    return breaker_admit(config, state, now)[0]


def breaker_record(
    config: CircuitBreaker,
    state: BreakerState,
    now: float,
    *,
    failed: bool,
    duration: float = 0.0,
) -> BreakerState:
    """The state after an admitted call finished (``failed``: it raised a transient error)."""
    kind = state.state
    if kind == "half_open":
        if failed:
            return _opened(now)
        successes = state.probe_successes + 1
        if successes >= config.success_threshold:
            return _CLOSED
        return replace(state, probes=max(0, state.probes - 1), probe_successes=successes)
    if kind == "open":
        return state  # a call admitted before it opened: nothing to learn
    if not failed and state.consecutive_failures == 0 and not config.uses_window:
        return state  # the hot path: nothing changes
    consecutive = state.consecutive_failures + 1 if failed else 0
    if consecutive >= config.failure_threshold:
        return _opened(now)
    window = state.window
    if config.uses_window:
        slow = config.slow_call_duration is not None and duration >= config.slow_call_duration
        outcome = (_FAILED if failed else 0) | (_SLOW if slow else 0)
        window = (*window, outcome)[-config.window_size :]
        if len(window) >= config.minimum_calls and _rates_exceeded(config, window):
            return _opened(now)
    return BreakerState(consecutive_failures=consecutive, window=window)


def breaker_cancel(state: BreakerState) -> BreakerState:
    """The state after an admitted call was cancelled before it finished (frees its probe)."""
    if state.state == "half_open" and state.probes:
        return replace(state, probes=state.probes - 1)
    return state


def _rates_exceeded(config: CircuitBreaker, window: tuple[int, ...]) -> bool:
    size = len(window)
    rate = config.failure_rate_threshold
    if rate is not None and sum(1 for o in window if o & _FAILED) / size >= rate:
        return True
    slow = config.slow_call_rate_threshold
    return slow is not None and sum(1 for o in window if o & _SLOW) / size >= slow


class Breaker:
    """A `CircuitBreaker` in use: holds the state, lets callers wait for admission, and tells
    ``on_change`` about every change of state (for health and metrics)."""

    def __init__(
        self,
        config: CircuitBreaker,
        *,
        clock: Callable[[], float] = time.monotonic,
        on_change: Callable[[State], None] | None = None,
    ) -> None:
        self.config = config
        self.state = _CLOSED
        self._clock = clock
        self._on_change = on_change
        self._changed = asyncio.Event()
        self._interrupted = False
        #: Closed with no failures counted and no window: a success changes nothing.
        self.quiet = not config.uses_window

    @property
    def name(self) -> State:
        return self.state.state

    def _set(self, state: BreakerState) -> None:
        old = self.state
        self.state = state
        self.quiet = (
            state.state == "closed"
            and not state.consecutive_failures
            and not self.config.uses_window
        )
        if state.state != old.state or state.probes < old.probes:
            self._changed.set()
            self._changed = asyncio.Event()
            if state.state != old.state and self._on_change is not None:
                self._on_change(state.state)

    def receiving(self) -> bool:
        """Whether new messages should be taken now."""
        return self.state.state == "closed" or breaker_receiving(
            self.config, self.state, self._clock()
        )

    async def wait_receiving(self) -> None:
        """Return once new messages should be taken (at once while closed)."""
        while not self.receiving():
            await self._wait()

    async def admit(self) -> None:
        """Wait until a call may go through (a probe slot while half-open); raises
        `Interrupted` once `wake` was called."""
        while True:
            admitted, state = breaker_admit(self.config, self.state, self._clock())
            self._set(state)
            if admitted:
                return
            await self._wait()

    def wake(self) -> None:
        """End every wait now and refuse further ones (`Interrupted`): the owner stops."""
        self._interrupted = True
        self._changed.set()

    async def _wait(self) -> None:
        if self._interrupted:
            raise Interrupted
        ready = breaker_ready_at(self.config, self.state)
        timeout = None if ready is None else max(0.0, ready - self._clock())
        changed = self._changed
        try:
            async with asyncio.timeout(timeout):
                await changed.wait()
        except TimeoutError:
            pass
        if self._interrupted:
            raise Interrupted

    def record(self, *, failed: bool, duration: float = 0.0) -> None:
        state = self.state
        if not failed and state is _CLOSED and not self.config.uses_window:
            return
        self._set(
            breaker_record(self.config, state, self._clock(), failed=failed, duration=duration)
        )

    def cancel(self) -> None:
        self._set(breaker_cancel(self.state))

    def started(self) -> float:
        """When an admitted call starts (what `finished` needs; 0 when nothing is timed)."""
        return time.monotonic() if self.config.slow_call_duration is not None else 0.0

    def finished(self, error: BaseException | None, started: float) -> None:
        """Record how an admitted call went: a transient failure counts, a permanent one (the
        message's fault, ``PermanentError``) does not, a cancelled call frees its probe."""
        if error is None:
            if not self.quiet:  # closed with nothing to count: the hot path
                self.record(failed=False, duration=time.monotonic() - started if started else 0.0)
        elif isinstance(error, asyncio.CancelledError):
            self.cancel()
        elif isinstance(error, PermanentError):
            self.record(failed=False)
        elif isinstance(error, Exception):
            self.record(failed=True, duration=time.monotonic() - started if started else 0.0)
