"""Clocks: the system's, and a manual one so tests of lock expiry and TTL never sleep.

Time is seconds since the Unix epoch as a float. Waiting (receive timeouts) always uses the
event loop's real time; what a clock decides is *when locks, TTLs and schedules fall due*.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Protocol, runtime_checkable

from ._errors import ValidationError

__all__ = ["Clock", "ManualClock", "SystemClock", "to_datetime", "to_seconds"]


@runtime_checkable
class Clock(Protocol):
    """Where an engine reads the current time."""

    def now(self) -> float:
        """Seconds since the Unix epoch."""
        ...


class SystemClock:
    """The wall clock."""

    __slots__ = ()

    #: ``time.time`` itself: the clock is read on every operation.
    now = staticmethod(time.time)

    def __repr__(self) -> str:
        return "SystemClock()"


class ManualClock:
    """A clock that moves only when told to; ``advance`` wakes whatever waits on due times."""

    def __init__(self, start: datetime | float | None = None) -> None:
        if start is None:
            self._now = time.time()
        elif isinstance(start, datetime):
            self._now = start.timestamp()
        else:
            self._now = float(start)
        self._listeners: list[Callable[[], None]] = []

    def now(self) -> float:
        return self._now

    def advance(self, delta: float | timedelta) -> None:
        """Move forward by ``delta`` (seconds or timedelta) and notify listeners."""
        seconds = to_seconds(delta)
        if seconds < 0:
            raise ValidationError("a clock cannot go backwards")
        self._now += seconds
        for listener in list(self._listeners):
            listener()

    def subscribe(self, listener: Callable[[], None]) -> Callable[[], None]:
        """Call ``listener`` after every ``advance``; returns a function that unsubscribes."""
        self._listeners.append(listener)
        return lambda: self._listeners.remove(listener)

    def __repr__(self) -> str:
        return f"ManualClock({to_datetime(self._now).isoformat()})"


def to_seconds(value: float | timedelta) -> float:
    """Seconds from a finite float/int or a timedelta; anything else (NaN and infinities
    included) is a `ValidationError`."""
    if isinstance(value, timedelta):
        return value.total_seconds()
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        seconds = float(value)
        if math.isfinite(seconds):
            return seconds
        raise ValidationError(f"a duration must be a finite number of seconds, not {value!r}")
    raise ValidationError(f"expected seconds or a timedelta, not {type(value).__name__}")


def to_datetime(timestamp: float) -> datetime:
    """A UTC datetime from epoch seconds."""
    return datetime.fromtimestamp(timestamp, UTC)
