"""Administration: creating, deleting and looking up queues, and the client's cache of them.

A queue is looked up once per client (URLs, attributes, tags) and cached; a `QueueNotFound`
from SQS drops the entry. `create_queue` always asks SQS (never the cache), so idempotent
creation holds on the provider even after another client deleted the queue.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from dataclasses import dataclass
from typing import Any, Final

from ..._errors import ConfigurationError, QueueAlreadyExists, QueueNotFound, ValidationError
from ..._names import QueueName
from ...engine import QueueSettings
from ._connection import SqsConnection
from ._naming import SqsNames, candidate_names, sqs_names
from ._registry import QueueSettingsView, QueueState, forget_state, queue_state

__all__ = ["QueueDirectory", "QueueInfo"]

#: SQS's longest retention: messages are kept until settled, up to 14 days.
_RETENTION: Final = str(14 * 24 * 3600)
_MAX_RECEIVE_COUNT: Final = 1000
_MAX_VISIBILITY: Final = 43200
_TTL_TAG: Final = "qr-default-ttl"
_DLOE_TAG: Final = "qr-dead-letter-on-expiration"


@dataclass(frozen=True, slots=True)
class QueueInfo:
    """A queue as this client found or made it: URLs, settings and registry states."""

    name: QueueName
    names: SqsNames
    url: str
    dead_letter_url: str | None
    settings: QueueSettingsView
    state: QueueState
    dead_letter_state: QueueState | None

    @property
    def fifo(self) -> bool:
        return self.names.fifo


class QueueDirectory:
    """One client's queues: what it looked up or created, and the registry states it touched."""

    def __init__(self, connection: SqsConnection) -> None:
        self._connection = connection
        self._queues: dict[QueueName, QueueInfo] = {}
        #: Registry states of every queue this client used (the keeper and close walk them).
        self.touched: dict[tuple[str, str], QueueState] = {}

    async def call(self, info: QueueInfo, operation: str, /, **params: Any) -> Any:
        """`SqsConnection.call` on one of ``info``'s queues: a vanished queue is forgotten."""
        try:
            return await self._connection.call(operation, **params)
        except QueueNotFound:
            self.evict(info.name)
            raise

    def evict(self, name: QueueName) -> None:
        """Forget the cached lookup of ``name`` (SQS said it does not exist)."""
        self._queues.pop(name, None)

    async def info(self, name: QueueName) -> QueueInfo:
        """``name``'s queue (for a dead-letter queue: its parent's), looked up once."""
        base = name.parent
        info = self._queues.get(base)
        if info is None:
            info = self._queues[base] = await self._lookup(base)
        return info

    # -- create and delete ---------------------------------------------------------------

    async def create(self, name: QueueName, settings: QueueSettings) -> None:
        """``create_queue`` (``settings`` checked by the core's `queue_definition`): a no-op
        when SQS has the queue with these settings."""
        lock = settings.lock_duration
        if lock != int(lock) or not 1 <= lock <= _MAX_VISIBILITY:
            raise ValidationError(
                f"lock_duration must be whole seconds between 1 and {_MAX_VISIBILITY} on SQS "
                f"(its visibility timeout), not {lock!r}"
            )
        if settings.max_delivery_count > _MAX_RECEIVE_COUNT:
            raise ValidationError(
                f"max_delivery_count must be at most {_MAX_RECEIVE_COUNT} on SQS "
                "(its redrive policy's maxReceiveCount)"
            )
        names = sqs_names(name, fifo=settings.requires_session)
        wanted = QueueSettingsView(
            max_delivery_count=settings.max_delivery_count,
            lock_seconds=int(lock),
            default_ttl=settings.default_message_ttl,
            dead_letter_on_expiration=settings.dead_letter_on_expiration,
            dead_letter=False,
        )
        # asked of SQS, not of the cache: another client may have deleted the queue
        self.evict(name)
        try:
            existing: QueueInfo | None = await self.info(name)
        except QueueNotFound:
            existing = None
        if existing is not None:
            if existing.fifo != names.fifo or existing.settings != wanted:
                found = _as_settings(existing.fifo, existing.settings)
                raise QueueAlreadyExists(
                    f"queue {str(name)!r} exists with other settings ("
                    + "; ".join(settings.differences(found)).replace(" != ", " wanted, found ")
                    + ")"
                )
            return
        await self._create(name, names, settings, wanted)

    async def _create(
        self, name: QueueName, names: SqsNames, settings: QueueSettings, wanted: QueueSettingsView
    ) -> None:
        call = self._connection.call
        lock = str(wanted.lock_seconds)
        attributes = {"VisibilityTimeout": lock, "MessageRetentionPeriod": _RETENTION}
        if names.fifo:
            attributes["FifoQueue"] = "true"
        created = await call(
            "CreateQueue",
            QueueName=names.dead_letter,
            Attributes=attributes,
            tags={"qr-role": "dead-letter"},
        )
        dead_letter_url = created["QueueUrl"]
        arn = (
            await call("GetQueueAttributes", QueueUrl=dead_letter_url, AttributeNames=["QueueArn"])
        )["Attributes"]["QueueArn"]
        redrive = {"deadLetterTargetArn": arn, "maxReceiveCount": settings.max_delivery_count}
        tags: dict[str, str] = {"qr-role": "queue"}
        if settings.default_message_ttl is not None:
            tags[_TTL_TAG] = repr(settings.default_message_ttl)
        if settings.dead_letter_on_expiration:
            tags[_DLOE_TAG] = "true"
        created = await call(
            "CreateQueue",
            QueueName=names.queue,
            Attributes={**attributes, "RedrivePolicy": json.dumps(redrive)},
            tags=tags,
        )
        self._queues[name] = self._make_info(
            name, names, created["QueueUrl"], dead_letter_url, wanted
        )

    async def delete(self, name: QueueName) -> None:
        """``delete_queue``: the queue and its dead-letter queue."""
        if name.is_dead_letter:
            raise ValidationError("a dead-letter queue is deleted with its queue")
        info = await self.info(name)
        self.evict(name)
        await self._connection.call("DeleteQueue", QueueUrl=info.url)
        self._forget(info.url)
        if info.dead_letter_url is not None:
            with contextlib.suppress(QueueNotFound):
                await self._connection.call("DeleteQueue", QueueUrl=info.dead_letter_url)
            self._forget(info.dead_letter_url)

    def _forget(self, url: str) -> None:
        """Drop what the process holds of a deleted queue."""
        endpoint = self._connection.endpoint
        self.touched.pop((endpoint, url), None)
        forget_state(endpoint, url)

    # -- lookup --------------------------------------------------------------------------

    async def _lookup(self, name: QueueName) -> QueueInfo:
        candidates = candidate_names(name)
        urls = await asyncio.gather(*(self._queue_url(c.queue) for c in candidates))
        found = [(names, url) for names, url in zip(candidates, urls, strict=True) if url]
        if not found:
            raise QueueNotFound(f"queue {str(name)!r} does not exist")
        if len(found) > 1:
            raise ConfigurationError(
                f"queue {str(name)!r} is ambiguous on SQS: both "
                + " and ".join(repr(names.queue) for names, _ in found)
                + " exist"
            )
        names, url = found[0]
        call = self._connection.call
        attributes, tags = await asyncio.gather(
            call("GetQueueAttributes", QueueUrl=url, AttributeNames=["All"]),
            call("ListQueueTags", QueueUrl=url),
        )
        settings, dead_letter_name = _read_settings(
            attributes.get("Attributes") or {}, tags.get("Tags") or {}
        )
        dead_letter_url = None
        if dead_letter_name is not None:
            dead_letter_url = await self._queue_url(dead_letter_name)
        return self._make_info(name, names, url, dead_letter_url, settings)

    async def _queue_url(self, sqs_name: str) -> str | None:
        try:
            response = await self._connection.call("GetQueueUrl", QueueName=sqs_name)
        except QueueNotFound:
            return None
        return str(response["QueueUrl"])

    def _make_info(
        self,
        name: QueueName,
        names: SqsNames,
        url: str,
        dead_letter_url: str | None,
        settings: QueueSettingsView,
    ) -> QueueInfo:
        endpoint = self._connection.endpoint
        state = queue_state(endpoint, url, session=names.fifo)
        state.settings = settings
        self.touched[state.key] = state
        dead_letter_state = None
        if dead_letter_url is not None:
            dead_letter_state = queue_state(endpoint, dead_letter_url, session=False)
            dead_letter_state.settings = QueueSettingsView(
                max_delivery_count=settings.max_delivery_count,
                lock_seconds=settings.lock_seconds,
                default_ttl=None,
                dead_letter_on_expiration=False,
                dead_letter=True,
            )
            self.touched[dead_letter_state.key] = dead_letter_state
        return QueueInfo(name, names, url, dead_letter_url, settings, state, dead_letter_state)


