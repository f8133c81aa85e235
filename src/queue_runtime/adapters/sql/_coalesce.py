"""Group commit: settlements that several tasks make at about the same moment go to the
database together, as one statement.

A caller's statement starts in the next turn of the event loop, together with every caller
ready by then (it waits for no one: handlers that one receive fed end together). While
`IN_FLIGHT` statements are under way, callers gather and go together as soon as one returns.
Each caller learns its own outcome: a lock lost is that caller's error alone.
"""

from __future__ import annotations

import asyncio
import copy
from collections.abc import Awaitable, Callable
from typing import Final, Generic, TypeVar

__all__ = ["IN_FLIGHT", "Coalescer"]

K = TypeVar("K")

#: Statements under way at once. One more than one: a caller that comes while a statement is
#: under way goes at once with its own (its session's next message waits for it) instead of
#: waiting for that one; beyond two, batches shrink and the database does more statements.
IN_FLIGHT: Final = 2


class Coalescer(Generic[K]):
    """Runs ``one(item)`` for a caller alone and ``many(items)`` (one outcome per item: None
    or the error for that item) for callers that go together."""

    def __init__(
        self,
        one: Callable[[K], Awaitable[None]],
        many: Callable[[list[K]], Awaitable[list[BaseException | None]]],
    ) -> None:
        self._one = one
        self._many = many
        self._gathered: list[tuple[K, asyncio.Future[None]]] = []
        self._running: set[asyncio.Task[None]] = set()
        self._due = False  # a statement will start in the loop's next turn

    async def __call__(self, item: K) -> None:
        joined = asyncio.get_running_loop().create_future()
        entry = (item, joined)
        self._gathered.append(entry)
        self._start()
        try:
            await joined
        except asyncio.CancelledError:
            if entry in self._gathered:  # not taken yet: it is not made either
                self._gathered.remove(entry)
            raise

    def _start(self) -> None:
        if self._due or len(self._running) >= IN_FLIGHT or not self._gathered:
            return
        self._due = True
        task = asyncio.get_running_loop().create_task(self._run())
        self._running.add(task)
        task.add_done_callback(self._ended)

    def _ended(self, task: asyncio.Task[None]) -> None:
        self._running.discard(task)
        self._start()  # those that gathered meanwhile

    async def _run(self) -> None:
        try:
            await asyncio.sleep(0)  # every caller ready in this turn of the loop goes along
        finally:
            self._due = False
        batch, self._gathered = self._gathered, []
        if not batch:
            return
        items = [item for item, _ in batch]
        try:
            if len(items) == 1:
                await self._one(items[0])
                outcomes: list[BaseException | None] = [None]
            else:
                outcomes = await self._many(items)
        except BaseException as error:  # the whole statement failed: every caller's error
            for _, joined in batch:
                if not joined.done():
                    joined.set_exception(copy.copy(error))
            if not isinstance(error, Exception):
                raise
            return
        for (_, joined), outcome in zip(batch, outcomes, strict=True):
            if joined.done():
                continue
            if outcome is None:
                joined.set_result(None)
            else:
                joined.set_exception(outcome)

    async def aclose(self) -> None:
        """Wait for the settlements under way (the client is closing)."""
        while self._running:
            await asyncio.gather(*self._running, return_exceptions=True)
