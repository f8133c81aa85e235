"""Settling and renewing one delivery: the receipt, and the rule that an unknown outcome spends it.

A `Receipt` names the `Link` that delivered the message (Service Bus settles a delivery on
the link that received it; every call on it is made holding the link), the SDK's message,
and the `SessionClient` holding it, if any (only that holder may settle it). Once a
settlement was attempted, the receipt is spent whatever came back, unless our own checks
refused the call: a cancelled call or a lost reply may have settled the message, so a second
attempt raises `MessageLockLost` rather than risk acting twice.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import datetime
from typing import Any, Final

from ..._arguments import check_dead_letter_reason, received_sequence
from ..._errors import MessageLockLost, QueueError, ValidationError
from ..._logging import get_logger
from ..._messages import ReceivedMessage
from ...ports import batch_settle_error
from ._errors import translate
from ._link import Link

__all__ = [
    "ABANDON",
    "COMPLETE",
    "DEAD_LETTER",
    "Receipt",
    "Settling",
    "renew",
    "settle",
    "settle_all",
]

_log = get_logger("adapters.servicebus")

COMPLETE: Final = "complete"
ABANDON: Final = "abandon"
DEAD_LETTER: Final = "dead-letter"


class Receipt:
    """What settling one delivery needs; opaque to callers."""

    __slots__ = ("holder", "incoming", "link", "owner", "queue", "spent")

    def __init__(
        self, owner: object, queue: str, link: Link, incoming: Any, holder: object
    ) -> None:
        #: The `ServiceBusQueueClient` whose receiver delivered it.
        self.owner = owner
        self.queue = queue
        #: The receiver that delivered it (which notes it as unsettled until it is spent).
        self.link = link
        self.incoming = incoming
        #: The session client holding the message (None outside sessions).
        self.holder = holder
        self.spent = False
        link.unsettled.add(self)

    def spend(self) -> None:
        """From here on the outcome may be anything: never settle twice."""
        self.spent = True
        self.link.unsettled.discard(self)

    def __repr__(self) -> str:
        return f"Receipt(queue={self.queue!r}, spent={self.spent})"

    def subject(self) -> str:
        """Ids for logs and errors: the queue and the message id."""
        return f"{self.queue} message {self.incoming.message_id}"


async def settle(
    receipt: Receipt,
    action: str,
    reason: str | None = None,
    description: str | None = None,
) -> None:
    """Complete, abandon or dead-letter the delivery on the link that received it."""
    _check_unspent(receipt)
    link, incoming = receipt.link, receipt.incoming
    async with link:
        _check_unspent(receipt)  # a concurrent settlement of it went first
        receipt.spend()
        receiver = link.handler
        if _log.isEnabledFor(logging.DEBUG):
            _log.debug("%s %s", action, receipt.subject())
        with translate(action, receipt.subject()):
            if action == COMPLETE:
                await receiver.complete_message(incoming)
            elif action == ABANDON:
                await receiver.abandon_message(incoming)
            elif action == DEAD_LETTER:
                await receiver.dead_letter_message(
                    incoming, reason=reason, error_description=description
                )
            else:  # pragma: no cover - the adapter passes one of the three
                raise ValidationError(f"unknown settlement {action!r}")


def _check_unspent(receipt: Receipt) -> None:
    if receipt.spent:
        raise MessageLockLost(
            f"{receipt.subject()}: already settled (or a settlement of unknown outcome was made)"
        )


async def renew(receipt: Receipt) -> datetime:
    """Extend the delivery's lock by the queue's lock duration; returns the new expiry."""
    if receipt.spent:
        raise MessageLockLost(f"{receipt.subject()}: already settled")
    link = receipt.link
    async with link:
        if receipt.spent:
            raise MessageLockLost(f"{receipt.subject()}: already settled")
        _log.debug("renew lock %s", receipt.subject())
        try:
            with translate("renew lock", receipt.subject()):
                until: datetime = await link.handler.renew_message_lock(
                    receipt.incoming, timeout=link.timeout
                )
        except MessageLockLost:
            receipt.spend()
            raise
    return until


async def settle_all(batch: Sequence[tuple[str, Receipt]], action: str) -> None:
    """Settle every ``(message_id, receipt)`` of a checked batch in turn; `BatchSettleError`
    names what was and was not settled.

    One after the other on purpose: the SDK awaits each outcome by polling its connection,
    and settlements put in flight together contend for it (slower than in turn).
    """
    settled: list[str] = []
    failed: list[tuple[str, QueueError]] = []
    for message_id, receipt in batch:
        try:
            await settle(receipt, action)
        except QueueError as exc:
            failed.append((message_id, exc))
        else:
            settled.append(message_id)
    if failed:
        raise batch_settle_error(settled, failed)


class Settling:
    """The settlement methods of both ports, on ``_receipt`` (which checks that the message
    is this client's or this session's to settle and returns its receipt)."""

    def _receipt(self, message: ReceivedMessage) -> Receipt:
        raise NotImplementedError

    async def complete_message(self, message: ReceivedMessage) -> None:
        await settle(self._receipt(message), COMPLETE)

    async def abandon_message(self, message: ReceivedMessage) -> None:
        await settle(self._receipt(message), ABANDON)

    async def dead_letter_message(
        self,
        message: ReceivedMessage,
        *,
        reason: str | None = None,
        description: str | None = None,
    ) -> None:
        receipt = self._receipt(message)
        check_dead_letter_reason(reason, description)
        await settle(receipt, DEAD_LETTER, reason, description)

    async def complete_messages(self, messages: Sequence[ReceivedMessage]) -> None:
        batch = [(m.message_id, self._receipt(m)) for m in received_sequence(messages)]
        await settle_all(batch, COMPLETE)

    async def abandon_messages(self, messages: Sequence[ReceivedMessage]) -> None:
        batch = [(m.message_id, self._receipt(m)) for m in received_sequence(messages)]
        await settle_all(batch, ABANDON)
