"""The two ports every adapter implements: `QueueClient` and `SessionClient`.

Business code depends on these and on the domain types only. Each method documents what it
guarantees and what it raises; the contract suite (`queue_runtime.testing.contract`) proves
that an adapter keeps those promises. Every method may also raise `ClientClosed` after close,
and `ConnectionError`/`TimeoutError`/`ProviderError` when the provider fails.
"""

from __future__ import annotations

import abc
from collections.abc import Sequence
from datetime import datetime, timedelta
from types import TracebackType
from typing import Self

from ._capabilities import Capabilities
from ._messages import Message, ReceivedMessage
from ._names import MessageId, QueueName
from .telemetry import instrument_client_class

__all__ = ["QueueClient", "SessionClient", "Timeout"]

#: Seconds or a timedelta; ``0`` means do not wait, ``None`` the adapter's default.
Timeout = float | timedelta | None

DEFAULT_MAX_DELIVERY_COUNT = 10
DEFAULT_LOCK_DURATION = timedelta(seconds=30)


class SessionClient(abc.ABC):
    """Exclusive hold on one session of a queue: its messages arrive in send order.

    The session lock lasts the queue's ``lock_duration`` and is never renewed by the client
    itself. Once it lapses every operation raises `SessionLockLost`, and the session's
    unsettled messages become available again (to whoever accepts the session next).
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
    ``aclose``); creating a client does no I/O, and a closed client refuses further use."""

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
