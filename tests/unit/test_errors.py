"""The error tree: one root, `retryable` everywhere, documented."""

from __future__ import annotations

import inspect

import pytest

import queue_runtime as qr
from queue_runtime import _errors

ERRORS = [
    obj for _, obj in inspect.getmembers(_errors, inspect.isclass) if issubclass(obj, qr.QueueError)
]


@pytest.mark.parametrize("cls", ERRORS, ids=lambda c: c.__name__)
def test_every_error_is_public_documented_and_has_retryable(cls: type[qr.QueueError]) -> None:
    assert getattr(qr, cls.__name__) is cls
    assert cls.__doc__
    assert cls.__name__ in (_errors.__doc__ or "")
    assert isinstance(cls.retryable, bool)


def test_retryable_defaults() -> None:
    assert qr.ConnectionError("x").retryable and qr.TimeoutError("x").retryable
    assert qr.SessionLocked("x").retryable
    assert not qr.ValidationError("x").retryable and not qr.MessageLockLost("x").retryable
    assert qr.ProviderError("x", retryable=True, retry_after=2.0).retry_after == 2.0


def test_validation_error_is_a_value_error() -> None:
    assert issubclass(qr.ValidationError, ValueError)


def test_batch_send_error_says_what_was_sent() -> None:
    exc = qr.BatchSendError("partial", sent=["a"], failed=[("b", "throttled")])
    assert exc.sent == ("a",) and exc.failed == (("b", "throttled"),)
    assert isinstance(exc, qr.ProviderError)
