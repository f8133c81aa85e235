"""The one exception tree every adapter raises; no provider exception crosses the port.

    QueueError                      retryable  meaning
    ├── ValidationError             no         bad name, body, session id, attribute or argument
    ├── ConfigurationError          no         bad config, missing extra, bad credentials format
    │   └── QueueAlreadyExists      no         create_queue met the queue with other settings
    ├── QueueNotFound               no         the queue (or its DLQ) does not exist
    ├── MessageLockLost             no         settling after the lock expired or after settlement
    ├── SessionLockLost             no         the session lock lapsed or the session was closed
    ├── SessionLocked               yes        another holder has that session right now
    ├── UnsupportedOperation        no         the adapter cannot do this (see capabilities)
    ├── ClientClosed                no         the client or session was used after close
    ├── ConnectionError             yes        the provider could not be reached
    ├── TimeoutError                yes        the provider did not answer in time
    └── ProviderError               varies     anything else the provider said (original chained)
        └── BatchSendError          varies     part of a batch was not sent; says which

The runtime reads ``exc.retryable`` (and ``exc.retry_after`` when the provider gave one)
instead of walking ``isinstance`` chains.
"""

from __future__ import annotations

from collections.abc import Sequence

__all__ = [
    "BatchSendError",
    "ClientClosed",
    "ConfigurationError",
    "ConnectionError",
    "MessageLockLost",
    "ProviderError",
    "QueueAlreadyExists",
    "QueueError",
    "QueueNotFound",
    "SessionLockLost",
    "SessionLocked",
    "TimeoutError",
    "UnsupportedOperation",
    "ValidationError",
]


class QueueError(Exception):
    """Root of every error queue-runtime raises."""

    #: Whether the same call may succeed if tried again later.
    retryable: bool = False

    def __init__(
        self,
        message: str,
        *,
        retryable: bool | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        if retryable is not None:
            self.retryable = retryable
        #: Seconds the provider asked us to wait before retrying, when it said so.
        self.retry_after = retry_after


class ValidationError(QueueError, ValueError):
    """The input breaks a rule of the contract or of the provider; nothing was changed."""


class ConfigurationError(QueueError):
    """The configuration is invalid, incomplete, or needs an extra that is not installed."""


class QueueAlreadyExists(ConfigurationError):
    """``create_queue`` found the queue already defined with different settings."""


class QueueNotFound(QueueError):
    """The named queue does not exist."""


class MessageLockLost(QueueError):
    """The message's lock expired, or it was already settled; the settlement did nothing."""


class SessionLockLost(QueueError):
    """The session lock lapsed (or the session was closed); accept the session again."""


class SessionLocked(QueueError):
    """Another holder has the session locked right now."""

    retryable = True


class UnsupportedOperation(QueueError):
    """The adapter cannot perform this operation; see ``client.capabilities``."""


class ClientClosed(QueueError):
    """The client or session was used after it was closed (or before it was opened)."""


class ConnectionError(QueueError):
    """The provider could not be reached; trying again may succeed."""

    retryable = True


class TimeoutError(QueueError):
    """The provider did not answer in time; trying again may succeed."""

    retryable = True


class ProviderError(QueueError):
    """Any other failure reported by the provider; the original exception is chained."""


class BatchSendError(ProviderError):
    """Some messages of a batch were not sent; ``failed`` names them, ``sent`` the others."""

    def __init__(
        self,
        message: str,
        *,
        sent: Sequence[str],
        failed: Sequence[tuple[str, str]],
        retryable: bool | None = None,
    ) -> None:
        super().__init__(message, retryable=retryable)
        #: Message ids that were accepted by the provider.
        self.sent: tuple[str, ...] = tuple(sent)
        #: ``(message_id, reason)`` for each message that was not sent.
        self.failed: tuple[tuple[str, str], ...] = tuple(failed)
