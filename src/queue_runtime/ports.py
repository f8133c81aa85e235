"""The two ports every adapter implements: `QueueClient` and `SessionClient`.

Business code depends on these and on the domain types only. Each method documents what it
guarantees and what it raises; the contract suite (`queue_runtime.testing.contract`) proves
that an adapter keeps those promises. Every method may also raise `ClientClosed` after close,
and `ConnectionError`/`TimeoutError`/`ProviderError` when the provider fails.

``timeout`` arguments take seconds or a `timedelta`: ``0`` means do not wait, ``None`` the
client's configured default (`QueueConfig.default_timeout`, 30 seconds unless set).

Batch settlement, peeking and iteration have default implementations here, written on the
single-message methods, so an adapter written by a user gets them for free; adapters whose
provider does better (one request for a batch) override them.
"""

from __future__ import annotations

import abc
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from datetime import datetime, timedelta
from types import TracebackType
from typing import Self

from ._arguments import received_sequence
from ._capabilities import Capabilities
from ._errors import BatchSettleError, QueueError, UnsupportedOperation
from ._messages import Message, ReceivedMessage
from ._names import MessageId, QueueName
from .engine import QueueStatistics
from .telemetry import instrument_client_class

__all__ = ["QueueClient", "SessionClient", "Timeout"]

#: Seconds or a timedelta; ``0`` means do not wait, ``None`` the client's configured default
#: timeout (`QueueConfig.default_timeout`: 30 seconds unless set).
Timeout = float | timedelta | None

DEFAULT_MAX_DELIVERY_COUNT = 10
DEFAULT_LOCK_DURATION = timedelta(seconds=30)


