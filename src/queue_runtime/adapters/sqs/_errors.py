"""botocore errors -> queue-runtime errors, at the adapter's edge.

One table (`ERROR_CODES`) maps every error code an SQS call can answer with to a class of our
tree and whether retrying may help; `translate_errors` wraps every boto3 call and raises the
mapped error with the original chained. SQS's JSON protocol reports both the shape name
(``QueueDoesNotExist``) and the legacy query code (``AWS.SimpleQueueService.NonExistentQueue``);
both are in the table. A test checks that every error shape of botocore's SQS model is mapped.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any, Final

from botocore import exceptions as boto

from ..._errors import (
    ConfigurationError,
    ConnectionError,
    MessageLockLost,
    ProviderError,
    QueueAlreadyExists,
    QueueError,
    QueueNotFound,
    TimeoutError,
    UnsupportedOperation,
    ValidationError,
)

__all__ = ["ERROR_CODES", "entry_error", "map_error", "translate_errors", "unknown_outcome"]

_Mapping = tuple[type[QueueError], bool | None]

_QUEUE_NOT_FOUND: Final[_Mapping] = (QueueNotFound, False)
_LOCK_LOST: Final[_Mapping] = (MessageLockLost, False)
_INVALID: Final[_Mapping] = (ValidationError, False)
_CONFIGURATION: Final[_Mapping] = (ConfigurationError, False)
_BUSY: Final[_Mapping] = (ProviderError, True)

#: SQS error code -> (our error class, retryable; None keeps the class's default).
ERROR_CODES: Final[dict[str, _Mapping]] = {
    # the queue
    "QueueDoesNotExist": _QUEUE_NOT_FOUND,
    "AWS.SimpleQueueService.NonExistentQueue": _QUEUE_NOT_FOUND,
    "ResourceNotFoundException": _QUEUE_NOT_FOUND,
    "QueueNameExists": (QueueAlreadyExists, False),
    "QueueAlreadyExists": (QueueAlreadyExists, False),
    # a queue deleted less than 60 s ago cannot be created again yet
    "QueueDeletedRecently": _BUSY,
    "AWS.SimpleQueueService.QueueDeletedRecently": _BUSY,
    "PurgeQueueInProgress": _BUSY,
    "AWS.SimpleQueueService.PurgeQueueInProgress": _BUSY,
    # receipts: the lock is gone (expired, settled, or superseded by a later receive)
    "ReceiptHandleIsInvalid": _LOCK_LOST,
    "InvalidIdFormat": _LOCK_LOST,
    "MessageNotInflight": _LOCK_LOST,
    "AWS.SimpleQueueService.MessageNotInflight": _LOCK_LOST,
    # bad input (ours is checked first: these mean SQS disagreed with the check)
    "InvalidParameterValue": _INVALID,
    "InvalidParameterCombination": _INVALID,
    "MissingParameter": _INVALID,
    "InvalidAttributeName": _INVALID,
    "InvalidAttributeValue": _INVALID,
    "InvalidMessageContents": _INVALID,
    "InvalidAddress": _INVALID,
    "ValidationError": _INVALID,
    "ValidationException": _INVALID,
    "MalformedQueryString": _INVALID,
    "InvalidQueryParameter": _INVALID,
    "InvalidAction": _INVALID,
    "SerializationException": _INVALID,
    "BatchEntryIdsNotDistinct": _INVALID,
    "AWS.SimpleQueueService.BatchEntryIdsNotDistinct": _INVALID,
    "BatchRequestTooLong": _INVALID,
    "AWS.SimpleQueueService.BatchRequestTooLong": _INVALID,
    "EmptyBatchRequest": _INVALID,
    "AWS.SimpleQueueService.EmptyBatchRequest": _INVALID,
    "InvalidBatchEntryId": _INVALID,
    "AWS.SimpleQueueService.InvalidBatchEntryId": _INVALID,
    "TooManyEntriesInBatchRequest": _INVALID,
    "AWS.SimpleQueueService.TooManyEntriesInBatchRequest": _INVALID,
    "UnsupportedOperation": (UnsupportedOperation, False),
    "AWS.SimpleQueueService.UnsupportedOperation": (UnsupportedOperation, False),
    # limits and throttling: wait and try again
    "OverLimit": _BUSY,
    "RequestThrottled": _BUSY,
    "ThrottlingException": _BUSY,
    "Throttling": _BUSY,
    "ThrottledException": _BUSY,
    "TooManyRequestsException": _BUSY,
    "RequestLimitExceeded": _BUSY,
    "SlowDown": _BUSY,
    "KmsThrottled": _BUSY,
    "KMS.ThrottlingException": _BUSY,
    # credentials, permissions, encryption setup: the configuration must change
    "InvalidSecurity": _CONFIGURATION,
    "AccessDenied": _CONFIGURATION,
    "AccessDeniedException": _CONFIGURATION,
    "InvalidClientTokenId": _CONFIGURATION,
    "UnrecognizedClientException": _CONFIGURATION,
    "SignatureDoesNotMatch": _CONFIGURATION,
    "IncompleteSignature": _CONFIGURATION,
    "MissingAuthenticationToken": _CONFIGURATION,
    "InvalidAccessKeyId": _CONFIGURATION,
    "ExpiredToken": _CONFIGURATION,
    "ExpiredTokenException": _CONFIGURATION,
    "RequestExpired": _CONFIGURATION,
    "AuthFailure": _CONFIGURATION,
    "OptInRequired": _CONFIGURATION,
    "NotAuthorized": _CONFIGURATION,
    "KmsAccessDenied": _CONFIGURATION,
    "KmsDisabled": _CONFIGURATION,
    "KmsInvalidKeyUsage": _CONFIGURATION,
    "KmsInvalidState": _CONFIGURATION,
    "KmsNotFound": _CONFIGURATION,
    "KmsOptInRequired": _CONFIGURATION,
    "KMS.AccessDeniedException": _CONFIGURATION,
    "KMS.DisabledException": _CONFIGURATION,
    "KMS.InvalidKeyUsageException": _CONFIGURATION,
    "KMS.InvalidStateException": _CONFIGURATION,
    "KMS.NotFoundException": _CONFIGURATION,
    "KMS.OptInRequired": _CONFIGURATION,
    # the service itself
    "InternalError": _BUSY,
    "InternalFailure": _BUSY,
    "ServiceUnavailable": _BUSY,
    "ServiceUnavailableException": _BUSY,
    "Unavailable": _BUSY,
    "RequestTimeout": (TimeoutError, True),
    "RequestTimeoutException": (TimeoutError, True),
}

# botocore's own (non-service) errors, most specific first
_BOTOCORE_ERRORS: Final[tuple[tuple[type[Exception], _Mapping], ...]] = (
    (boto.ConnectTimeoutError, (TimeoutError, True)),
    (boto.ReadTimeoutError, (TimeoutError, True)),
    (boto.EndpointConnectionError, (ConnectionError, True)),
    (boto.ConnectionClosedError, (ConnectionError, True)),
    (boto.ProxyConnectionError, (ConnectionError, True)),
    (boto.SSLError, (ConnectionError, True)),
    (boto.ConnectionError, (ConnectionError, True)),
    (boto.HTTPClientError, (ConnectionError, True)),
    (boto.NoCredentialsError, _CONFIGURATION),
    (boto.PartialCredentialsError, _CONFIGURATION),
    (boto.CredentialRetrievalError, _CONFIGURATION),
    (boto.NoRegionError, _CONFIGURATION),
    (boto.InvalidRegionError, _CONFIGURATION),
    (boto.ProfileNotFound, _CONFIGURATION),
    (boto.ConfigNotFound, _CONFIGURATION),
    (boto.ConfigParseError, _CONFIGURATION),
    (boto.InvalidConfigError, _CONFIGURATION),
    (boto.UnknownCredentialError, _CONFIGURATION),
    (boto.TokenRetrievalError, _CONFIGURATION),
    (boto.SSOError, _CONFIGURATION),
    (boto.UnknownEndpointError, _CONFIGURATION),
    (boto.ParamValidationError, _INVALID),
    (boto.ChecksumError, (ProviderError, True)),
)

#: Operations whose ``InvalidParameterValue`` about a receipt handle means a lost lock.
_SETTLING: Final = frozenset(
    {
        "DeleteMessage",
        "DeleteMessageBatch",
        "ChangeMessageVisibility",
        "ChangeMessageVisibilityBatch",
    }
)


def map_error(exc: Exception, operation: str) -> QueueError:
    """The queue-runtime error for a botocore ``exc`` raised by SQS ``operation``.

    The caller raises it ``from exc``. Unknown service codes become `ProviderError`,
    retryable when the HTTP status was a 5xx.
    """
    if isinstance(exc, boto.ClientError):
        return _client_error(exc, operation)
    # a request that may have reached SQS and whose answer never came (read timeout,
    # connection closed mid-request): SQS may have done it
    unknown = isinstance(exc, boto.HTTPClientError)
    suffix = " (outcome unknown: SQS may have done it)" if unknown else ""
    for kind, (cls, retryable) in _BOTOCORE_ERRORS:
        if isinstance(exc, kind):
            message = f"SQS {operation}: {exc}{suffix}"
            return cls(message, retryable=retryable, outcome_unknown=unknown)
    return ProviderError(f"SQS {operation}: {type(exc).__name__}: {exc}")


def unknown_outcome(exc: BaseException) -> bool:
    """Whether a call that raised ``exc`` may still have taken effect in SQS: cancelled while
    it ran, or its answer was lost."""
    return isinstance(exc, asyncio.CancelledError) or (
        isinstance(exc, QueueError) and exc.outcome_unknown
    )


def entry_error(operation: str, entry: Mapping[str, Any]) -> QueueError:
    """Our error for one ``Failed`` entry of an SQS batch answer (SQS refused that entry)."""
    code = str(entry.get("Code") or "")
    text = str(entry.get("Message") or "")
    message = f"SQS {operation}: {code or 'error'}: {text}".rstrip(": ")
    cls, retryable = ERROR_CODES.get(code) or (ProviderError, not entry.get("SenderFault", True))
    if cls is ValidationError and operation in _SETTLING and "receipt" in text.lower():
        return MessageLockLost(message)
    return cls(message, retryable=retryable)


def code_mapping(code: str) -> _Mapping | None:
    """The table entry for an SQS error code (None when unmapped)."""
    return ERROR_CODES.get(code)


def _client_error(exc: boto.ClientError, operation: str) -> QueueError:
    error = exc.response.get("Error", {})
    code = str(error.get("Code") or "")
    query_code = str(error.get("QueryErrorCode") or "")
    text = str(error.get("Message") or "")
    status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0)
    message = f"SQS {operation}: {code or 'error'}: {text}"
    mapping = ERROR_CODES.get(code) or ERROR_CODES.get(query_code)
    if mapping is None:
        return ProviderError(message, retryable=status >= 500)
    cls, retryable = mapping
    if cls is ValidationError and operation in _SETTLING and "receipt" in text.lower():
        # "Value ... for parameter ReceiptHandle is invalid. Reason: The receipt handle has
        # expired." comes as InvalidParameterValue
        return MessageLockLost(message)
    return cls(message, retryable=retryable)


@contextmanager
def translate_errors(operation: str) -> Iterator[None]:
    """Re-raise any botocore error of SQS ``operation`` as ours, the original chained."""
    try:
        yield
    except QueueError:
        raise
    except (boto.BotoCoreError, boto.ClientError) as exc:
        raise map_error(exc, operation) from exc
