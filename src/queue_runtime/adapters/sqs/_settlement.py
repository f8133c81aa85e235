"""Settlement: receipts, delete / visibility / dead-letter calls, and what they do to the
registry.

A receipt may be settled only by its holder: the `SqsSessionClient` that received it for a
session message, the plain client otherwise. A settlement runs to its end once its request is
sent, even if the caller is cancelled (it is a tracked task the caller awaits through
`asyncio.shield`); the entry stays busy until it ends, so a second settlement meanwhile is
`MessageLockLost`. When SQS may have done what was asked although the call failed (answer
lost, cancelled mid-call), the receipt is spent: the entry is forgotten, later settlement
raises `MessageLockLost`, and the message comes back by itself if SQS did nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Sequence
from datetime import UTC, datetime
from typing import Any, Final

from ..._arguments import check_dead_letter_reason, check_received, received_sequence
from ..._errors import (
    ConfigurationError,
    MessageLockLost,
    QueueError,
    SessionLockLost,
    ValidationError,
)
from ..._messages import Message, ReceivedMessage
from ...engine import MAX_DELIVERY_COUNT_EXCEEDED, TTL_EXPIRED
from ...ports import batch_settle_error
from ._batches import MAX_BATCH
from ._codec import with_dead_letter
from ._connection import LOG, Ids, SqsConnection
from ._errors import entry_error, unknown_outcome
from ._naming import dead_letter_dedup_id, group_id
from ._queues import QueueDirectory, QueueInfo
from ._registry import Entry, Lease, QueueState

__all__ = ["Doomed", "Receipt", "Settler", "entry_ids"]

#: Messages a receive must dispose of instead of delivering: (entry, "expired" | "spent").
Doomed = list[tuple[Entry, str]]

_EXPIRED_TEXT: Final = "the message's time to live ran out"


class Receipt:
    """What settling one delivery needs; opaque to callers."""

    __slots__ = ("dead_letter", "endpoint", "entry", "info", "lease", "state", "token", "url")

    def __init__(
        self,
        endpoint: str,
        info: QueueInfo,
        state: QueueState,
        url: str,
        dead_letter: bool,
        entry: Entry,
    ) -> None:
        self.endpoint = endpoint
        self.info = info
        self.state = state
        self.url = url
        self.dead_letter = dead_letter
        self.entry = entry
        self.token = entry.token
        #: The session lease it was delivered under: only that session may settle it.
        self.lease = entry.lease

    def check_holder(self, holder: Lease | None) -> None:
        """`ValidationError` unless ``holder`` (a session's lease, None for the plain client)
        is who received the message."""
        if self.lease is holder:
            return
        if self.lease is None:
            raise ValidationError(
                "this message was not received through a session: settle it through the client"
            )
        raise ValidationError(
            f"this message was received through session {self.lease.session_id!r}: settle "
            "or renew it only through that SessionClient"
        )


class Settler:
    """Settling and extending received messages for one client."""

    def __init__(self, connection: SqsConnection, queues: QueueDirectory, max_size: int) -> None:
        self._connection = connection
        self._queues = queues
        self._max_size = max_size
        self._running: set[asyncio.Future[Any]] = set()
        #: Batch settlements started in this loop iteration, per operation, to send together.
        self._joining: dict[
            str, list[tuple[list[Receipt], asyncio.Future[dict[Receipt, QueueError | None]]]]
        ] = {}

    def receipt(self, message: ReceivedMessage, holder: Lease | None) -> Receipt:
        """The receipt of ``message``, checked: this adapter, this endpoint, this holder."""
        self._connection.check_open()
        receipt = check_received(message, Receipt)
        assert isinstance(receipt, Receipt)
        if receipt.endpoint != self._connection.endpoint:
            raise ValidationError("this message was received from another SQS endpoint")
        receipt.check_holder(holder)
        return receipt

    async def finish(self) -> None:
        """Wait for settlements still running (their callers were cancelled)."""
        while self._running:
            await asyncio.gather(*self._running, return_exceptions=True)

    async def _shielded(self, work: Awaitable[None]) -> None:
        """Run ``work`` to its end even if the caller is cancelled meanwhile."""
        task = asyncio.ensure_future(work)
        self._running.add(task)
        task.add_done_callback(self._done)
        await asyncio.shield(task)

    def _done(self, task: asyncio.Future[Any]) -> None:
        self._running.discard(task)
        if not task.cancelled():
            task.exception()  # retrieved: the caller saw it, or was cancelled and does not care

    # -- one message -----------------------------------------------------------------------

    async def complete(self, receipt: Receipt) -> None:
        _reserve(receipt)
        await self._shielded(self.delete(receipt.info, receipt.state, receipt.url, receipt.entry))

    async def abandon(self, receipt: Receipt) -> None:
        _reserve(receipt)
        await self._shielded(self._abandon_reserved(receipt))

    async def _abandon_reserved(self, receipt: Receipt) -> None:
        entry, state = receipt.entry, receipt.state
        if entry.lease is not None:
            # in a session the message stays in flight, held for the session, and comes back
            # first; SQS cannot put it back ahead of the group's later messages otherwise
            if entry.count >= receipt.info.settings.max_delivery_count:
                text = f"delivered {entry.count} times without being completed"
                await self.move_to_dead_letter(
                    receipt.info, state, receipt.url, entry, MAX_DELIVERY_COUNT_EXCEEDED, text
                )
            else:
                state.returned(entry)
            return
        await self._call_reserved(
            receipt.info,
            state,
            entry,
            "ChangeMessageVisibility",
            QueueUrl=receipt.url,
            VisibilityTimeout=0,
        )
        state.released(entry)
        state.wake_all()

    async def dead_letter(
        self, receipt: Receipt, reason: str | None, description: str | None
    ) -> None:
        check_dead_letter_reason(reason, description)
        if receipt.dead_letter:
            raise ValidationError("a message in a dead-letter queue cannot be dead-lettered again")
        _reserve(receipt)
        await self._shielded(
            self.move_to_dead_letter(
                receipt.info, receipt.state, receipt.url, receipt.entry, reason, description
            )
        )

    async def renew(self, receipt: Receipt) -> datetime:
        """Extend a plain message's lock by the queue's lock duration."""
        entry, state = receipt.entry, receipt.state
        _reserve(receipt)
        seconds = receipt.info.settings.lock_seconds
        start, start_wall = time.monotonic(), time.time()

        async def renew() -> None:
            # an extension whose outcome is unknown spends nothing: the old deadline holds
            await self._call_reserved(
                receipt.info,
                state,
                entry,
                "ChangeMessageVisibility",
                spend_if_unknown=False,
                QueueUrl=receipt.url,
                VisibilityTimeout=seconds,
            )
            state.extended([entry], start, start_wall, seconds)
            state.unreserve(entry)

        await self._shielded(renew())
        return datetime.fromtimestamp(entry.deadline_wall, UTC)

    # -- batches ---------------------------------------------------------------------------

    async def complete_many(
        self, messages: Sequence[ReceivedMessage], holder: Lease | None
    ) -> None:
        """Complete in as few ``DeleteMessageBatch`` requests as SQS allows (10 each)."""
        reserved, settled, failed = self._reserve_all(messages, holder)
        if reserved:
            await self._shielded(self._joined(reserved, "DeleteMessageBatch", settled, failed))
        if failed:
            raise batch_settle_error(settled, failed)

    async def abandon_many(self, messages: Sequence[ReceivedMessage], holder: Lease | None) -> None:
        """Abandon: a session's messages locally (in order), others in as few
        ``ChangeMessageVisibilityBatch`` requests as SQS allows."""
        reserved, settled, failed = self._reserve_all(messages, holder)

        async def abandon() -> None:
            plain = [receipt for receipt in reserved if receipt.entry.lease is None]
            for receipt in reserved:
                if receipt.entry.lease is not None:
                    try:
                        await self._abandon_reserved(receipt)
                    except QueueError as exc:
                        failed.append((_id(receipt), exc))
                    else:
                        settled.append(_id(receipt))
            if plain:
                await self._joined(plain, "ChangeMessageVisibilityBatch", settled, failed)

        if reserved:
            await self._shielded(abandon())
        if failed:
            raise batch_settle_error(settled, failed)

    def _reserve_all(
        self, messages: Sequence[ReceivedMessage], holder: Lease | None
    ) -> tuple[list[Receipt], list[str], list[tuple[str, QueueError]]]:
        """Check every message (`ValidationError`: nothing settled), then reserve each; those
        that cannot be reserved (lock lost) are failures of the batch."""
        receipts = [self.receipt(message, holder) for message in received_sequence(messages)]
        reserved: list[Receipt] = []
        failed: list[tuple[str, QueueError]] = []
        for receipt in receipts:
            try:
                _reserve(receipt)
            except (MessageLockLost, SessionLockLost) as exc:
                failed.append((_id(receipt), exc))
            else:
                reserved.append(receipt)
        return reserved, [], failed

    async def _joined(
        self,
        receipts: list[Receipt],
        operation: str,
        settled: list[str],
        failed: list[tuple[str, QueueError]],
    ) -> None:
        """`_batch` of ``receipts``, sharing requests with the batch settlements of the same
        kind that other callers start in this loop iteration (sessions settling concurrently:
        SQS charges per request); notes each receipt's outcome in ``settled``/``failed``."""
        loop = asyncio.get_running_loop()
        joining = self._joining.get(operation)
        if joining is None:
            joining = self._joining[operation] = []
            loop.call_soon(self._start_joined, operation)
        outcome: asyncio.Future[dict[Receipt, QueueError | None]] = loop.create_future()
        joining.append((receipts, outcome))
        outcomes = await outcome
        for receipt in receipts:
            error = outcomes[receipt]
            if error is None:
                settled.append(_id(receipt))
            else:
                failed.append((_id(receipt), error))

    def _start_joined(self, operation: str) -> None:
        joined = self._joining.pop(operation)
        task = asyncio.ensure_future(self._run_joined(operation, joined))
        self._running.add(task)
        task.add_done_callback(self._done)

    async def _run_joined(
        self,
        operation: str,
        joined: list[tuple[list[Receipt], asyncio.Future[dict[Receipt, QueueError | None]]]],
    ) -> None:
        try:
            outcomes = await self._batch([r for receipts, _ in joined for r in receipts], operation)
        except BaseException as exc:
            for _, outcome in joined:
                if not outcome.done():
                    outcome.set_exception(exc)
            raise
        for _, outcome in joined:
            if not outcome.done():
                outcome.set_result(outcomes)

    async def _batch(
        self, receipts: list[Receipt], operation: str
    ) -> dict[Receipt, QueueError | None]:
        """Delete or release reserved messages, 10 per request; each one's outcome (None:
        settled)."""
        outcomes: dict[Receipt, QueueError | None] = {}
        by_url: dict[str, list[Receipt]] = {}
        for receipt in receipts:
            by_url.setdefault(receipt.url, []).append(receipt)
        for url, group in by_url.items():
            for start in range(0, len(group), MAX_BATCH):
                chunk = group[start : start + MAX_BATCH]
                entries: list[dict[str, Any]] = [
                    {"Id": str(i), "ReceiptHandle": r.entry.incoming.receipt_handle}
                    for i, r in enumerate(chunk)
                ]
                if operation == "ChangeMessageVisibilityBatch":
                    for entry in entries:
                        entry["VisibilityTimeout"] = 0
                try:
                    response = await self._queues.call(
                        chunk[0].info,
                        operation,
                        about=entry_ids(chunk),
                        QueueUrl=url,
                        Entries=entries,
                    )
                except BaseException as exc:
                    for receipt in chunk:
                        self._failed(receipt, exc)
                        if isinstance(exc, QueueError):
                            outcomes[receipt] = exc
                    if not isinstance(exc, QueueError):
                        for later in receipts:
                            if later.entry.busy and not later.entry.settled:
                                later.state.unreserve(later.entry)
                        raise
                    continue
                refused = {str(item.get("Id")): item for item in response.get("Failed") or ()}
                for i, receipt in enumerate(chunk):
                    item = refused.get(str(i))
                    if item is None:
                        if operation == "DeleteMessageBatch":
                            receipt.state.settled(receipt.entry)
                        else:
                            receipt.state.released(receipt.entry)
                        outcomes[receipt] = None
                        continue
                    error = entry_error(operation, item)
                    self._failed(receipt, error)
                    outcomes[receipt] = error
                if operation == "ChangeMessageVisibilityBatch":
                    chunk[0].state.wake_all()
        return outcomes

    def _failed(self, receipt: Receipt, exc: BaseException) -> None:
        _after_failure(receipt.state, receipt.entry, exc, "settlement")

    # -- calls about reserved messages -----------------------------------------------------

    async def _call_reserved(
        self,
        info: QueueInfo,
        state: QueueState,
        entry: Entry,
        operation: str,
        *,
        spend_if_unknown: bool = True,
        **params: Any,
    ) -> None:
        """Call SQS about a reserved message with its receipt handle. If SQS says the lock is
        gone the entry is marked lost; if the call may have happened (answer lost, cancelled)
        its receipt is spent; on any other failure it is unreserved (still held)."""
        try:
            await self._queues.call(
                info,
                operation,
                about=entry_ids((entry,)),
                ReceiptHandle=entry.incoming.receipt_handle,
                **params,
            )
        except BaseException as exc:
            _after_failure(state, entry, exc, operation, spend_if_unknown=spend_if_unknown)
            raise

    async def delete(self, info: QueueInfo, state: QueueState, url: str, entry: Entry) -> None:
        """Delete a reserved message."""
        await self._call_reserved(info, state, entry, "DeleteMessage", QueueUrl=url)
        state.settled(entry)

    async def move_to_dead_letter(
        self,
        info: QueueInfo,
        state: QueueState,
        url: str,
        entry: Entry,
        reason: str | None,
        description: str | None,
    ) -> None:
        """Send a reserved message to the dead-letter queue (same group), then delete it."""
        if info.dead_letter_url is None:
            state.unreserve(entry)
            raise ConfigurationError(
                f"queue {str(info.name)!r} has no dead-letter queue (no redrive policy)"
            )
        incoming = entry.incoming
        outgoing = with_dead_letter(incoming, reason, description, max_size=self._max_size)
        params: dict[str, Any] = {
            "QueueUrl": info.dead_letter_url,
            "MessageBody": outgoing.body,
            "MessageAttributes": outgoing.attributes,
        }
        if info.fifo:
            params["MessageGroupId"] = incoming.group_id or group_id(
                incoming.message.session_id or "-"
            )
            params["MessageDeduplicationId"] = dead_letter_dedup_id(incoming.sqs_id)
        if not entry.moved:  # a retry after a failed delete does not send again
            try:
                await self._queues.call(info, "SendMessage", about=entry_ids((entry,)), **params)
            except BaseException as exc:
                _after_failure(state, entry, exc, "dead-lettering")
                raise
            entry.moved = True
        await self.delete(info, state, url, entry)

    async def dispose(self, info: QueueInfo, state: QueueState, url: str, doomed: Doomed) -> None:
        """Delete or dead-letter messages that must not be delivered (expired or spent)."""
        for entry, why in doomed:
            if why == "expired" and not info.settings.dead_letter_on_expiration:
                await self.delete(info, state, url, entry)
            elif why == "expired":
                await self.move_to_dead_letter(info, state, url, entry, TTL_EXPIRED, _EXPIRED_TEXT)
            else:
                text = f"delivered {entry.next_count - 1} times without being completed"
                await self.move_to_dead_letter(
                    info, state, url, entry, MAX_DELIVERY_COUNT_EXCEEDED, text
                )

    # -- visibility of held messages -------------------------------------------------------

    async def set_visibility(self, url: str, entries: Sequence[Entry], seconds: int) -> list[Entry]:
        """ChangeMessageVisibilityBatch; returns the entries SQS refused."""
        refused: list[Entry] = []
        for start in range(0, len(entries), MAX_BATCH):
            chunk = entries[start : start + MAX_BATCH]
            response = await self._connection.call(
                "ChangeMessageVisibilityBatch",
                about=entry_ids(chunk),
                QueueUrl=url,
                Entries=[
                    {
                        "Id": str(i),
                        "ReceiptHandle": entry.incoming.receipt_handle,
                        "VisibilityTimeout": seconds,
                    }
                    for i, entry in enumerate(chunk)
                ],
            )
            failed = {str(item.get("Id")) for item in response.get("Failed") or ()}
            refused.extend(entry for i, entry in enumerate(chunk) if str(i) in failed)
        return refused

    async def extend(
        self, info: QueueInfo, state: QueueState, entries: Sequence[Entry]
    ) -> tuple[float, float]:
        """Extend held messages' visibility by the lock duration; forget those SQS refused.
        Returns when the call was sent (monotonic, wall)."""
        start, start_wall = time.monotonic(), time.time()
        seconds = info.settings.lock_seconds
        if entries:
            refused = await self.set_visibility(info.url, entries, seconds)
            state.extended([e for e in entries if e not in refused], start, start_wall, seconds)
            for entry in refused:
                LOG.warning("SQS refused an extension, lock lost: %s", entry_ids((entry,)))
                state.lost(entry)
        return start, start_wall

    async def give_back(self, url: str, entries: Sequence[Entry]) -> None:
        """Make messages the registry forgot visible again (best effort: if this fails they
        come back when their visibility runs out)."""
        with contextlib.suppress(QueueError):
            await self.set_visibility(url, entries, 0)

    async def keep(self, state: QueueState, owner: object, tick: float, max_keeps: int) -> None:
        """One round of the keeper on ``state``: extend what lapses soon, give back the rest."""
        settings = state.settings
        if settings is None:
            return
        seconds = settings.lock_seconds
        lead = min(max(3 * tick, 0.25 * seconds), 0.5 * seconds)
        extend, release = state.keep_due(owner, lead, max_keeps)
        url = state.key[1]
        with contextlib.suppress(QueueError):
            if extend:
                start, start_wall = time.monotonic(), time.time()
                refused = await self.set_visibility(url, extend, seconds)
                kept = [entry for entry in extend if entry not in refused]
                state.extended(kept, start, start_wall, seconds)
            if release:
                await self.set_visibility(url, release, 0)


def entry_ids(items: Sequence[Entry | Receipt]) -> Ids:
    """Ids of held entries or receipts for a log line (formatted only if written)."""
    return Ids(items, _message_of)


def _message_of(item: Entry | Receipt) -> Message:
    entry = item.entry if isinstance(item, Receipt) else item
    return entry.incoming.message


def _reserve(receipt: Receipt) -> None:
    """Reserve a receipt's entry for settlement; a lost lock is logged as a warning."""
    try:
        receipt.state.reserve(receipt.entry, receipt.token)
    except (MessageLockLost, SessionLockLost) as exc:
        LOG.warning("settlement refused: %s: %s", exc.message, entry_ids((receipt,)))
        raise


def _after_failure(
    state: QueueState,
    entry: Entry,
    exc: BaseException,
    what: str,
    *,
    spend_if_unknown: bool = True,
) -> None:
    """A call about a reserved message failed with ``exc``: if SQS says the lock is gone the
    entry is lost; if SQS may have done it (answer lost, cancelled) the receipt is spent; on
    any other failure it is unreserved (still held, nothing happened)."""
    if isinstance(exc, MessageLockLost):
        LOG.warning("SQS %s: lock lost: %s", what, entry_ids((entry,)))
        state.lost(entry)
    elif spend_if_unknown and unknown_outcome(exc):
        LOG.warning("SQS %s: outcome unknown, receipt spent: %s", what, entry_ids((entry,)))
        state.lost(entry)
    else:
        state.unreserve(entry)


def _id(receipt: Receipt) -> str:
    return receipt.entry.incoming.message.message_id