def _read_settings(
    attributes: dict[str, str], tags: dict[str, str]
) -> tuple[QueueSettingsView, str | None]:
    """An existing queue's settings (and its DLQ's SQS name) from its attributes and tags."""
    redrive: dict[str, Any] = {}
    if attributes.get("RedrivePolicy"):
        with contextlib.suppress(ValueError):
            redrive = json.loads(attributes["RedrivePolicy"])
    target = redrive.get("deadLetterTargetArn")
    ttl = tags.get(_TTL_TAG)
    settings = QueueSettingsView(
        max_delivery_count=int(redrive.get("maxReceiveCount", _MAX_RECEIVE_COUNT)),
        lock_seconds=int(attributes.get("VisibilityTimeout", 30)),
        default_ttl=float(ttl) if ttl else None,
        dead_letter_on_expiration=tags.get(_DLOE_TAG) == "true",
        dead_letter=False,
    )
    return settings, str(target).rsplit(":", 1)[-1] if target else None


def _as_settings(fifo: bool, view: QueueSettingsView) -> QueueSettings:
    """An existing queue's settings in the core's terms (to name what differs)."""
    return QueueSettings(
        requires_session=fifo,
        max_delivery_count=min(view.max_delivery_count, 2000),
        lock_duration=float(min(max(view.lock_seconds, 1), 3600)),
        default_message_ttl=view.default_ttl,
        dead_letter_on_expiration=view.dead_letter_on_expiration,
    )
