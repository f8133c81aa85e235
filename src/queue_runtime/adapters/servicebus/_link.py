"""One call at a time on each SDK sender and receiver, each call bounded; receives that wait
in slices.

The async SDK's handlers are not coroutine-safe (its README says so and asks for a lock):
azure-sdk-for-python issues 36334 and 35618 (concurrent ``send_messages`` on one sender race
in the link's (re)opening: ``'NoneType' object has no attribute 'create_sender_link'``), and,
measured on one receiver, concurrent ``$management`` requests (lock renewals) reuse one
delivery id (a protocol error: the peer ends the connection) and a renewal next to a
settlement can hang. `Link` is that lock (a sender's is taken by its `Outbox` alone, one
transfer at a time), and carries the bound every request passes to the SDK.

A receive that waits for messages would hold its link for the whole wait, and a settlement or
lock renewal of a message that link delivered would wait with it (past the lock's expiry,
perhaps). So `receive` waits in slices of at most `RECEIVE_SLICE` seconds and, between two
slices, lets whoever waits for the link go first.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from types import TracebackType
from typing import Any, Final

from ._connection import withdraw_credit
from ._errors import translate

__all__ = ["MIN_WAIT", "RECEIVE_SLICE", "REQUEST_TIMEOUT", "Link", "receive"]

#: The SDK refuses a wait of 0; ``timeout=0`` becomes this (one round trip to the service).
MIN_WAIT: Final = 0.05
#: Longest one request may wait for the service, the SDK's retries included (the ``timeout``
#: of a send, a lock renewal, a peek, a session's lock or state: without one the SDK waits
#: for ever on a service that went silent, and every call queued behind it on the link with
#: it). The SDK bounds a settlement's wait for its outcome itself, as long.
REQUEST_TIMEOUT = 60.0
#: Longest a waiting receive keeps its link from a settlement, renewal or peek waiting for it.
RECEIVE_SLICE: Final = 0.5


class Link:
    """An SDK sender or receiver (plain or session) and the lock every call on it is made
    under (``async with link:``), with the deliveries it brought that are not settled yet."""

    __slots__ = ("_lock", "_waiting", "handler", "timeout", "unsettled")

    def __init__(self, handler: Any) -> None:
        self.handler = handler
        #: Seconds one request on it may take (`REQUEST_TIMEOUT` when the link was opened).
        self.timeout = REQUEST_TIMEOUT
        self._lock = asyncio.Lock()
        self._waiting = 0
        #: Receipts of this link's deliveries not settled yet (see `busy`).
        self.unsettled: set[Any] = set()

    def __repr__(self) -> str:
        return f"Link(unsettled={len(self.unsettled)}, waiting={self._waiting})"

    async def __aenter__(self) -> None:
        self._waiting += 1
        try:
            await self._lock.acquire()
        finally:
            self._waiting -= 1

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._lock.release()

    @property
    def wanted(self) -> bool:
        """Whether another task waits for this link."""
        return self._waiting > 0

    def busy(self) -> bool:
        """Whether deliveries of this link may still be settled or renewed (not settled, lock
        not lapsed): a receive on another link keeps them from waiting behind it."""
        unsettled = self.unsettled
        if not unsettled:
            return False
        now = time.time()
        for receipt in list(unsettled):
            until = receipt.incoming.locked_until_utc
            if until is None or until.timestamp() <= now:
                unsettled.discard(receipt)
        return bool(unsettled)


async def receive(
    link: Link,
    max_messages: int,
    wait: float,
    subject: str,
    check: Callable[[], None] | None = None,
) -> list[Any]:
    """Up to ``max_messages`` deliveries from ``link`` within ``wait`` seconds (at least one
    round trip), holding the link a slice at a time while others wait for it.

    ``check`` runs before each slice (it raises when the client or session was closed
    meanwhile). A receive that got fewer than it asked for takes its unused link credit
    back (`withdraw_credit`) before it lets go of the link.
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + wait
    receiver = link.handler
    while True:
        async with link:
            while True:
                if check is not None:
                    check()
                budget = min(deadline - loop.time(), RECEIVE_SLICE)
                with translate("receive", subject):
                    incoming: list[Any] = await receiver.receive_messages(
                        max_message_count=max_messages, max_wait_time=max(budget, MIN_WAIT)
                    )
                    done = bool(incoming) or loop.time() >= deadline
                    if done or link.wanted:
                        if len(incoming) < max_messages:
                            await withdraw_credit(receiver)
                        break
        if done:
            return incoming
