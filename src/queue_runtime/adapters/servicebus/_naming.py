"""Queue names <-> Service Bus entity paths.

Our `QueueName` rules (1-260 of ``A-Z a-z 0-9 . _ -``, alphanumeric at both ends) are a
subset of Service Bus's, so a name is used as the entity path unchanged; the dead-letter
queue ``q.dead_letter`` (``q/$DeadLetterQueue``) is Service Bus's own dead-letter sub-queue
of ``q``. Service Bus compares entity names without regard to case: ``Orders`` and
``orders`` are one queue, and the adapter's caches key on the folded name.
"""

from __future__ import annotations

from typing import Final, NamedTuple

from ..._names import QueueName

__all__ = ["DEAD_LETTER_SUB_QUEUE", "Entity", "entity"]

#: The SDK's ``sub_queue`` value for the dead-letter queue (``ServiceBusSubQueue.DEAD_LETTER``).
DEAD_LETTER_SUB_QUEUE: Final = "deadletter"


class Entity(NamedTuple):
    """Where a queue name points: the queue's entity path, and whether it is its DLQ."""

    path: str
    dead_letter: bool

    @property
    def key(self) -> tuple[str, bool]:
        """Cache key: Service Bus names are case-insensitive."""
        return (self.path.lower(), self.dead_letter)

    @property
    def sub_queue(self) -> str | None:
        """The SDK's ``sub_queue`` argument for a receiver of this entity."""
        return DEAD_LETTER_SUB_QUEUE if self.dead_letter else None


def entity(name: QueueName) -> Entity:
    """The entity path and sub-queue of a validated queue name."""
    if name.is_dead_letter:
        return Entity(str(name.parent), True)
    return Entity(str(name), False)
