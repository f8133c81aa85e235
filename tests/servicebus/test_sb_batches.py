"""How a failed batch send is reported to one caller: its earlier messages sent, its later
ones not, and those in the failing transfer either refused or of unknown outcome (its reply
was lost)."""

from __future__ import annotations

import queue_runtime as qr
from queue_runtime.adapters.servicebus._sending import batch_send_error


def test_a_refused_batch_and_the_later_ones_are_not_sent() -> None:
    refused = qr.ProviderError("Service Bus send: quota", retryable=True)
    error = batch_send_error(refused, "orders", ["a", "b"], ["c"], ["d"], unknown=False)
    assert error.sent == ("a", "b")
    assert [mid for mid, _ in error.failed] == ["c", "d"]
    assert error.unknown == () and not error.outcome_unknown
    assert error.retryable


def test_a_lost_reply_makes_the_batch_unknown() -> None:
    lost = qr.TimeoutError("Service Bus send: timed out", outcome_unknown=True)
    error = batch_send_error(lost, "orders", ["a", "b"], ["c"], ["d"], unknown=True)
    assert error.sent == ("a", "b")
    assert error.unknown == ("c",)
    assert [mid for mid, _ in error.failed] == ["d"]
    assert error.outcome_unknown and "unknown outcome" in str(error)
