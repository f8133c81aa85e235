"""`ContractTarget`: how the contract suite reaches one adapter and moves time for it."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import timedelta

from .._clock import ManualClock
from ..engine import QueueEngine
from ..ports import QueueClient

__all__ = ["ContractTarget", "memory_target"]


@dataclass(frozen=True)
class ContractTarget:
    """An adapter under test.

    ``make_client`` returns a new, unopened client each call; every client it makes talks to
    the same broker (the suite opens two to play two processes). ``advance(seconds)`` makes
    that much lock time pass: a manual clock jumps, a real server is waited for.
    """

    name: str
    make_client: Callable[[], QueueClient]
    advance: Callable[[float], Awaitable[None]] = asyncio.sleep
    #: Lock duration the suite gives queues in lock-expiry tests (whole seconds suit SQS).
    short_lock: timedelta = timedelta(seconds=2)
    #: How long the suite waits for a message it expects to be there.
    receive_timeout: float = 5.0
    #: How long the suite waits when it expects *nothing* (keep it short on real servers).
    quiet_timeout: float = 0.5
    #: Free-form notes, e.g. what the target stands in for.
    notes: dict[str, str] = field(default_factory=dict)


def memory_target(*, realtime: bool = False) -> ContractTarget:
    """The in-memory adapter on a manual clock: lock expiry is tested without sleeping.

    ``realtime=True`` runs it on the system clock with one-second locks instead, the way an
    application meets it, so the real-time waiting paths are proven too.
    """
    from ..adapters.memory import InMemoryQueueClient

    engine = QueueEngine()
    if realtime:
        return ContractTarget(
            name="memory-realtime",
            make_client=lambda: InMemoryQueueClient(engine=engine),
            advance=asyncio.sleep,
            short_lock=timedelta(seconds=1),
            receive_timeout=1.0,
            quiet_timeout=0.05,
        )
    clock = ManualClock()

    async def advance(seconds: float) -> None:
        clock.advance(seconds)
        await asyncio.sleep(0)

    return ContractTarget(
        name="memory",
        make_client=lambda: InMemoryQueueClient(clock=clock, engine=engine),
        advance=advance,
        short_lock=timedelta(seconds=30),
        receive_timeout=1.0,
        quiet_timeout=0.0,
    )
