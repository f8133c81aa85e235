"""Group commit: settlements that several tasks make at about the same moment go to the
database together, as one statement.

A caller that finds nothing in flight goes at once, with the callers that are ready in the
same turn of the event loop (it waits for no one: the statement starts as soon as the loop
gets to it). Callers that arrive while a statement is in flight join the next one, which goes
as soon as that returns. Each caller learns its own outcome: a lock lost is that caller's
error alone.
"""

from __future__ import annotations

import asyncio
import copy
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

__all__ = ["Coalescer"]

K = TypeVar("K")


class Coalescer(Generic[K]):
    """Runs ``one(item)`` for a lone caller and ``many(items)`` (one outcome per item: None
    or the error for that item) for those that gathered meanwhile."""

    def __init__(
        self,
        one: Callable[[K], Awaitable[None]],
        many: Callable[[list[K]], Awaitable[list[BaseException | None]]],
    ) -> None:
        self._one = one
        self._many = many
        self._gathered: list[tuple[K, asyncio.Future[None]]] = []
        self._busy = False
        self._flush: asyncio.Task[None] | None = None

    async def __call__(self, item: K) -> None:
        if not self._busy:
            # the first: it goes now, with whoever is ready to go in this same turn of the
            # event loop (handlers that a receive fed together end together): one yield, no
            # waiting for anyone
            self._busy = True
            joined = asyncio.get_running_loop().create_future()
            self._gathered.append((item, joined))
            self._start()
            await joined
            return
        joined = asyncio.get_running_loop().create_future()
        entry = (item, joined)
        self._gathered.append(entry)
        try:
            await joined
        except asyncio.CancelledError:
            if entry in self._gathered:  # not taken yet: it is not made either
                self._gathered.remove(entry)
            raise

    def _start(self) -> None:
        self._busy = True
        self._flush = asyncio.get_running_loop().create_task(self._run_gathered())

    async def _run_gathered(self) -> None:
        try:
            while self._gathered:
                batch, self._gathered = self._gathered, []
                items = [item for item, _ in batch]
                try:
                    if len(items) == 1:
                        await self._one(items[0])
                        outcomes: list[BaseException | None] = [None]
                    else:
                        outcomes = await self._many(items)
                except BaseException as error:  # the whole statement failed: everyone's error
                    for _, joined in batch:
                        if not joined.done():
                            joined.set_exception(copy.copy(error))
                    if not isinstance(error, Exception):
                        raise
                    continue
                for (_, joined), outcome in zip(batch, outcomes, strict=True):
                    if joined.done():
                        continue
                    if outcome is None:
                        joined.set_result(None)
                    else:
                        joined.set_exception(outcome)
        finally:
            self._busy = False
            self._flush = None

    async def aclose(self) -> None:
        """Wait for the settlements under way (the client is closing)."""
        if self._flush is not None:
            await asyncio.gather(self._flush, return_exceptions=True)