class SessionClient(abc.ABC):
    """Exclusive hold on one session of a queue: its messages arrive in send order.

    The session lock lasts the queue's ``lock_duration`` and is never renewed by the client
    itself. Once it lapses every operation raises `SessionLockLost`, and the session's
    unsettled messages become available again (to whoever accepts the session next). Its
    messages are settled only through this object. ``timeout=None`` waits the client's
    configured ``default_timeout`` (30 seconds unless set); ``0`` does not wait.
    """

    def __init_subclass__(cls, **kwargs: object) -> None:
        # spans, metrics and trace-context injection for every adapter (queue_runtime.telemetry)
        super().__init_subclass__(**kwargs)
        instrument_client_class(cls)

    @property
    @abc.abstractmethod
    def session_id(self) -> str:
        """The session this client holds."""

    @property
    @abc.abstractmethod
    def locked_until(self) -> datetime:
        """When the session lock lapses unless renewed."""

    @abc.abstractmethod
    async def receive_message(self, *, timeout: Timeout = None) -> ReceivedMessage | None:
        """The session's next message in send order, or ``None`` after ``timeout``.

        An abandoned or expired message comes back before any later message of the session.
        Raises `SessionLockLost` when the lock lapses (also while waiting).
        """

    @abc.abstractmethod
    async def receive_messages(
        self, *, max_messages: int = 10, timeout: Timeout = None
    ) -> list[ReceivedMessage]:
        """Up to ``max_messages`` of the session's next messages, in order; waits for the first.

        Raises `ValidationError` if ``max_messages`` is not positive, `SessionLockLost` as above.
        """

    @abc.abstractmethod
    async def complete_message(self, message: ReceivedMessage) -> None:
        """Remove the message for good. Raises `MessageLockLost` if already settled,
        `SessionLockLost` if the session lock lapsed."""

    @abc.abstractmethod
    async def abandon_message(self, message: ReceivedMessage) -> None:
        """Make the message available again at once, ahead of later messages of the session.

        Its ``delivery_count`` grows on the next delivery; at ``max_delivery_count`` it goes to
        the dead-letter queue instead. Raises as `complete_message`.
        """

    @abc.abstractmethod
    async def dead_letter_message(
        self,
        message: ReceivedMessage,
        *,
        reason: str | None = None,
        description: str | None = None,
    ) -> None:
        """Move the message to the queue's dead-letter queue with ``reason``/``description``.

        Raises as `complete_message`.
        """

    @abc.abstractmethod
    async def renew_session_lock(self) -> datetime:
        """Extend the session lock by the queue's lock duration; returns the new expiry.

        Raises `SessionLockLost` if it already lapsed.
        """

    @abc.abstractmethod
    async def get_state(self) -> bytes | None:
        """The session's state (``None`` if never set). `UnsupportedOperation` where the
        adapter lacks ``session_state``."""

    @abc.abstractmethod
    async def set_state(self, state: bytes | None) -> None:
        """Replace the session's state (``None`` clears it); it outlives the session's messages.

        `UnsupportedOperation` where the adapter lacks ``session_state``.
        """

    @abc.abstractmethod
    async def close(self) -> None:
        """Release the session lock; unsettled messages become available again. Idempotent,
        and a no-op once the lock has lapsed."""

    # -- with default implementations ------------------------------------------------------

    async def complete_messages(self, messages: Sequence[ReceivedMessage]) -> None:
        """Complete each message (received through this session).

        Every message is checked before any is settled. If some cannot be completed,
        `BatchSettleError` says which were settled and why the others were not.
        """
        await settle_each(self.complete_message, messages)

    async def abandon_messages(self, messages: Sequence[ReceivedMessage]) -> None:
        """Abandon each message; they come back in sequence order. Raises as
        `complete_messages`."""
        await settle_each(self.abandon_message, messages)

    async def release_messages(self, messages: Sequence[ReceivedMessage]) -> None:
        """Give back messages received through this session that no handler started: they
        come back first, in sequence order, and where ``capabilities.release`` their delivery
        is not counted (elsewhere this is `abandon_messages`).

        Where ``capabilities.release``, a message whose session lock lapsed is still released
        so unless it was delivered again meanwhile. Raises as `complete_messages`.
        """
        await self.abandon_messages(messages)

    async def peek_messages(
        self, *, max_messages: int = 10, from_sequence_number: int | None = None
    ) -> list[ReceivedMessage]:
        """Up to ``max_messages`` of the session's messages in sequence order (from
        ``from_sequence_number`` on, inclusive), without locking them or counting a delivery.

        A peeked message has no receipt and cannot be settled. `UnsupportedOperation` where
        the adapter lacks ``peek``.
        """
        raise UnsupportedOperation(f"{type(self).__name__} cannot peek messages")

    async def iter_messages(self, *, timeout: Timeout = None) -> AsyncIterator[ReceivedMessage]:
        """The session's messages in order, until none arrives within ``timeout``.

        ``async for message in session`` is the same with the default timeout. Settle each
        message (through this session) before or after taking the next.
        """
        while (message := await self.receive_message(timeout=timeout)) is not None:
            yield message

    def __aiter__(self) -> AsyncIterator[ReceivedMessage]:
        return self.iter_messages()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()


