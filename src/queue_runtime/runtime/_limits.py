"""Token-bucket rate limiting and weighted lane scheduling, as pure functions plus the small
stateful objects the processor holds."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from pydantic import BaseModel, ConfigDict, Field

from .._arguments import queue_name
from .._errors import ValidationError
from .._names import QueueName

__all__ = [
    "Lane",
    "LaneScheduler",
    "RateLimit",
    "RateLimiter",
    "lane_order",
    "lanes_of",
    "take_token",
]


class RateLimit(BaseModel):
    """At most ``rate`` handler calls per second on average, ``burst`` at once after a lull."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    rate: float = Field(gt=0)
    burst: int = Field(default=1, ge=1)


def take_token(
    limit: RateLimit, tokens: float, updated: float, now: float
) -> tuple[float, float, float]:
    """Take one token from a bucket holding ``tokens`` at ``updated``; returns the seconds to
    wait before the call may start, and the bucket's new ``(tokens, updated)``.

    A caller that must wait reserves its token (the bucket goes negative), so concurrent
    callers queue up one ``1 / rate`` apart instead of all waking at once.
    """
    tokens = min(float(limit.burst), tokens + max(0.0, now - updated) * limit.rate)
    tokens -= 1.0
    wait = 0.0 if tokens >= 0 else -tokens / limit.rate
    return wait, tokens, now


class RateLimiter:
    """A `RateLimit` in use (the event loop's clock unless given one)."""

    def __init__(self, limit: RateLimit, clock: Callable[[], float] = time.monotonic) -> None:
        self.limit = limit
        self._clock = clock
        self._tokens = float(limit.burst)
        self._updated = clock()

    async def acquire(self) -> None:
        wait, self._tokens, self._updated = take_token(
            self.limit, self._tokens, self._updated, self._clock()
        )
        if wait > 0:
            await asyncio.sleep(wait)


@dataclass(frozen=True, slots=True)
class Lane:
    """One queue of a processor over several, with its share of the work when all are busy."""

    queue: QueueName
    weight: int = 1

    def __init__(self, queue: QueueName | str, weight: int = 1) -> None:
        if isinstance(weight, bool) or not isinstance(weight, int) or weight < 1:
            raise ValidationError(f"a lane's weight must be a positive int, not {weight!r}")
        object.__setattr__(self, "queue", queue_name(queue))
        object.__setattr__(self, "weight", weight)


def lanes_of(queue: QueueName | str | Lane | Sequence[QueueName | str | Lane]) -> list[Lane]:
    """Lanes in priority order from what ``Processor`` was given: one queue, or several,
    highest priority first (plain names weigh ``4 ** (lanes after it)``)."""
    items: Sequence[QueueName | str | Lane] = (
        [queue] if isinstance(queue, (str, Lane)) else list(queue)
    )
    if not items:
        raise ValidationError("a processor needs at least one queue")
    count = len(items)
    return [
        item if isinstance(item, Lane) else Lane(item, 4 ** (count - 1 - index))
        for index, item in enumerate(items)
    ]


def lane_order(weights: Sequence[int], credit: list[int]) -> list[int]:
    """Smooth weighted round robin: the lanes to try this round, the chosen one first, then
    the others in priority order. ``credit`` (one int per lane) is updated in place.

    Over ``sum(weights)`` busy rounds lane ``i`` is chosen ``weights[i]`` times, spread out:
    a higher lane goes first most of the time, and a lower one is never starved.
    """
    total = 0
    best = 0
    for index, weight in enumerate(weights):
        credit[index] += weight
        total += weight
        if credit[index] > credit[best]:
            best = index
    credit[best] -= total
    return [best, *(i for i in range(len(weights)) if i != best)]


class LaneScheduler:
    """The processor's lanes and their round-robin credit."""

    def __init__(self, lanes: Sequence[Lane]) -> None:
        self.lanes = list(lanes)
        self._weights = [lane.weight for lane in self.lanes]
        self._credit = [0] * len(self.lanes)

    def order(self) -> list[Lane]:
        if len(self.lanes) == 1:
            return self.lanes
        return [self.lanes[i] for i in lane_order(self._weights, self._credit)]
