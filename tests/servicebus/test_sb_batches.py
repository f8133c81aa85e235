"""How a failed batch send is reported: earlier batches sent, later ones not, and the failing
one either refused or of unknown outcome (its reply was lost)."""

from __future__ import annotations

import queue_runtime as qr
from queue_runtime.adapters.servicebus._client import _batch_error


def batches() -> list[tuple[object, list[qr.Message]]]:
    return [
        (None, [qr.Message(b"a", message_id="a"), qr.Message(b"b", message_id="b")]),
        (None, [qr.Message(b"c", message_id="c")]),
        (None, [qr.Message(b"d", message_id="d")]),
    ]


def test_a_refused_batch_and_the_later_ones_are_not_sent() -> None:
    refused = qr.ProviderError("Service Bus send: quota", retryable=True)
    error = _batch_error(refused, "orders", ["a", "b"], batches(), 1)
    assert error.sent == ("a", "b")
    assert [mid for mid, _ in error.failed] == ["c", "d"]
    assert error.unknown == () and not error.outcome_unknown
    assert error.retryable


def test_a_lost_reply_makes_the_batch_unknown() -> None:
    lost = qr.TimeoutError("Service Bus send: timed out", outcome_unknown=True)
    error = _batch_error(lost, "orders", ["a", "b"], batches(), 1)
    assert error.sent == ("a", "b")
    assert error.unknown == ("c",)
    assert [mid for mid, _ in error.failed] == ["d"]
    assert error.outcome_unknown and "unknown outcome" in str(error)
