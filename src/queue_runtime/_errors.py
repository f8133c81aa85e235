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
    ├── ProviderError               varies     anything else the provider said (original chained)
    │   └── BatchSendError          varies     part of a batch was not sent; says which
    └── BatchSettleError            varies     part of a batch was not settled; says which

The runtime reads ``exc.retryable`` (and ``exc.retry_after`` when the provider gave one)
instead of walking ``isinstance`` chains. ``exc.outcome_unknown`` is true when the call may
have taken effect although it failed (cancelled after it was sent, reply lost, timed out):
a settlement whose outcome is unknown has spent its receipt, and a send may have stored the
message (re-send it with the same message id where the provider deduplicates).
"""

from __future__ import annotations

from collections.abc import Sequence

__all__ = [
    "BatchSendError",
    "BatchSettleError",
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
        outcome_unknown: bool = False,
    ) -> None:
        super().__init__(message)
        self.message = message
        if retryable is not None:
            self.retryable = retryable
        #: Seconds the provider asked us to wait before retrying, when it said so.
        self.retry_after = retry_after
        #: The call may have taken effect although it raised (see the module docstring).
        self.outcome_unknown = outcome_unknown


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
    """Part of a batch was not sent: ``sent`` names what the provider accepted, ``failed``
    what it refused, ``unknown`` what may or may not have been stored (reply lost)."""

    def __init__(
        self,
        message: str,
        *,
        sent: Sequence[str],
        failed: Sequence[tuple[str, str]],
        unknown: Sequence[str] = (),
        retryable: bool | None = None,
    ) -> None:
        super().__init__(message, retryable=retryable, outcome_unknown=bool(unknown))
        #: Message ids that were accepted by the provider.
        self.sent: tuple[str, ...] = tuple(sent)
        #: ``(message_id, reason)`` for each message that was not sent.
        self.failed: tuple[tuple[str, str], ...] = tuple(failed)
        #: Message ids whose outcome is unknown: they may have been stored.
        self.unknown: tuple[str, ...] = tuple(unknown)


class BatchSettleError(QueueError):
    """Part of a batch settlement failed: ``settled`` names the messages settled, ``failed``
    pairs each other message id with its error, ``unknown`` those that may have been settled.

    Retryable when every failure is: settle the failed messages again (not the unknown ones,
    whose receipts are spent).
    """

    def __init__(
        self,
        message: str,
        *,
        settled: Sequence[str],
        failed: Sequence[tuple[str, QueueError]],
    ) -> None:
        failures = tuple(failed)
        super().__init__(
            message,
            retryable=bool(failures) and all(error.retryable for _, error in failures),
            outcome_unknown=any(error.outcome_unknown for _, error in failures),
        )
        #: Message ids settled as asked.
        self.settled: tuple[str, ...] = tuple(settled)
        #: ``(message_id, error)`` for each message that was not (or maybe not) settled.
        self.failed: tuple[tuple[str, QueueError], ...] = failures
        #: Message ids whose settlement may have happened (their receipts are spent).
        self.unknown: tuple[str, ...] = tuple(mid for mid, e in failures if e.outcome_unknown)
