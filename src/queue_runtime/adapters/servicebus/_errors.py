"""azure-servicebus / azure-core exceptions -> queue-runtime errors, at the adapter's edge.

One table (`ERROR_TABLE`) names every exception class the SDK can raise (its own
``azure.servicebus.exceptions``, the ``azure.core.exceptions`` its HTTP administration and
credentials raise, the pure-Python AMQP layer's ``_pyamqp.error`` and azure-identity's) with
the class of our tree it becomes and whether retrying may help. `translate` wraps every SDK
call: the mapped error is raised with the original chained, and a test walks the SDK's
modules to prove no exception class is missing from the table.
"""

from __future__ import annotations

import builtins
from types import TracebackType
from typing import Final, Literal

from azure.core import exceptions as core
from azure.servicebus import exceptions as sb
from azure.servicebus._pyamqp import error as amqp

from ..._errors import (
    ConfigurationError,
    ConnectionError,
    MessageLockLost,
    ProviderError,
    QueueAlreadyExists,
    QueueError,
    QueueNotFound,
    SessionLocked,
    SessionLockLost,
    TimeoutError,
    ValidationError,
)
from ..._logging import get_logger

__all__ = ["ERROR_TABLE", "OUTCOME_UNKNOWN", "SERVER_BUSY_RETRY_AFTER", "map_error", "translate"]

_log = get_logger("adapters.servicebus")

#: Seconds to wait after ``ServiceBusServerBusyError``: Microsoft's guidance (and the .NET
#: client) is to back off 10 seconds when the service says it is busy.
SERVER_BUSY_RETRY_AFTER: Final = 10.0

_Mapping = tuple[type[QueueError], bool | None]

_CONFIG: Final[_Mapping] = (ConfigurationError, False)
_CONNECTION: Final[_Mapping] = (ConnectionError, True)
_TIMEOUT: Final[_Mapping] = (TimeoutError, True)
_LOCK_LOST: Final[_Mapping] = (MessageLockLost, False)
_PROVIDER: Final[_Mapping] = (ProviderError, False)
_PROVIDER_RETRY: Final[_Mapping] = (ProviderError, True)

#: SDK exception class -> (our error class, retryable; None keeps the class's default).
#: Looked up along the raised exception's MRO, so the most specific entry wins.
ERROR_TABLE: Final[dict[type[BaseException], _Mapping]] = {
    # azure.servicebus.exceptions
    sb.ServiceBusError: _PROVIDER,
    sb.ServiceBusConnectionError: _CONNECTION,
    sb.ServiceBusCommunicationError: _CONNECTION,
    sb.ServiceBusAuthenticationError: _CONFIG,
    sb.ServiceBusAuthorizationError: _CONFIG,
    sb.OperationTimeoutError: _TIMEOUT,
    sb.MessageSizeExceededError: (ValidationError, False),
    sb.MessageAlreadySettled: _LOCK_LOST,
    sb.MessageLockLostError: _LOCK_LOST,
    # only settlement and renewal name a message: a message the service no longer has
    sb.MessageNotFoundError: _LOCK_LOST,
    sb.SessionLockLostError: (SessionLockLost, False),
    sb.SessionCannotBeLockedError: (SessionLocked, True),
    sb.MessagingEntityNotFoundError: (QueueNotFound, False),
    sb.MessagingEntityAlreadyExistsError: (QueueAlreadyExists, False),
    sb.MessagingEntityDisabledError: _PROVIDER_RETRY,
    # the entity is full: receiving from it makes room
    sb.ServiceBusQuotaExceededError: _PROVIDER_RETRY,
    sb.ServiceBusServerBusyError: _PROVIDER_RETRY,
    sb.AutoLockRenewFailed: _PROVIDER,
    sb.AutoLockRenewTimeout: _PROVIDER,
    # azure.core.exceptions (administration over HTTP, credentials)
    core.AzureError: _PROVIDER,
    core.ServiceRequestError: _CONNECTION,
    core.ServiceRequestTimeoutError: _TIMEOUT,
    core.ServiceResponseError: _CONNECTION,
    core.ServiceResponseTimeoutError: _TIMEOUT,
    core.IncompleteReadError: _CONNECTION,
    core.HttpResponseError: _PROVIDER,  # retryable by status, see _http_retryable
    core.ODataV4Error: _PROVIDER,
    core.ClientAuthenticationError: _CONFIG,
    core.ResourceNotFoundError: (QueueNotFound, False),
    core.ResourceExistsError: (QueueAlreadyExists, False),
    core.ResourceModifiedError: _PROVIDER_RETRY,
    core.ResourceNotModifiedError: _PROVIDER,
    core.TooManyRedirectsError: _PROVIDER,
    core.DecodeError: _PROVIDER,
    core.StreamConsumedError: _PROVIDER,
    core.StreamClosedError: _CONNECTION,
    core.ResponseNotReadError: _PROVIDER,
    core.SerializationError: _PROVIDER,
    core.DeserializationError: _PROVIDER,
    # the SDK's AMQP layer (normally translated by the SDK; mapped in case one slips through)
    amqp.AMQPException: _PROVIDER,
    amqp.AMQPDecodeError: _PROVIDER,
    amqp.AMQPConnectionError: _CONNECTION,
    amqp.AMQPConnectionRedirect: _CONNECTION,
    amqp.AMQPSessionError: _CONNECTION,
    amqp.AMQPLinkError: _CONNECTION,
    amqp.AMQPLinkRedirect: _CONNECTION,
    amqp.AuthenticationException: _CONFIG,
    amqp.TokenExpired: _CONFIG,
    amqp.TokenAuthFailure: _CONFIG,
    amqp.MessageException: _PROVIDER,
    amqp.MessageSendFailed: _PROVIDER_RETRY,
    amqp.MessageSettlementUnconfirmed: _TIMEOUT,
    # what the SDK raises from Python itself
    builtins.TimeoutError: _TIMEOUT,
    builtins.ConnectionError: _CONNECTION,
    OSError: _CONNECTION,
    ValueError: _PROVIDER,
    TypeError: _PROVIDER,
    RuntimeError: _PROVIDER,
    KeyError: _PROVIDER,
    AttributeError: _PROVIDER,
}


