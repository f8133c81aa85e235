"""Sending: validating and encoding messages, single sends and batches in as few requests
as SQS allows.

A request whose answer was lost (read timeout, connection closed mid-request) may have stored
its messages: the error says "outcome unknown" and `BatchSendError.unknown` lists them. On a
FIFO queue a retry of the same messages is deduplicated by SQS (deduplication id = message id)
within its 5-minute window.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ..._arguments import message_sequence, queue_name
from ..._errors import BatchSendError, QueueError, UnsupportedOperation, ValidationError
from ..._messages import Message, validate_message
from ..._names import MessageId, QueueName
from ._batches import batch_outcome, plan_batches
from ._codec import Outgoing, encode
from ._connection import Ids
from ._naming import dedup_id, group_id
from ._queues import QueueDirectory, QueueInfo

__all__ = ["Sender"]


class Sender:
    """``send_message`` and ``send_messages`` of one client."""

    def __init__(self, queues: QueueDirectory, max_size: int, max_contract_size: int) -> None:
        self._queues = queues
        #: SQS's limit on the encoded message.
        self._max_size = max_size
        #: What the client guarantees by the contract's rule (`capabilities.max_message_size`).
        self._max_contract_size = max_contract_size

    async def send_one(self, queue: QueueName | str, message: Message) -> MessageId:
        info = await self._target(queue)
        params, _ = self._prepare(info, message)
        await self._queues.call(
            info, "SendMessage", about=Ids((message,)), QueueUrl=info.url, **params
        )
        return str.__new__(MessageId, message.message_id)

    async def send_many(
        self, queue: QueueName | str, messages: Sequence[Message]
    ) -> list[MessageId]:
        """Send in order, in as few requests as SQS allows (10 messages and the size limit
        per request); a failure part way raises `BatchSendError` naming every unsent one."""
        messages = message_sequence(messages)
        info = await self._target(queue)
        prepared = [self._prepare(info, message) for message in messages]
        sent: list[str] = []
        batches = plan_batches([size for _, size in prepared], self._max_size)
        for number, batch in enumerate(batches):
            entries = [{"Id": str(index), **prepared[index][0]} for index in batch]
            try:
                response = await self._queues.call(
                    info,
                    "SendMessageBatch",
                    about=Ids([messages[index] for index in batch]),
                    QueueUrl=info.url,
                    Entries=entries,
                )
            except QueueError as exc:
                if not sent and not exc.outcome_unknown:
                    raise  # nothing was sent: the plain error says so
                unknown = list(batch) if exc.outcome_unknown else []
                after = number + 1 if unknown else number
                unsent = [index for later in batches[after:] for index in later]
                raise _batch_error(
                    messages, sent, [(i, str(exc), False) for i in unsent], unknown, exc.retryable
                ) from exc
            ok, failed = batch_outcome(batch, response)
            sent.extend(messages[index].message_id for index in ok)
            if failed:
                rest = [index for later in batches[number + 1 :] for index in later]
                failed += [
                    (i, "not sent: an earlier message of the batch failed", False) for i in rest
                ]
                raise _batch_error(messages, sent, failed, [], None)
        return [str.__new__(MessageId, message.message_id) for message in messages]

    async def _target(self, queue: QueueName | str) -> QueueInfo:
        name = queue_name(queue)
        if name.is_dead_letter:
            raise ValidationError("messages cannot be sent to a dead-letter queue")
        return await self._queues.info(name)

    def _prepare(self, info: QueueInfo, message: Message) -> tuple[dict[str, Any], int]:
        """Validate and encode ``message`` for ``info``'s queue: (request fields, SQS size)."""
        validate_message(message, max_size=self._max_contract_size, requires_session=info.fifo)
        if message.scheduled_enqueue_time is not None:
            raise UnsupportedOperation(
                "scheduled messages are not supported on SQS (capabilities.scheduled_messages)"
            )
        outgoing = encode(message, fifo=info.fifo)
        self._check_size(outgoing)
        params: dict[str, Any] = {
            "MessageBody": outgoing.body,
            "MessageAttributes": outgoing.attributes,
        }
        if info.fifo:
            assert message.session_id is not None
            params["MessageGroupId"] = group_id(message.session_id)
            params["MessageDeduplicationId"] = dedup_id(message.message_id)
        return params, outgoing.size

    def _check_size(self, outgoing: Outgoing) -> None:
        if outgoing.size > self._max_size:
            raise ValidationError(
                f"message is {outgoing.size} bytes as SQS counts it (body, its encoding and "
                f"attributes); SQS takes at most {self._max_size}"
            )


def _batch_error(
    messages: Sequence[Message],
    sent: list[str],
    failed: list[tuple[int, str, bool]],
    unknown: list[int],
    retryable: bool | None,
) -> BatchSendError:
    if retryable is None:
        retryable = all(not sender_fault for _, _, sender_fault in failed)
    parts = []
    if unknown:
        parts.append(
            f"{len(unknown)} of {len(messages)} messages have an unknown outcome (the answer "
            "was lost: they may have been stored)"
        )
    if failed:
        parts.append(
            f"{len(failed)} of {len(messages)} messages were not sent (first: {failed[0][1]})"
        )
    return BatchSendError(
        "; ".join(parts) + f"; {len(sent)} were sent",
        sent=sent,
        failed=[(messages[index].message_id, reason) for index, reason, _ in failed],
        unknown=[messages[index].message_id for index in unknown],
        retryable=retryable,
    )
