"""Event-driven waiting: futures parked under a key, woken by a notification (no polling)."""

from __future__ import annotations

import asyncio
from collections.abc import Hashable

__all__ = ["Waiters"]


class Waiters:
    """Callers park on a key until ``notify(key)`` or ``notify_all()``, or until a timeout."""

    __slots__ = ("_parked",)

    def __init__(self) -> None:
        self._parked: dict[Hashable, list[asyncio.Future[None]]] = {}

    def __bool__(self) -> bool:
        return bool(self._parked)

    async def wait(self, key: Hashable, timeout: float) -> None:
        """Return when notified or after ``timeout`` seconds, whichever comes first."""
        if timeout <= 0:
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        parked = self._parked.setdefault(key, [])
        parked.append(future)
        try:
            async with asyncio.timeout(timeout):
                await future
        except TimeoutError:
            pass
        finally:
            if not future.done():
                future.cancel()
            others = self._parked.get(key)
            if others is not None:
                if future in others:
                    others.remove(future)
                if not others:
                    del self._parked[key]

    def notify(self, key: Hashable) -> None:
        parked = self._parked.pop(key, None)
        if parked:
            for future in parked:
                if not future.done():
                    future.set_result(None)

    def notify_all(self) -> None:
        for key in list(self._parked):
            self.notify(key)
