"""`ServiceBusSessionClient`: a held Service Bus session (one session receiver link).

Service Bus locks the session for the receiver that attached to it; its messages are
settled on that link only, so a session's messages settle through this client alone. The
lock lasts the queue's lock duration and is renewed only by `renew_session_lock`; once it
lapses every call raises `SessionLockLost` (a waiting receive wakes when it lapses), and
closing releases the session (its unsettled messages come back at once, in order).

Several tasks may use one session client: every call on its receiver is made holding its
`Link` (one SDK operation at a time), and a receive waiting for messages lets a lock renewal,
a settlement or a state call through between its slices.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from datetime import datetime
from typing import Any

from ..._arguments import (
    check_max_messages,
    check_sequence_number,
    timeout_seconds,
)
from ..._errors import QueueError, SessionLockLost, ValidationError
from ..._logging import get_logger
from ..._messages import ReceivedMessage
from ...ports import SessionClient, Timeout
from ._codec import decode
from ._errors import translate
from ._link import MIN_WAIT, Link, receive
from ._peek import peek
from ._settlement import Receipt, Settling

__all__ = ["ServiceBusSessionClient"]

_log = get_logger("adapters.servicebus")


class ServiceBusSessionClient(Settling, SessionClient):
    """A session of a Service Bus queue held by one session receiver."""

    def __init__(
        self,
        owner: Any,
        queue: str,
        receiver: Any,
        *,
        default_timeout: float,
        check_open: Callable[[], None],
        on_close: Callable[[ServiceBusSessionClient], None],
    ) -> None:
        self._owner = owner
        self._queue = queue
        self._link = Link(receiver)
        self._session = receiver.session
        self._session_id: str = self._session.session_id
        self._default_timeout = default_timeout
        self._check_open = check_open
        self._on_close = on_close
        self._closed = False
        self._receiving = asyncio.Lock()
        self._subject = f"{queue} session {self._session_id}"

    def __repr__(self) -> str:
        return f"ServiceBusSessionClient(queue={self._queue!r}, session_id={self._session_id!r})"

    @property
    def session_id(self) -> str:
        return self._session_id

    @property
    def locked_until(self) -> datetime:
        until: datetime | None = self._session.locked_until_utc
        if until is None:  # pragma: no cover - the service always says
            raise SessionLockLost(f"{self._subject}: the service gave no lock expiry")
        return until

    def _locked_until_timestamp(self) -> float:
        return self.locked_until.timestamp()

    def _check(self) -> None:
        if self._closed:
            raise SessionLockLost(f"{self._subject} was closed")
        self._check_open()
        if self._locked_until_timestamp() <= time.time():
            _log.warning("%s: the session lock lapsed", self._subject)
            raise SessionLockLost(f"{self._subject}: the session lock lapsed")

    # -- receiving -----------------------------------------------------------------------

    async def receive_message(self, *, timeout: Timeout = None) -> ReceivedMessage | None:
        received = await self._receive(1, timeout)
        return received[0] if received else None

    async def receive_messages(
        self, *, max_messages: int = 10, timeout: Timeout = None
    ) -> list[ReceivedMessage]:
        return await self._receive(check_max_messages(max_messages), timeout)

    async def _receive(self, max_messages: int, timeout: Timeout) -> list[ReceivedMessage]:
        wait = timeout_seconds(timeout, self._default_timeout)
        self._check()
        async with self._receiving:
            self._check()
            # wake when the lock lapses at the latest, to report it (a renewal meanwhile
            # extends the lock, not this wait)
            left = self._locked_until_timestamp() - time.time()
            budget = max(MIN_WAIT, min(wait, left))
            _log.debug("receive %s (up to %d, %.3f s)", self._subject, max_messages, budget)
            incoming = await receive(self._link, max_messages, budget, self._subject, self._check)
            if not incoming and wait > left:
                self._check()
        until = self._locked_until_timestamp()
        link = self._link
        return [
            decode(m, Receipt(self._owner, self._queue, link, m, self), locked_until=until)
            for m in incoming
        ]

    # -- settling ------------------------------------------------------------------------

    def _receipt(self, message: ReceivedMessage) -> Receipt:
        receipt = getattr(message, "receipt", None)
        if not isinstance(message, ReceivedMessage):
            raise ValidationError(f"expected a ReceivedMessage, not {type(message).__name__}")
        if not isinstance(receipt, Receipt):
            if receipt is None:
                raise ValidationError("a peeked message cannot be settled")
            raise ValidationError("this message was not received through this adapter")
        if receipt.holder is not self:
            raise ValidationError("this message was not received through this session")
        self._check()
        return receipt

    async def peek_messages(
        self, *, max_messages: int = 10, from_sequence_number: int | None = None
    ) -> list[ReceivedMessage]:
        count = check_max_messages(max_messages)
        start = check_sequence_number(from_sequence_number)
        self._check()
        return await peek(self._link, count, start, self._subject)

    # -- the session ---------------------------------------------------------------------

    async def renew_session_lock(self) -> datetime:
        self._check()
        async with self._link:
            self._check()
            _log.debug("renew session lock %s", self._subject)
            with translate("renew session lock", self._subject):
                until: datetime = await self._session.renew_lock(timeout=self._link.timeout)
        return until

    async def get_state(self) -> bytes | None:
        self._check()
        async with self._link:
            self._check()
            _log.debug("get session state %s", self._subject)
            with translate("get session state", self._subject):
                state = await self._session.get_state(timeout=self._link.timeout)
        return None if state is None else bytes(state)

    async def set_state(self, state: bytes | None) -> None:
        if state is not None and type(state) is not bytes:
            raise ValidationError(
                f"session state must be bytes or None, not {type(state).__name__}"
            )
        self._check()
        async with self._link:
            self._check()
            _log.debug("set session state %s", self._subject)
            with translate("set session state", self._subject):
                await self._session.set_state(state, timeout=self._link.timeout)

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._on_close(self)
        _log.debug("release %s", self._subject)
        try:
            # after the call in progress on it, if any (a waiting receive stops at its slice)
            async with self._link:
                with translate("release session", self._subject):
                    await self._link.handler.close()
        except QueueError as exc:
            # the lock is gone either way: closing a lapsed or broken session is a no-op
            _log.debug("%s: closing the receiver failed: %s", self._subject, exc)