class QueueClient(abc.ABC):
    """A connection to one provider's queues. Use as ``async with client:`` (or ``open`` and
    ``aclose``); creating a client does no I/O, and a closed client refuses further use.

    Every ``timeout`` takes seconds or a `timedelta`: ``0`` means do not wait, ``None`` (the
    default) the client's configured ``default_timeout`` (30 seconds unless set).
    """

    def __init_subclass__(cls, **kwargs: object) -> None:
        # spans, metrics and trace-context injection for every adapter (queue_runtime.telemetry)
        super().__init_subclass__(**kwargs)
        instrument_client_class(cls)

    @property
    @abc.abstractmethod
    def capabilities(self) -> Capabilities:
        """What this adapter supports."""

    @abc.abstractmethod
    async def open(self) -> None:
        """Connect. Idempotent. Raises `ConfigurationError` on unusable configuration."""

    @abc.abstractmethod
    async def aclose(self) -> None:
        """Release connections and held sessions. Idempotent."""

    async def __aenter__(self) -> Self:
        await self.open()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    # -- administration -------------------------------------------------------------------

    @abc.abstractmethod
    async def create_queue(
        self,
        queue: QueueName | str,
        *,
        requires_session: bool = False,
        max_delivery_count: int = DEFAULT_MAX_DELIVERY_COUNT,
        lock_duration: float | timedelta = DEFAULT_LOCK_DURATION,
        default_message_ttl: float | timedelta | None = None,
        dead_letter_on_expiration: bool = False,
    ) -> None:
        """Create the queue and its dead-letter queue; idempotent for equal settings.

        Raises `ValidationError` for a name or setting the provider cannot take, and
        `QueueAlreadyExists` if the queue exists with different settings.
        """

    @abc.abstractmethod
    async def delete_queue(self, queue: QueueName | str) -> None:
        """Delete the queue, its dead-letter queue and every message in them. Raises
        `QueueNotFound` if absent."""

    # -- sending --------------------------------------------------------------------------

    @abc.abstractmethod
    async def send_message(self, queue: QueueName | str, message: Message) -> MessageId:
        """Enqueue one message; returns its id.

        Raises `ValidationError` (empty or oversize body, bad attribute, missing ``session_id``
        on a session queue, a dead-letter queue as target) and `QueueNotFound`; either way
        nothing is enqueued.
        """

    @abc.abstractmethod
    async def send_messages(
        self, queue: QueueName | str, messages: Sequence[Message]
    ) -> list[MessageId]:
        """Enqueue messages in order; returns their ids in the same order.

        Every message is validated before any is sent: one bad message means none is sent.
        A provider failure part way raises `BatchSendError` naming what was and was not sent.
        """

    # -- receiving from queues without sessions ------------------------------------------

    @abc.abstractmethod
    async def receive_message(
        self, queue: QueueName | str, *, timeout: Timeout = None
    ) -> ReceivedMessage | None:
        """Lock and return the next available message, or ``None`` after ``timeout``.

        The message stays locked for the queue's ``lock_duration``; unsettled by then it is
        delivered again. Raises `ValidationError` on a session queue (use `accept_session`;
        its dead-letter queue needs no session) and `QueueNotFound`.
        """

    @abc.abstractmethod
    async def receive_messages(
        self, queue: QueueName | str, *, max_messages: int = 10, timeout: Timeout = None
    ) -> list[ReceivedMessage]:
        """Up to ``max_messages`` messages; waits up to ``timeout`` for the first."""

    @abc.abstractmethod
    async def complete_message(self, message: ReceivedMessage) -> None:
        """Remove the message for good. Raises `MessageLockLost` if its lock expired or it was
        already settled (nothing changes then)."""

    @abc.abstractmethod
    async def abandon_message(self, message: ReceivedMessage) -> None:
        """Release the lock so the message is available again at once; its ``delivery_count``
        grows on the next delivery. Raises `MessageLockLost` as `complete_message`."""

    @abc.abstractmethod
    async def dead_letter_message(
        self,
        message: ReceivedMessage,
        *,
        reason: str | None = None,
        description: str | None = None,
    ) -> None:
        """Move the message to its queue's dead-letter queue with ``reason``/``description``;
        body, attributes, session id and message id survive. Raises `MessageLockLost` as
        `complete_message`."""

    @abc.abstractmethod
    async def renew_message_lock(self, message: ReceivedMessage) -> datetime:
        """Extend the message's lock by the queue's lock duration; returns the new expiry.
        Raises `MessageLockLost` if it already expired or was settled."""

    async def complete_messages(self, messages: Sequence[ReceivedMessage]) -> None:
        """Complete each message; one request where the provider batches.

        Every message is checked before any is settled (a bad one: `ValidationError`, nothing
        settled). If some cannot be completed, `BatchSettleError` names the settled ones in
        ``settled`` and pairs each other message id with its error in ``failed``.
        """
        await settle_each(self.complete_message, messages)

    async def abandon_messages(self, messages: Sequence[ReceivedMessage]) -> None:
        """Abandon each message (available again at once). Raises as `complete_messages`."""
        await settle_each(self.abandon_message, messages)

    async def release_messages(self, messages: Sequence[ReceivedMessage]) -> None:
        """Give back messages that no handler started: available again at once, and where
        ``capabilities.release`` their delivery is not counted, as if never received
        (elsewhere this is `abandon_messages`).

        For a consumer that received more than it could handle (a stop, a full buffer).
        Where ``capabilities.release``, a message whose lock lapsed is still released so
        unless it was delivered again meanwhile. Raises as `complete_messages`.
        """
        await self.abandon_messages(messages)

    # -- looking without receiving -------------------------------------------------------

    async def peek_messages(
        self,
        queue: QueueName | str,
        *,
        max_messages: int = 10,
        from_sequence_number: int | None = None,
    ) -> list[ReceivedMessage]:
        """Up to ``max_messages`` messages of the queue in sequence order (from
        ``from_sequence_number`` on, inclusive), ready or locked, without locking them or
        counting a delivery. Works on ``queue.dead_letter`` (reasons included) and on session
        queues (every session).

        A peeked message has ``receipt=None``, its ``delivery_count`` is the number of
        deliveries so far (0 if none), and it cannot be settled. `UnsupportedOperation` where
        the adapter lacks ``peek`` (it is never emulated with a receive).
        """
        raise UnsupportedOperation(f"{type(self).__name__} cannot peek messages")

    async def get_queue_statistics(self, queue: QueueName | str) -> QueueStatistics:
        """Counts of active, locked, scheduled and dead-lettered messages (``None`` where the
        adapter cannot count one). `UnsupportedOperation` where it lacks ``statistics``."""
        raise UnsupportedOperation(f"{type(self).__name__} cannot count messages")

    async def iter_messages(
        self, queue: QueueName | str, *, timeout: Timeout = None
    ) -> AsyncIterator[ReceivedMessage]:
        """Messages of a queue without sessions as they arrive, until none arrives within
        ``timeout``. Settle each one through this client."""
        while (message := await self.receive_message(queue, timeout=timeout)) is not None:
            yield message

    # -- sessions ---------------------------------------------------------------------------

    @abc.abstractmethod
    async def accept_session(
        self,
        queue: QueueName | str,
        session_id: str | None = None,
        *,
        timeout: Timeout = None,
    ) -> SessionClient | None:
        """Lock a session of a session queue.

        With ``session_id``: that session (empty or not), or `SessionLocked` at once if another
        holder has it. Without: the next session with a message ready to deliver, waiting up
        to ``timeout``; ``None`` if none came. Raises `ValidationError` on a queue without
        sessions and `UnsupportedOperation` where the adapter lacks sessions.
        """


async def settle_each(
    settle: Callable[[ReceivedMessage], Awaitable[None]], messages: Sequence[ReceivedMessage]
) -> None:
    """Settle ``messages`` one by one with ``settle``; collect failures into one
    `BatchSettleError` (the default batch settlement of both ports)."""
    settled: list[str] = []
    failed: list[tuple[str, QueueError]] = []
    for message in received_sequence(messages):
        try:
            await settle(message)
        except QueueError as exc:
            failed.append((message.message_id, exc))
        else:
            settled.append(message.message_id)
    if failed:
        raise batch_settle_error(settled, failed)


def batch_settle_error(
    settled: Sequence[str], failed: Sequence[tuple[str, QueueError]]
) -> BatchSettleError:
    """The `BatchSettleError` for a batch of which ``failed`` were not settled."""
    reasons = "; ".join(f"{mid}: {type(e).__name__}: {e.message}" for mid, e in failed[:5])
    more = f" (and {len(failed) - 5} more)" if len(failed) > 5 else ""
    return BatchSettleError(
        f"{len(failed)} of {len(settled) + len(failed)} messages were not settled: {reasons}{more}",
        settled=settled,
        failed=failed,
    )