def _register_identity_errors() -> None:
    """azure-identity's own exceptions (both are ClientAuthenticationError subclasses)."""
    try:
        from azure.identity import AuthenticationRequiredError, CredentialUnavailableError
    except ImportError:  # pragma: no cover - azure-identity is part of the azure extra
        return
    ERROR_TABLE[CredentialUnavailableError] = _CONFIG
    ERROR_TABLE[AuthenticationRequiredError] = _CONFIG


_register_identity_errors()

#: Errors after which the provider may or may not have done what was asked.
OUTCOME_UNKNOWN: Final = (TimeoutError, ConnectionError)


def _mapping(exc: BaseException) -> _Mapping:
    for kind in type(exc).__mro__:
        found = ERROR_TABLE.get(kind)
        if found is not None:
            return found
    return _PROVIDER


def _http_retryable(exc: core.HttpResponseError) -> bool:
    status = getattr(exc, "status_code", None) or 0
    return status == 429 or status >= 500


def map_error(exc: BaseException, operation: str, subject: str = "") -> QueueError:
    """The queue-runtime error for SDK exception ``exc`` raised by ``operation``.

    ``subject`` names what it was about (queue, session, message id; never a secret). The
    caller raises the result ``from exc``.
    """
    cls, retryable = _mapping(exc)
    if isinstance(exc, core.HttpResponseError) and cls is ProviderError:
        retryable = _http_retryable(exc)
    elif isinstance(exc, sb.ServiceBusError) and cls is ProviderError and retryable is False:
        retryable = bool(getattr(exc, "_retryable", False))
    where = f"Service Bus {operation}" + (f" ({subject})" if subject else "")
    text = _describe(exc)
    unknown = cls in OUTCOME_UNKNOWN and operation in _MUTATING
    if unknown:
        text += "; the outcome is unknown: the provider may have done it"
    retry_after = SERVER_BUSY_RETRY_AFTER if isinstance(exc, sb.ServiceBusServerBusyError) else None
    return cls(
        f"{where}: {text}", retryable=retryable, retry_after=retry_after, outcome_unknown=unknown
    )


#: Operations that change something at the provider (an unknown outcome matters for these).
_MUTATING: Final = frozenset(
    {
        "send",
        "complete",
        "abandon",
        "dead-letter",
        "renew lock",
        "renew session lock",
        "set session state",
        "create queue",
        "delete queue",
    }
)


def _describe(exc: BaseException) -> str:
    # SDK messages name entities and conditions, never keys: the SAS key is only ever used
    # to sign tokens locally; tokens are not part of any SDK exception text.
    try:
        message = str(exc).strip() or type(exc).__name__
    except Exception:  # an SDK exception whose __str__ itself fails
        message = type(exc).__name__
    return f"{type(exc).__name__}: {message[:500]}"


class translate:  # noqa: N801 - used like a function: ``with translate("send", queue):``
    """Context manager: re-raise any non-queue-runtime exception as ours, the original chained.

    Lock losses are logged at WARNING, other failures at DEBUG (ids only, never bodies).
    Cancellation passes through untouched (the caller decides what an unknown outcome means).
    """

    __slots__ = ("_operation", "_subject")

    def __init__(self, operation: str, subject: str = "") -> None:
        self._operation = operation
        self._subject = subject

    def __enter__(self) -> None:
        return None

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> Literal[False]:
        if exc is None or not isinstance(exc, Exception) or isinstance(exc, QueueError):
            return False
        error = map_error(exc, self._operation, self._subject)
        if isinstance(error, (MessageLockLost, SessionLockLost)):
            _log.warning("%s", error.message)
        else:
            _log.debug("%s", error.message)
        raise error from exc
