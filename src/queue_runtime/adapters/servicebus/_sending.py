"""Sending: one `Outbox` per queue, which sends one Service Bus batch at a time and gathers the
sends that arrive meanwhile into the next (group commit).

The async SDK's sender must not be used by two tasks at once (azure-sdk-for-python issues
36334 and 35618: concurrent ``send_messages`` race in the link's (re)opening and fail with
``'NoneType' object has no attribute 'create_sender_link'``). Rather than make concurrent
sends queue up one by one, the outbox sends the first at once and, while it is in flight,
collects every send that arrives; when the link is free they go out together, in as few
batches as fit (``ServiceBusMessageBatch``, sized by the link's own limit), and each caller
gets its own outcome:

- its messages stay in its order (a task has one send in flight at a time, so the order of
  one task's sends holds too); a batch holds one session's messages (the service takes a
  batch's session from its first message), so callers of one session are put together;
- each caller's messages are checked before they join (our size rule, and an exact check
  near the limit): a message too big for any batch fails its own send only, before anything
  of it is sent (`send_message` sends such a message on its own, as one message may be);
- a batch the service refuses as a whole stored nothing: when it held several callers'
  messages and the refusal may be about a message (not the queue, the connection or the
  credentials), each caller is sent again on its own, so only the caller whose message it
  was gets the error;
- a batch whose reply was lost (timeout, connection) is of unknown outcome for every caller
  in it (``outcome_unknown``; `BatchSendError.unknown` for `send_messages`), and the other
  callers' sends go on (the SDK opens the link again on the next send).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence
from typing import Any, Final

from azure.servicebus import ServiceBusMessage, ServiceBusMessageBatch
from azure.servicebus.exceptions import MessageSizeExceededError

from ..._errors import (
    BatchSendError,
    ClientClosed,
    ConfigurationError,
    ConnectionError,
    ProviderError,
    QueueError,
    QueueNotFound,
    TimeoutError,
    ValidationError,
)
from ..._logging import get_logger
from ..._messages import Message
from ._codec import METADATA_RESERVE
from ._errors import map_error, translate
from ._link import Link

__all__ = ["Outbox", "batch_send_error"]

_log = get_logger("adapters.servicebus")

#: Most bytes AMQP adds to an application property beyond its key and value (two str32
#: headers); below the limit by this much per attribute, a message cannot exceed it.
_ATTRIBUTE_FRAMING: Final = 10


class _Send:
    """One caller's `send_message` (``single``) or `send_messages` and how far it got."""

    __slots__ = ("alone", "end", "future", "messages", "outgoing", "position", "single", "solo")

    def __init__(
        self,
        messages: Sequence[Message],
        outgoing: list[ServiceBusMessage],
        single: bool,
        alone: bool,
    ) -> None:
        self.messages = messages
        self.outgoing = outgoing
        self.single = single
        #: One message too big for a batch: sent as a message of its own.
        self.alone = alone
        #: Sent in batches of its own (after a shared batch was refused).
        self.solo = False
        #: ``messages[:position]`` were sent; ``[position:end]`` are in flight.
        self.position = 0
        self.end = 0
        self.future: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    @property
    def finished(self) -> bool:
        return self.position == len(self.messages) or self.end < 0

    def ids(self, start: int, stop: int | None = None) -> list[str]:
        return [m.message_id for m in self.messages[start:stop]]

    def succeed(self) -> None:
        if not self.future.done():
            self.future.set_result(None)

    def fail(self, error: QueueError) -> None:
        self.end = -1  # finished
        if not self.future.done():
            self.future.set_exception(error)


class _Batch:
    """Messages sent in one transfer: one plain message, or an SDK batch of several."""

    __slots__ = ("count", "first", "parts", "sdk", "session")

    def __init__(self, session: str | None, first: ServiceBusMessage) -> None:
        self.session = session
        self.first = first
        self.sdk: ServiceBusMessageBatch | None = None
        self.count = 0
        #: ``[send, start, end]``: the caller's ``messages[start:end]`` are in this batch.
        self.parts: list[list[Any]] = []

    def note(self, send: _Send, index: int) -> None:
        self.count += 1
        parts = self.parts
        if parts and parts[-1][0] is send:
            parts[-1][2] = index + 1
        else:
            parts.append([send, index, index + 1])

    @property
    def payload(self) -> Any:
        return self.first if self.sdk is None else self.sdk


