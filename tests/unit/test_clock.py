"""Clocks and time conversions."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

import queue_runtime as qr
from queue_runtime._arguments import timeout_seconds
from queue_runtime._clock import to_seconds


def test_manual_clock_advances_and_notifies() -> None:
    clock = qr.ManualClock(datetime(2030, 1, 1, tzinfo=UTC))
    seen: list[float] = []
    unsubscribe = clock.subscribe(lambda: seen.append(clock.now()))
    clock.advance(timedelta(seconds=5))
    clock.advance(1.5)
    unsubscribe()
    clock.advance(1)
    start = datetime(2030, 1, 1, tzinfo=UTC).timestamp()
    assert seen == [start + 5, start + 6.5]
    with pytest.raises(qr.ValidationError):
        clock.advance(-1)


def test_to_seconds() -> None:
    assert to_seconds(timedelta(milliseconds=1500)) == 1.5 and to_seconds(2) == 2.0
    with pytest.raises(qr.ValidationError):
        to_seconds("3")  # type: ignore[arg-type]
    with pytest.raises(qr.ValidationError):
        to_seconds(True)


def test_timeout_seconds() -> None:
    assert timeout_seconds(None, 7.0) == 7.0
    assert timeout_seconds(0, 7.0) == 0 and timeout_seconds(timedelta(seconds=2), 7.0) == 2
    for bad in (-1, "1", float("nan"), timedelta(seconds=-1)):
        with pytest.raises(qr.ValidationError):
            timeout_seconds(bad, 7.0)  # type: ignore[arg-type]
