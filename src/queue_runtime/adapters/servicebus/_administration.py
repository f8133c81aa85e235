"""Queues through ``ServiceBusAdministrationClient`` (Service Bus's ATOM/HTTP management API).

`create` is idempotent like every adapter's ``create_queue``: an existing queue with equal
settings is fine; with other settings it raises `QueueAlreadyExists` naming the differences.
A queue's settings are read back as `QueueSettings`, so the client knows (and caches) which
queues require sessions.

The queue's default TTL is kept in the entity's ``UserMetadata`` (``qr:default_message_ttl=
<seconds>``) and stamped by the adapter on messages sent without a TTL of their own, instead of
the entity's DefaultMessageTimeToLive: Service Bus silently shortens a message's own TTL to
the entity's default, and the contract lets a message's own TTL outlive the queue's default.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any, Final

from azure.core.exceptions import HttpResponseError

from ..._errors import ProviderError, QueueAlreadyExists, ValidationError
from ..._logging import get_logger
from ...engine import QueueSettings, QueueStatistics
from ._errors import translate

__all__ = ["Administration", "settings_of"]

_log = get_logger("adapters.servicebus")

#: A TTL at least this long means "none" (Service Bus stores TimeSpan.MaxValue, ~29,000 years).
_FOREVER: Final = timedelta(days=365 * 1000)


#: How ``UserMetadata`` carries the queue's default TTL (seconds, Python float repr).
_TTL_KEY: Final = "qr:default_message_ttl="


def _metadata_ttl(metadata: object) -> float | None:
    if isinstance(metadata, str) and metadata.startswith(_TTL_KEY):
        try:
            return float(metadata[len(_TTL_KEY) :])
        except ValueError:
            return None
    return None


def settings_of(properties: Any) -> QueueSettings:
    """`QueueSettings` from the SDK's ``QueueProperties`` (a queue made elsewhere keeps its
    entity default TTL as the default)."""
    ttl = properties.default_message_time_to_live
    lock = properties.lock_duration
    default_ttl = _metadata_ttl(getattr(properties, "user_metadata", None))
    if default_ttl is None and isinstance(ttl, timedelta) and ttl < _FOREVER:
        default_ttl = ttl.total_seconds()
    return QueueSettings(
        requires_session=bool(properties.requires_session),
        max_delivery_count=int(properties.max_delivery_count),
        lock_duration=lock.total_seconds() if isinstance(lock, timedelta) else 60.0,
        default_message_ttl=default_ttl,
        dead_letter_on_expiration=bool(properties.dead_lettering_on_message_expiration),
    )


class Administration:
    """Create, delete and describe queues of one namespace."""

    __slots__ = ("_admin",)

    def __init__(self, admin: Any) -> None:
        self._admin = admin

    async def settings(self, path: str) -> QueueSettings:
        """The queue's settings; `QueueNotFound` if it does not exist."""
        _log.debug("get queue %s", path)
        with translate("get queue", path):
            properties = await self._admin.get_queue(path)
        return settings_of(properties)

    async def statistics(self, path: str) -> QueueStatistics:
        """The queue's message counts from its runtime properties (Service Bus does not
        count locked messages apart: ``locked`` is None)."""
        _log.debug("get queue runtime properties %s", path)
        with translate("get queue runtime properties", path):
            runtime = await self._admin.get_queue_runtime_properties(path)
        return QueueStatistics(
            active=runtime.active_message_count,
            locked=None,
            scheduled=runtime.scheduled_message_count,
            dead_letter=runtime.dead_letter_message_count,
        )

    async def create(self, path: str, settings: QueueSettings) -> QueueSettings:
        """Create the queue (and so its dead-letter sub-queue); returns its settings."""
        _log.debug("create queue %s %s", path, settings)
        ttl = settings.default_message_ttl
        try:
            with translate("create queue", path):
                await self._admin.create_queue(
                    path,
                    requires_session=settings.requires_session,
                    max_delivery_count=settings.max_delivery_count,
                    lock_duration=timedelta(seconds=settings.lock_duration),
                    user_metadata=None if ttl is None else f"{_TTL_KEY}{ttl!r}",
                    dead_lettering_on_message_expiration=settings.dead_letter_on_expiration,
                )
            return settings
        except QueueAlreadyExists:
            pass  # compared below: equal settings make create_queue idempotent
        except ProviderError as exc:
            cause = exc.__cause__
            if isinstance(cause, HttpResponseError) and cause.status_code == 400:
                raise ValidationError(
                    f"Service Bus refused the settings of queue {path!r}: {cause.message}"
                ) from cause
            raise
        found = await self.settings(path)
        problems = settings.differences(found)
        if problems:
            raise QueueAlreadyExists(
                f"queue {path!r} exists with other settings: " + "; ".join(problems)
            )
        return found

    async def delete(self, path: str) -> None:
        """Delete the queue with its dead-letter sub-queue; `QueueNotFound` if absent."""
        _log.debug("delete queue %s", path)
        with translate("delete queue", path):
            await self._admin.delete_queue(path)
