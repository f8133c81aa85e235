"""Every exception class the SDK can raise is in the adapter's table and comes out as an error of
our tree, the original chained; lock losses log at WARNING, ids only."""

from __future__ import annotations

import inspect
import logging
from types import ModuleType

import pytest
from azure.core import exceptions as core
from azure.servicebus import exceptions as sb
from azure.servicebus._pyamqp import error as amqp

import queue_runtime as qr
from queue_runtime.adapters.servicebus._errors import (
    ERROR_TABLE,
    SERVER_BUSY_RETRY_AFTER,
    map_error,
    translate,
)


def _exception_classes(module: ModuleType) -> list[type[BaseException]]:
    return [
        value
        for value in vars(module).values()
        if inspect.isclass(value)
        and issubclass(value, BaseException)
        and value.__module__.startswith(("azure.servicebus", "azure.core", "azure.identity"))
    ]


def _identity_classes() -> list[type[BaseException]]:
    import azure.identity

    return _exception_classes(azure.identity)


SDK_CLASSES = sorted(
    {
        *_exception_classes(sb),
        *_exception_classes(core),
        *_exception_classes(amqp),
        *_identity_classes(),
    },
    key=lambda cls: f"{cls.__module__}.{cls.__qualname__}",
)


class FakeResponse:
    """Enough of an HTTP response for azure-core's HTTP errors."""

    def __init__(self, status: int = 500) -> None:
        self.status_code = status
        self.reason = "x"
        self.headers: dict[str, str] = {}

    def text(self) -> str:
        return ""


def _instance(cls: type[BaseException]) -> BaseException:
    """An instance of ``cls`` built whatever its constructor wants."""
    for args, kwargs in (
        ((), {"response": FakeResponse()}),
        ((), {}),
        (("boom",), {}),
        ((), {"message": "boom"}),
        ((amqp.ErrorCondition.InternalError,), {"description": "boom"}),
    ):
        try:
            return cls(*args, **kwargs)
        except (TypeError, AttributeError):
            continue
    instance = cls.__new__(cls)
    BaseException.__init__(instance, "boom")
    return instance


def test_the_walk_finds_the_sdk_exceptions() -> None:
    names = {cls.__name__ for cls in SDK_CLASSES}
    assert {"MessageLockLostError", "HttpResponseError", "AMQPConnectionError"} <= names
    assert len(SDK_CLASSES) > 40


@pytest.mark.parametrize("cls", SDK_CLASSES, ids=lambda cls: cls.__name__)
def test_every_sdk_exception_class_is_mapped(cls: type[BaseException]) -> None:
    assert cls in ERROR_TABLE, f"{cls.__module__}.{cls.__name__} is not in ERROR_TABLE"
    original = _instance(cls)
    with pytest.raises(qr.QueueError) as caught, translate("receive", "orders"):
        raise original
    assert caught.value.__cause__ is original
    assert isinstance(caught.value, ERROR_TABLE[cls][0])


@pytest.mark.parametrize(
    ("original", "expected", "retryable"),
    [
        (sb.MessageLockLostError(), qr.MessageLockLost, False),
        (sb.MessageAlreadySettled(action="complete"), qr.MessageLockLost, False),
        (sb.SessionCannotBeLockedError(), qr.SessionLocked, True),
        (sb.SessionLockLostError(), qr.SessionLockLost, False),
        (sb.MessagingEntityNotFoundError(), qr.QueueNotFound, False),
        (sb.ServiceBusConnectionError(), qr.ConnectionError, True),
        (sb.ServiceBusCommunicationError(), qr.ConnectionError, True),
        (sb.OperationTimeoutError(), qr.TimeoutError, True),
        (sb.ServiceBusAuthenticationError(), qr.ConfigurationError, False),
        (sb.ServiceBusAuthorizationError(), qr.ConfigurationError, False),
        (sb.MessageSizeExceededError(), qr.ValidationError, False),
        (sb.ServiceBusServerBusyError(), qr.ProviderError, True),
        (sb.ServiceBusError("odd", retryable=True), qr.ProviderError, True),
        (sb.ServiceBusError("odd"), qr.ProviderError, False),
        (core.ClientAuthenticationError("no"), qr.ConfigurationError, False),
        (core.ResourceNotFoundError("no"), qr.QueueNotFound, False),
        (core.ResourceExistsError("no"), qr.QueueAlreadyExists, False),
        (core.ServiceRequestError("no"), qr.ConnectionError, True),
        (core.ServiceResponseTimeoutError("no"), qr.TimeoutError, True),
        (TimeoutError(), qr.TimeoutError, True),
        (OSError("reset"), qr.ConnectionError, True),
    ],
    ids=lambda value: type(value).__name__ if isinstance(value, BaseException) else "",
)
def test_the_mapping(
    original: BaseException, expected: type[qr.QueueError], retryable: bool
) -> None:
    with pytest.raises(expected) as caught, translate("complete", "orders message m-1"):
        raise original
    assert type(caught.value) is expected
    assert caught.value.retryable is retryable
    assert caught.value.__cause__ is original
    assert "orders message m-1" in str(caught.value)


def test_server_busy_says_when_to_retry() -> None:
    error = map_error(sb.ServiceBusServerBusyError(), "send", "orders")
    assert error.retryable and error.retry_after == SERVER_BUSY_RETRY_AFTER


def test_http_errors_are_retryable_by_status() -> None:
    def error(status: int) -> qr.QueueError:
        return map_error(core.HttpResponseError(response=FakeResponse(status)), "create queue")

    assert error(503).retryable and error(429).retryable
    assert not error(400).retryable


def test_an_unknown_outcome_says_so() -> None:
    error = map_error(sb.OperationTimeoutError(), "complete", "orders message m-1")
    assert "outcome is unknown" in str(error)
    assert "outcome is unknown" not in str(map_error(sb.OperationTimeoutError(), "receive"))


def test_our_errors_and_cancellation_pass_through() -> None:
    mine = qr.ValidationError("mine")
    with pytest.raises(qr.ValidationError) as caught, translate("send"):
        raise mine
    assert caught.value is mine
    import asyncio

    with pytest.raises(asyncio.CancelledError), translate("send"):
        raise asyncio.CancelledError


def test_lock_loss_logs_a_warning(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="queue_runtime.adapters.servicebus")
    with pytest.raises(qr.MessageLockLost), translate("complete", "orders message m-1"):
        raise sb.MessageLockLostError()
    with pytest.raises(qr.QueueNotFound), translate("receive", "orders"):
        raise sb.MessagingEntityNotFoundError()
    levels = [(r.levelno, r.name) for r in caplog.records]
    assert levels == [
        (logging.WARNING, "queue_runtime.adapters.servicebus"),
        (logging.DEBUG, "queue_runtime.adapters.servicebus"),
    ]
    assert "m-1" in caplog.records[0].getMessage()