class Outbox:
    """The sends to one queue through its SDK sender, one transfer at a time."""

    def __init__(
        self, path: str, sender: Any, *, batch_limit: int, max_size: int, plain_limit: int
    ) -> None:
        self.path = path
        #: The SDK sender; the outbox is its only user, one transfer at a time.
        self.link = Link(sender)
        #: The link's batch size (``create_message_batch().max_size_in_bytes``).
        self._batch_limit = batch_limit
        #: Our size rule's limit; ``plain_limit`` what one message may encode to on the wire.
        self._max_size = max_size
        self._plain_limit = plain_limit
        #: Below this (by our rule, with framing), a message fits an empty batch for sure;
        #: above it, its encoding is measured (its AMQP framing may be what tips it over).
        self._sure_fit = min(max_size, batch_limit - METADATA_RESERVE)
        self._busy = False
        self._pending: list[_Send] = []
        self._flusher: asyncio.Task[None] | None = None
        self._closed: QueueError | None = None

    def __repr__(self) -> str:
        return f"Outbox(path={self.path!r}, pending={len(self._pending)}, busy={self._busy})"

    async def send(
        self,
        messages: Sequence[Message],
        outgoing: list[ServiceBusMessage],
        sizes: Sequence[int],
        *,
        single: bool,
    ) -> None:
        """Send validated ``messages`` (``outgoing`` encoded, ``sizes`` by our rule) and return
        once the service took them all; else raise this caller's own error."""
        alone = False
        for message, encoded, size in zip(messages, outgoing, sizes, strict=True):
            framed = size + _ATTRIBUTE_FRAMING * len(message.attributes)
            if framed > self._sure_fit and not _fits(encoded, self._batch_limit):
                if not single:
                    raise _too_big(message, self._batch_limit)
                if framed > self._max_size and not _fits(encoded, self._plain_limit):
                    raise _too_big(message, self._plain_limit)
                alone = True
        if self._closed is not None:
            raise _own(self._closed)
        send = _Send(messages, outgoing, single, alone)
        if self._busy:
            self._pending.append(send)
            await send.future  # cancelled while pending: it is never sent
            return
        self._busy = True  # nothing in flight: this send goes at once, in this task
        try:
            await self._flush([send])
        except BaseException:
            send.future.cancel()
            raise
        finally:
            self._hand_over()
        send.future.result()

    def _hand_over(self) -> None:
        """After a transfer: the sends that arrived meanwhile go next, in a task of their own
        (the caller whose send is done returns now)."""
        if self._pending and self._closed is None:
            self._flusher = asyncio.get_running_loop().create_task(self._drain())
        else:
            self._busy = False

    async def _drain(self) -> None:
        taken: list[_Send] = []
        try:
            while self._pending:
                taken = [s for s in self._pending if not s.future.done()]
                self._pending.clear()
                if taken:
                    await self._flush(taken)
        except asyncio.CancelledError:
            # the client closed meanwhile: what was in flight may have been stored
            closed = self._closed or ClientClosed("the client was closed")
            for send in taken:
                if not send.finished:
                    self._fail(send, _interrupted(closed, send), unknown=True)
        except Exception as exc:  # a bug of ours: fail the callers rather than leave them waiting
            _log.warning("sending to %s failed: %r", self.path, exc)
            error = ProviderError(f"Service Bus send to {self.path} failed: {exc!r}")
            for send in [*taken, *self._pending]:
                if not send.finished:
                    self._fail(send, _interrupted(error, send), unknown=True)
            self._pending.clear()
        finally:
            self._flusher = None
            self._busy = False

    async def _flush(self, sends: list[_Send]) -> None:
        """Send ``sends`` in as few transfers as fit; settle each one's future."""
        live = sends
        while live:
            try:
                batches = await self._plan(live)
            except QueueError as exc:  # the link could not size a batch: nothing more is sent
                for send in live:
                    self._fail(send, exc, unknown=False)
                return
            for batch in batches:
                if self._closed is not None:  # closed between two transfers: not sent
                    for send in live:
                        if not send.finished:
                            self._fail(send, self._closed, unknown=False)
                    return
                for send, _, end in batch.parts:
                    send.end = end
                try:
                    await self._transfer(batch)
                except QueueError as exc:
                    self._refused(batch, exc)
                    break
                for send, _, end in batch.parts:
                    send.position = end
                    if send.finished:
                        send.succeed()
            live = [s for s in live if not s.finished]

    async def _plan(self, live: list[_Send]) -> list[_Batch]:
        """The transfers for what is left of ``live``: callers of one session next to each
        other (otherwise in arrival order), each caller's messages in its order."""
        first_seen: dict[str | None, int] = {}
        for send in live:
            first_seen.setdefault(send.messages[send.position].session_id, len(first_seen))
        ordered = sorted(live, key=lambda s: first_seen[s.messages[s.position].session_id])
        batches: list[_Batch] = []
        current: _Batch | None = None
        for send in ordered:
            apart = send.alone or send.solo
            if apart:
                current = None
            for index in range(send.position, len(send.messages)):
                encoded = send.outgoing[index]
                session = send.messages[index].session_id
                if (
                    current is None
                    or current.session != session
                    or not await self._add(current, encoded)
                ):
                    current = _Batch(session, encoded)
                    batches.append(current)
                current.note(send, index)
            if apart:
                current = None
        return batches

    async def _add(self, batch: _Batch, encoded: ServiceBusMessage) -> bool:
        """Add ``encoded`` to ``batch`` (an SDK batch from its second message on, sized by the
        link); False when it is full."""
        sdk = batch.sdk
        if sdk is None:
            with translate("create batch", self.path):
                sdk = await self.link.handler.create_message_batch()
            try:
                sdk.add_message(batch.first)  # fits an empty batch: checked before it joined
            except MessageSizeExceededError:  # unless the link's limit changed: it goes alone
                return False
            batch.sdk = sdk
        try:
            sdk.add_message(encoded)
        except MessageSizeExceededError:
            return False
        return True

    async def _transfer(self, batch: _Batch) -> None:
        send, start, _ = batch.parts[0]
        first = send.messages[start].message_id
        if batch.count == 1:
            subject = f"{self.path} message {first}"
            _log.debug("send %s", subject)
        else:
            subject = f"{self.path} batch of {batch.count}"
            _log.debug("send %s (%s.., %d sends)", subject, first, len(batch.parts))
        link = self.link
        async with link:
            with translate("send", subject):
                await link.handler.send_messages(batch.payload, timeout=link.timeout)

    def _refused(self, batch: _Batch, exc: QueueError) -> None:
        """``batch`` failed with ``exc``: fail its callers, or have them sent again apart."""
        unknown = exc.outcome_unknown or isinstance(exc, (TimeoutError, ConnectionError))
        sends = [part[0] for part in batch.parts]
        if not unknown and len(sends) > 1 and _about_a_message(exc):
            # refused whole, so nothing of it was stored; perhaps for one caller's message
            _log.debug("%s: a shared batch was refused, its callers go apart: %s", self.path, exc)
            for send in sends:
                send.solo = True
                send.end = send.position
            return
        for send in sends:
            self._fail(send, exc, unknown=unknown)

    def _fail(self, send: _Send, exc: QueueError, *, unknown: bool) -> None:
        """Fail ``send`` with an error of its own: for `send_message` the error about its
        message, for `send_messages` a `BatchSendError` naming which of its messages were
        sent, not sent, or of unknown outcome."""
        if send.single:
            cause = exc.__cause__
            if isinstance(cause, Exception) and not isinstance(cause, QueueError):
                subject = f"{self.path} message {send.messages[0].message_id}"
                error = map_error(cause, "send", subject)
                error.__cause__ = cause
            else:
                error = _own(exc)
        else:
            start, end = send.position, max(send.end, send.position)
            error = batch_send_error(
                exc, self.path, send.ids(0, start), send.ids(start, end), send.ids(end), unknown
            )
            error.__cause__ = exc
        send.fail(error)

    async def aclose(self, error: QueueError) -> None:
        """Refuse further sends with ``error``, fail those not sent yet with it, stop the
        transfer in flight (its callers' outcome is unknown) and close the SDK sender."""
        self._closed = error
        for send in self._pending:
            send.fail(_own(error))
        self._pending.clear()
        flusher = self._flusher
        if flusher is not None:
            flusher.cancel()
            with contextlib.suppress(BaseException):
                await flusher
        with contextlib.suppress(Exception):
            await self.link.handler.close()


