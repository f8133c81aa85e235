"""`SqsSessionClient`: a held session, that is, a FIFO message group leased in this process.

The lease lives in the process-wide registry (`._registry`), so no other `SessionClient` of
the process gets the group while it lasts; SQS itself keeps other processes off the group only
while messages of it are in flight. See ``specs/sqs-adapter.md``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime

from ..._arguments import check_max_messages, timeout_seconds
from ..._errors import SessionLockLost, UnsupportedOperation
from ..._messages import ReceivedMessage
from ...ports import SessionClient, Timeout
from ._queues import QueueInfo
from ._receiving import Receiver
from ._registry import MARGIN, Lease
from ._settlement import Receipt, Settler

__all__ = ["SqsSessionClient"]


class SqsSessionClient(SessionClient):
    """One session (message group) of an SQS FIFO queue, held by this process.

    Its lock lasts the queue's lock duration (its visibility timeout) and is renewed only by
    `renew_session_lock`, which extends the visibility of every message the session holds.
    Its messages are settled only through it (the plain client refuses them).
    """

    def __init__(
        self,
        info: QueueInfo,
        lease: Lease,
        *,
        receiver: Receiver,
        settler: Settler,
        check_open: Callable[[], None],
        default_timeout: float,
        on_close: Callable[[SqsSessionClient], None],
    ) -> None:
        self._info = info
        self._lease = lease
        self._receiver = receiver
        self._settler = settler
        self._check_open = check_open
        self._default_timeout = default_timeout
        self._on_close = on_close
        self._closed = False

    def __repr__(self) -> str:
        return f"SqsSessionClient(queue={str(self._info.name)!r}, session_id={self.session_id!r})"

    @property
    def session_id(self) -> str:
        return self._lease.session_id

    @property
    def locked_until(self) -> datetime:
        return datetime.fromtimestamp(self._lease.until_wall, UTC)

    def _check(self) -> Lease:
        """The lease, if this session may still act; else `SessionLockLost`/`ClientClosed`."""
        if self._closed:
            raise SessionLockLost(f"session {self.session_id!r} was closed")
        self._check_open()
        lease = self._lease
        if not lease.alive(time.monotonic()):
            raise SessionLockLost(f"the lock on session {self.session_id!r} expired")
        return lease

    def _receipt(self, message: ReceivedMessage) -> Receipt:
        return self._settler.receipt(message, self._check())

    async def receive_message(self, *, timeout: Timeout = None) -> ReceivedMessage | None:
        received = await self._receive(1, timeout)
        return received[0] if received else None

    async def receive_messages(
        self, *, max_messages: int = 10, timeout: Timeout = None
    ) -> list[ReceivedMessage]:
        return await self._receive(check_max_messages(max_messages), timeout)

    async def _receive(self, max_messages: int, timeout: Timeout) -> list[ReceivedMessage]:
        self._check()
        wait = timeout_seconds(timeout, self._default_timeout)
        return await self._receiver.receive_session(self._info, self._check, max_messages, wait)

    async def complete_message(self, message: ReceivedMessage) -> None:
        await self._settler.complete(self._receipt(message))

    async def complete_messages(self, messages: Sequence[ReceivedMessage]) -> None:
        """Complete several of the session's messages in as few requests as SQS allows."""
        await self._settler.complete_many(messages, self._check())

    async def abandon_message(self, message: ReceivedMessage) -> None:
        await self._settler.abandon(self._receipt(message))

    async def abandon_messages(self, messages: Sequence[ReceivedMessage]) -> None:
        """Abandon several of the session's messages; they come back first, in order."""
        await self._settler.abandon_many(messages, self._check())

    async def dead_letter_message(
        self,
        message: ReceivedMessage,
        *,
        reason: str | None = None,
        description: str | None = None,
    ) -> None:
        await self._settler.dead_letter(self._receipt(message), reason, description)

    async def renew_session_lock(self) -> datetime:
        lease = self._check()
        info = self._info
        entries = info.state.session_entries(lease)
        start, start_wall = await self._settler.extend(info, info.state, entries)
        seconds = info.settings.lock_seconds
        lease.until = start + seconds - MARGIN
        lease.until_wall = start_wall + seconds - MARGIN
        return datetime.fromtimestamp(lease.until_wall, UTC)

    async def get_state(self) -> bytes | None:
        raise UnsupportedOperation("SQS has no session state (capabilities.session_state)")

    async def set_state(self, state: bytes | None) -> None:
        raise UnsupportedOperation("SQS has no session state (capabilities.session_state)")

    async def close(self) -> None:
        """Release the session: unsettled messages come back first, for the next session.

        With unsettled messages the group is made visible in SQS again; otherwise what it
        fetched but did not deliver stays held by the process for the group's next session.
        A no-op once closed or lapsed.
        """
        if self._closed:
            return
        self._closed = True
        self._on_close(self)
        lease = self._lease
        if lease.alive(time.monotonic()):
            released = self._info.state.release(lease)
            if released:
                await self._settler.give_back(self._info.url, released)
