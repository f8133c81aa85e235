"""botocore errors -> queue-runtime errors: every SQS error code is mapped, the original is
chained, and retryable failures say so."""

from __future__ import annotations

from typing import Any

import botocore.session
import pytest
from botocore import exceptions as boto

import queue_runtime as qr
from queue_runtime.adapters.sqs import SqsQueueClient
from queue_runtime.adapters.sqs._errors import ERROR_CODES, entry_error, map_error, translate_errors


def client_error(code: str, message: str = "", *, query_code: str = "", status: int = 400) -> Any:
    error = {"Code": code, "Message": message}
    if query_code:
        error["QueryErrorCode"] = query_code
    return boto.ClientError(
        {"Error": error, "ResponseMetadata": {"HTTPStatusCode": status}},  # type: ignore[typeddict-item]
        "SendMessage",
    )


def sqs_error_codes() -> list[str]:
    """Every error shape of botocore's SQS service model (what SQS can answer with)."""
    model = botocore.session.get_session().get_service_model("sqs")
    codes = []
    for shape in model.error_shapes:
        codes.append(shape.name)
        code = (shape.metadata.get("error") or {}).get("code")
        if code:
            codes.append(code)
    return codes


@pytest.mark.parametrize("code", sqs_error_codes())
def test_every_error_code_of_the_sqs_model_is_mapped(code: str) -> None:
    assert code in ERROR_CODES, f"SQS error code {code!r} has no mapping in ERROR_CODES"
    cls, _ = ERROR_CODES[code]
    assert issubclass(cls, qr.QueueError)
    assert cls is not qr.QueueError


@pytest.mark.parametrize(
    ("code", "query_code", "expected", "retryable"),
    [
        ("AWS.SimpleQueueService.NonExistentQueue", "QueueDoesNotExist", qr.QueueNotFound, False),
        ("QueueDoesNotExist", "", qr.QueueNotFound, False),
        ("QueueAlreadyExists", "QueueNameExists", qr.QueueAlreadyExists, False),
        ("ReceiptHandleIsInvalid", "", qr.MessageLockLost, False),
        ("AWS.SimpleQueueService.MessageNotInflight", "", qr.MessageLockLost, False),
        ("InvalidParameterValue", "", qr.ValidationError, False),
        ("InvalidMessageContents", "", qr.ValidationError, False),
        ("AWS.SimpleQueueService.UnsupportedOperation", "", qr.UnsupportedOperation, False),
        ("RequestThrottled", "", qr.ProviderError, True),
        ("ThrottlingException", "", qr.ProviderError, True),
        ("KMS.ThrottlingException", "", qr.ProviderError, True),
        ("OverLimit", "", qr.ProviderError, True),
        ("InvalidClientTokenId", "", qr.ConfigurationError, False),
        ("AccessDenied", "", qr.ConfigurationError, False),
        ("KmsAccessDenied", "", qr.ConfigurationError, False),
        ("ServiceUnavailable", "", qr.ProviderError, True),
        ("RequestTimeout", "", qr.TimeoutError, True),
    ],
)
def test_codes_map_to_our_errors(
    code: str, query_code: str, expected: type[qr.QueueError], retryable: bool
) -> None:
    error = map_error(client_error(code, "it failed", query_code=query_code), "SendMessage")
    assert type(error) is expected
    assert error.retryable is retryable
    assert code in str(error)


def test_a_bad_receipt_while_settling_is_a_lost_lock() -> None:
    text = "Value x for parameter ReceiptHandle is invalid. Reason: The receipt handle has expired."
    exc = client_error("InvalidParameterValue", text)
    assert type(map_error(exc, "DeleteMessage")) is qr.MessageLockLost
    assert type(map_error(exc, "ChangeMessageVisibility")) is qr.MessageLockLost
    assert type(map_error(exc, "SendMessage")) is qr.ValidationError


