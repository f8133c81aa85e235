"""`SqsSessionClient`: a held session, that is, a FIFO message group leased in this process.

The lease lives in the process-wide registry (`._registry`), so no other `SessionClient` of
the process gets the group while it lasts; SQS itself keeps other processes off the group only
while messages of it are in flight. See ``specs/sqs-adapter.md``.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from ..._arguments import check_max_messages
from ..._errors import SessionLockLost, UnsupportedOperation, ValidationError
from ..._messages import ReceivedMessage
from ...ports import SessionClient, Timeout
from ._registry import Lease

if TYPE_CHECKING:
    from ._client import SqsQueueClient, _QueueInfo, _Receipt

__all__ = ["SqsSessionClient"]


class SqsSessionClient(SessionClient):
    """One session (message group) of an SQS FIFO queue, held by this process.

    Its lock lasts the queue's lock duration (its visibility timeout) and is renewed only by
    `renew_session_lock`, which extends the visibility of every message the session holds.
    """

    def __init__(self, client: SqsQueueClient, info: _QueueInfo, lease: Lease) -> None:
        self._client = client
        self._info = info
        self._lease = lease
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
        self._client._check_open()
        lease = self._lease
        if not lease.alive(time.monotonic()):
            raise SessionLockLost(f"the lock on session {self.session_id!r} expired")
        return lease

    def _receipt(self, message: ReceivedMessage) -> _Receipt:
        self._check()
        receipt = self._client._receipt(message)
        if receipt.lease is not self._lease:
            raise ValidationError("this message was not received through this session")
        return receipt

    async def receive_message(self, *, timeout: Timeout = None) -> ReceivedMessage | None:
        received = await self._client._session_receive(self, 1, timeout)
        return received[0] if received else None

    async def receive_messages(
        self, *, max_messages: int = 10, timeout: Timeout = None
    ) -> list[ReceivedMessage]:
        return await self._client._session_receive(self, check_max_messages(max_messages), timeout)

    async def complete_message(self, message: ReceivedMessage) -> None:
        await self._client._complete(self._receipt(message))

    async def complete_messages(self, messages: Sequence[ReceivedMessage]) -> None:
        """Complete several of the session's messages in as few requests as SQS allows."""
        for message in messages:
            self._receipt(message)
        await self._client.complete_messages(messages)

    async def abandon_message(self, message: ReceivedMessage) -> None:
        await self._client._abandon(self._receipt(message))

    async def dead_letter_message(
        self,
        message: ReceivedMessage,
        *,
        reason: str | None = None,
        description: str | None = None,
    ) -> None:
        await self._client._dead_letter(self._receipt(message), reason, description)

    async def renew_session_lock(self) -> datetime:
        return await self._client._renew_session(self)

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
        self._client._forget_session(self)
        lease = self._lease
        if lease.alive(time.monotonic()):
            released = self._info.state.release(lease)
            if released:
                await self._client._give_back(self._info.url, released)