def _interrupted(error: QueueError, send: _Send) -> QueueError:
    """``error`` for a send stopped part way: of unknown outcome if it was in flight."""
    if send.end <= send.position:
        return error
    return type(error)(
        f"{error.message} while the message was being sent; the outcome is unknown",
        outcome_unknown=True,
    )


def _about_a_message(exc: QueueError) -> bool:
    """Whether a refusal may be about one message rather than the queue, the connection or
    the credentials (those apply to every caller alike)."""
    return not exc.retryable and not isinstance(exc, (QueueNotFound, ConfigurationError))


def _too_big(message: Message, limit: int) -> ValidationError:
    return ValidationError(
        f"message {message.message_id!r} is larger than Service Bus takes "
        f"({limit} bytes with its properties)"
    )


def _fits(encoded: ServiceBusMessage, limit: int) -> bool:
    """Whether ``encoded`` fits an empty batch of ``limit`` bytes (its AMQP encoding measured)."""
    try:
        ServiceBusMessageBatch(max_size_in_bytes=limit).add_message(encoded)
    except MessageSizeExceededError:
        return False
    return True


def _own(error: QueueError) -> QueueError:
    """A copy of ``error`` for one caller (one exception object is raised in one task only)."""
    copy = type(error)(
        error.message,
        retryable=error.retryable,
        retry_after=error.retry_after,
        outcome_unknown=error.outcome_unknown,
    )
    copy.__cause__ = error.__cause__
    return copy


def batch_send_error(
    exc: QueueError,
    path: str,
    sent: list[str],
    current: list[str],
    later: list[str],
    unknown: bool,
) -> BatchSendError:
    """`BatchSendError` for a caller whose messages ``current`` were in a transfer that failed
    with ``exc``: ``sent`` went before; ``later`` were not sent; ``current`` are of unknown
    outcome if the reply was lost, else refused."""
    reason = exc.message
    failed = [(mid, reason) for mid in ([] if unknown else current) + later]
    return BatchSendError(
        f"Service Bus send to {path}: {len(sent)} sent, "
        f"{len(current) if unknown else 0} of unknown outcome, {len(failed)} not sent: {reason}",
        sent=sent,
        failed=failed,
        unknown=current if unknown else (),
        retryable=exc.retryable,
    )