def test_unknown_codes_are_provider_errors_retryable_on_5xx() -> None:
    assert type(map_error(client_error("Brand.New", status=400), "X")) is qr.ProviderError
    assert map_error(client_error("Brand.New", status=400), "X").retryable is False
    assert map_error(client_error("Brand.New", status=503), "X").retryable is True


@pytest.mark.parametrize(
    ("exc", "expected", "retryable"),
    [
        (boto.EndpointConnectionError(endpoint_url="http://x"), qr.ConnectionError, True),
        (boto.ConnectionClosedError(endpoint_url="http://x"), qr.ConnectionError, True),
        (boto.ConnectTimeoutError(endpoint_url="http://x"), qr.TimeoutError, True),
        (boto.ReadTimeoutError(endpoint_url="http://x"), qr.TimeoutError, True),
        (boto.NoCredentialsError(), qr.ConfigurationError, False),
        (boto.PartialCredentialsError(provider="env", cred_var="x"), qr.ConfigurationError, False),
        (boto.NoRegionError(), qr.ConfigurationError, False),
        (boto.ProfileNotFound(profile="p"), qr.ConfigurationError, False),
        (boto.ParamValidationError(report="bad"), qr.ValidationError, False),
        (
            boto.ChecksumError(checksum_type="md5", expected_checksum="a", actual_checksum="b"),
            qr.ProviderError,
            True,
        ),
    ],
)
def test_botocore_errors_map_to_our_errors(
    exc: Exception, expected: type[qr.QueueError], retryable: bool
) -> None:
    error = map_error(exc, "ReceiveMessage")
    assert type(error) is expected
    assert error.retryable is retryable


def test_translate_errors_chains_the_original() -> None:
    original = client_error("ReceiptHandleIsInvalid")
    with pytest.raises(qr.MessageLockLost) as caught, translate_errors("DeleteMessage"):
        raise original
    assert caught.value.__cause__ is original


@pytest.mark.asyncio
async def test_an_unreachable_endpoint_is_a_retryable_connection_error() -> None:
    import socket

    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    config = qr.AwsSqsConfig(
        region="us-east-1",
        endpoint_url=f"http://127.0.0.1:{port}",
        access_key_id="testing",
        secret_access_key="testing",
    )
    async with SqsQueueClient(config) as client:
        with pytest.raises(qr.ConnectionError) as caught:
            await client.send_message("nowhere", qr.Message(b"x"))
    assert caught.value.retryable is True
    assert isinstance(caught.value.__cause__, boto.EndpointConnectionError)


@pytest.mark.parametrize(
    ("error", "expected", "unknown"),
    [
        (boto.ReadTimeoutError(endpoint_url="http://x"), qr.TimeoutError, True),
        (boto.ConnectionClosedError(endpoint_url="http://x"), qr.ConnectionError, True),
        (boto.ConnectTimeoutError(endpoint_url="http://x"), qr.TimeoutError, False),
        (boto.EndpointConnectionError(endpoint_url="http://x"), qr.ConnectionError, False),
    ],
)
def test_a_lost_answer_is_an_unknown_outcome_and_a_refused_connection_is_not(
    error: Exception, expected: type[qr.QueueError], unknown: bool
) -> None:
    mapped = map_error(error, "SendMessage")
    assert isinstance(mapped, expected) and mapped.retryable
    assert mapped.outcome_unknown is unknown
    assert ("outcome unknown" in str(mapped)) is unknown


def test_a_refused_batch_entry_maps_like_a_call() -> None:
    lost = entry_error(
        "DeleteMessageBatch",
        {"Id": "0", "Code": "ReceiptHandleIsInvalid", "Message": "gone", "SenderFault": True},
    )
    assert isinstance(lost, qr.MessageLockLost)
    busy = entry_error("DeleteMessageBatch", {"Id": "1", "Code": "Whatever", "SenderFault": False})
    assert isinstance(busy, qr.ProviderError) and busy.retryable
