"""Splitting sends into SQS batch requests, and reading what a batch answer says was sent.

Pure functions, so the rules are unit-tested without a server: a request holds at most 10
messages and at most the size limit in total (SQS counts a batch's payload like one message).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Final

__all__ = ["MAX_BATCH", "NotSent", "batch_outcome", "plan_batches"]

#: Most entries SQS takes in one batch request.
MAX_BATCH: Final = 10

#: ``(index, reason, sender_fault)`` of a message SQS did not take.
NotSent = tuple[int, str, bool]


def plan_batches(sizes: Sequence[int], max_bytes: int, max_entries: int = MAX_BATCH) -> list[range]:
    """Consecutive index ranges of ``sizes``: each at most ``max_entries`` long and at most
    ``max_bytes`` in total (a single message may fill a range alone). Order is kept."""
    batches: list[range] = []
    start = total = 0
    for index, size in enumerate(sizes):
        if index > start and (index - start >= max_entries or total + size > max_bytes):
            batches.append(range(start, index))
            start, total = index, 0
        total += size
    if start < len(sizes):
        batches.append(range(start, len(sizes)))
    return batches


def batch_outcome(
    indices: Sequence[int], response: Mapping[str, Any]
) -> tuple[list[int], list[NotSent]]:
    """Which of ``indices`` a ``SendMessageBatch`` answer reports sent, and which not (with
    SQS's reason). An entry the answer does not mention counts as not sent: nothing is
    assumed delivered without SQS saying so."""
    succeeded = {str(entry.get("Id")) for entry in response.get("Successful") or ()}
    failures = {
        str(entry.get("Id")): (
            f"{entry.get('Code', 'error')}: {entry.get('Message', '')}".rstrip(": "),
            bool(entry.get("SenderFault", False)),
        )
        for entry in response.get("Failed") or ()
    }
    sent: list[int] = []
    not_sent: list[NotSent] = []
    for index in indices:
        key = str(index)
        if key in succeeded and key not in failures:
            sent.append(index)
        else:
            reason, sender_fault = failures.get(key, ("SQS did not report this message", False))
            not_sent.append((index, reason, sender_fault))
    return sent, not_sent
