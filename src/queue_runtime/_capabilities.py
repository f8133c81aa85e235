"""What an adapter supports, natively or by emulation."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, fields

__all__ = ["Capabilities"]


@dataclass(frozen=True, slots=True)
class Capabilities:
    """Feature flags of an adapter; ``"session_state" in caps`` and ``caps.session_state`` agree.

    An operation whose flag is false raises `UnsupportedOperation`; it never silently does less.
    """

    #: Sessions: exclusive, ordered processing of the messages sharing a ``session_id``.
    sessions: bool = True
    #: ``SessionClient.get_state`` / ``set_state``.
    session_state: bool = True
    #: A session held by one process cannot be accepted by another (not just by this process).
    exclusive_sessions_across_processes: bool = True
    #: ``Message.scheduled_enqueue_time`` is honoured.
    scheduled_messages: bool = True
    #: ``Message.time_to_live`` is honoured.
    message_ttl: bool = True
    #: ``renew_message_lock`` / ``renew_session_lock``.
    lock_renewal: bool = True
    #: ``peek_messages``: look at messages without locking them.
    peek: bool = True
    #: ``get_queue_statistics``: counts of active, locked, scheduled and dead-lettered messages.
    statistics: bool = True
    #: Messages survive a restart of the process.
    durable: bool = False
    #: ``release_messages`` gives messages back without counting their delivery, and a
    #: receive or ``accept_session`` cancelled before it returns takes nothing (what it locked
    #: is released so, a session it leased is released). Where false, ``release_messages`` is
    #: an abandon, and a cancelled receive may leave messages locked until their locks run out.
    release: bool = False
    #: Largest message the adapter accepts, in bytes (body plus attributes).
    max_message_size: int = 1024 * 1024

    def __contains__(self, name: object) -> bool:
        value = getattr(self, name, False) if isinstance(name, str) else False
        return value is True

    def __iter__(self) -> Iterator[str]:
        """The names of the supported features."""
        return (f.name for f in fields(self) if getattr(self, f.name) is True)
