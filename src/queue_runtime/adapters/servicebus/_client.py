"""`ServiceBusQueueClient`: the `QueueClient` port on Azure Service Bus (async SDK, AMQP 1.0).

Everything is native: sessions are Service Bus sessions (exclusive across processes), the
dead-letter queue is the queue's ``$DeadLetterQueue`` sub-queue, scheduling and TTL are the
message's own fields, locks are peek-lock locks. One client may be used by many tasks at
once: each queue has one sender, behind an `Outbox` that gathers concurrent sends into
batches; receivers are pooled per queue (a receive borrows an idle one, so concurrent
receives do not share a link's credit) and every call on one is made holding its `Link`.
All are closed with the client.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Sequence
from datetime import datetime, timedelta
from typing import Any, Final

from azure.servicebus import NEXT_AVAILABLE_SESSION

from ..._arguments import (
    check_max_messages,
    check_sequence_number,
    message_sequence,
    queue_definition,
    queue_name,
    timeout_seconds,
)
from ..._capabilities import Capabilities
from ..._clock import to_seconds
from ..._errors import (
    ClientClosed,
    ConfigurationError,
    QueueNotFound,
    SessionLocked,
    ValidationError,
)
from ..._lifecycle import ClientLifecycle
from ..._logging import get_logger
from ..._messages import Message, ReceivedMessage, validate_message
from ..._names import MessageId, QueueName, SessionId
from ...config import AzureServiceBusConfig
from ...engine import QueueSettings, QueueStatistics
from ...ports import DEFAULT_LOCK_DURATION, DEFAULT_MAX_DELIVERY_COUNT, QueueClient, Timeout
from ._administration import Administration
from ._codec import METADATA_RESERVE, decode, encode
from ._connection import Connection, connect, endpoint_of
from ._errors import translate
from ._link import MIN_WAIT, Link, receive
from ._naming import Entity, entity
from ._peek import peek
from ._sending import Outbox
from ._sessions import ServiceBusSessionClient
from ._settlement import Receipt, Settling, renew

__all__ = ["ServiceBusQueueClient"]

_log = get_logger("adapters.servicebus")

_DEFAULT_TIMEOUT: Final = 30.0
#: How long past its timeout a next-available accept may take before we stop waiting for
#: the service's answer (it normally answers at the timeout itself).
_ACCEPT_GRACE: Final = 10.0
_new_str = str.__new__
#: The settings of a queue this client may not read (no Manage right): checked by the service.
UNKNOWN_SETTINGS: Final = QueueSettings()


class ServiceBusQueueClient(Settling, ClientLifecycle, QueueClient):
    """Queues on Azure Service Bus (or the local emulator) through the async azure-servicebus SDK.

    ``config`` is a connection string or a namespace with an Azure identity, and where queue
    management goes when that is not the namespace (an emulator's admin port); see
    `AzureServiceBusConfig`.
    """

    def __init__(
        self,
        config: AzureServiceBusConfig,
        *,
        default_timeout: float | timedelta = _DEFAULT_TIMEOUT,
    ) -> None:
        if not isinstance(config, AzureServiceBusConfig):
            raise ValidationError("ServiceBusQueueClient takes an AzureServiceBusConfig")
        self._config = config
        self._endpoint = endpoint_of(config)  # ConfigurationError now, not at open
        self._default_timeout = to_seconds(default_timeout)
        self._max_size = config.max_message_size - METADATA_RESERVE
        self._capabilities = Capabilities(
            sessions=True,
            session_state=True,
            exclusive_sessions_across_processes=True,
            scheduled_messages=True,
            message_ttl=True,
            lock_renewal=True,
            durable=True,
            peek=True,
            statistics=True,
            max_message_size=self._max_size,
        )
        self._connection: Connection | None = None
        self._admin: Administration | None = None
        self._settings: dict[str, QueueSettings] = {}
        self._outboxes: dict[str, Outbox] = {}
        self._idle: dict[tuple[str, bool], list[Link]] = {}
        self._receivers: list[Link] = []
        self._sessions: set[ServiceBusSessionClient] = set()
        self._opening: dict[object, asyncio.Lock] = {}
        self._closing: set[asyncio.Future[None]] = set()

    def __repr__(self) -> str:
        # the namespace only: never the connection string or a credential
        return (
            f"ServiceBusQueueClient(state={self._state!r}, namespace={self._endpoint.namespace!r})"
        )

    @property
    def capabilities(self) -> Capabilities:
        return self._capabilities

    @property
    def config(self) -> AzureServiceBusConfig:
        return self._config

    # -- lifecycle -----------------------------------------------------------------------

    async def open(self) -> None:
        if not self._needs_open():
            return
        self._connection = connect(self._config, retry_total=self._config.retry_total)
        self._admin = Administration(self._connection.admin)
        self._state = "open"
        _log.debug("opened client for %s", self._endpoint.namespace)

    async def aclose(self) -> None:
        if self._state != "open":
            self._state = "closed"
            return
        self._state = "closed"
        # sessions first (their locks are released), then every link, all at once
        await asyncio.gather(*(session.close() for session in list(self._sessions)))
        outboxes = list(self._outboxes.values())
        receivers = [link.handler for link in self._receivers]
        self._outboxes.clear()
        self._receivers.clear()
        self._idle.clear()
        unsent = ClientClosed("the client was closed before this message was sent")
        await asyncio.gather(
            *(outbox.aclose(unsent) for outbox in outboxes),
            *(_close_quietly(h) for h in receivers),
            *list(self._closing),
        )
        if self._connection is not None:
            with contextlib.suppress(Exception):
                await self._connection.close()
        _log.debug("closed client for %s", self._endpoint.namespace)

    def _close_later(self, handler: Any) -> None:
        """Close a link that holds nothing in the background (the SDK's close waits up to a
        second for its keep-alive task); `aclose` waits for it."""
        self._later(_close_quietly(handler))

    def _later(self, closing: Awaitable[None]) -> None:
        task = asyncio.ensure_future(closing)
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)

    def _conn(self) -> Connection:
        if self._state != "open" or self._connection is None:
            self._check_open()
        assert self._connection is not None
        return self._connection

    def _lock(self, key: object) -> asyncio.Lock:
        lock = self._opening.get(key)
        if lock is None:
            lock = self._opening[key] = asyncio.Lock()
        return lock

    # -- administration ------------------------------------------------------------------

    async def create_queue(
        self,
        queue: QueueName | str,
        *,
        requires_session: bool = False,
        max_delivery_count: int = DEFAULT_MAX_DELIVERY_COUNT,
        lock_duration: float | timedelta = DEFAULT_LOCK_DURATION,
        default_message_ttl: float | timedelta | None = None,
        dead_letter_on_expiration: bool = False,
    ) -> None:
        self._check_open()
        name, settings = queue_definition(
            queue,
            requires_session=requires_session,
            max_delivery_count=max_delivery_count,
            lock_duration=lock_duration,
            default_message_ttl=default_message_ttl,
            dead_letter_on_expiration=dead_letter_on_expiration,
        )
        assert self._admin is not None
        path = entity(name).path
        self._settings[path.lower()] = await self._admin.create(path, settings)

    async def delete_queue(self, queue: QueueName | str) -> None:
        self._check_open()
        name = queue_name(queue)
        if name.is_dead_letter:
            raise ValidationError("dead-letter queues are deleted with their queue")
        path = entity(name).path
        self._forget(path)
        assert self._admin is not None
        await self._admin.delete(path)

    def _forget(self, path: str) -> None:
        """Drop what this client cached for a queue (its settings, sender and receivers)."""
        key = path.lower()
        self._settings.pop(key, None)
        outbox = self._outboxes.pop(key, None)
        if outbox is not None:
            self._later(outbox.aclose(QueueNotFound(f"queue {path!r} was deleted by this client")))
        for dead_letter in (False, True):
            for link in self._idle.pop((key, dead_letter), ()):
                if link in self._receivers:
                    self._receivers.remove(link)
                self._close_later(link.handler)

    async def get_queue_statistics(self, queue: QueueName | str) -> QueueStatistics:
        self._check_open()
        name = queue_name(queue)
        if name.is_dead_letter:
            raise ValidationError("statistics are of a queue (its dead letters included)")
        assert self._admin is not None
        return await self._admin.statistics(entity(name).path)

    async def _queue_settings(self, path: str) -> QueueSettings:
        """The queue's settings (looked up once per client); `QueueNotFound` if absent.

        Reading them needs the Manage right; with a Send/Listen-only key they are
        `UNKNOWN_SETTINGS` and the service itself refuses what does not fit the queue.
        """
        key = path.lower()
        settings = self._settings.get(key)
        if settings is None:
            assert self._admin is not None
            try:
                settings = await self._admin.settings(path)
            except ConfigurationError as exc:
                _log.debug("cannot read the settings of %s (%s): the service checks", path, exc)
                settings = UNKNOWN_SETTINGS
            self._settings[key] = settings
        return settings

    # -- sending -------------------------------------------------------------------------

    async def _outbox(self, path: str) -> Outbox:
        """The queue's `Outbox`, its sender opened on first use."""
        key = path.lower()
        outbox = self._outboxes.get(key)
        if outbox is not None:
            return outbox
        async with self._lock(("sender", key)):
            outbox = self._outboxes.get(key)
            if outbox is None:
                _log.debug("open sender %s", path)
                sender = self._conn().messaging.get_queue_sender(path)
                try:
                    with translate("open sender", path):
                        await sender.__aenter__()
                        limit = (await sender.create_message_batch()).max_size_in_bytes
                except BaseException:
                    with contextlib.suppress(Exception):
                        await sender.close()
                    raise
                self._check_open()
                outbox = self._outboxes[key] = Outbox(
                    path,
                    sender,
                    batch_limit=limit,
                    max_size=self._max_size,
                    plain_limit=self._config.max_message_size,
                )
        return outbox

    async def _target(self, queue: QueueName | str) -> tuple[str, QueueSettings]:
        if self._state != "open":
            self._check_open()
        name = queue_name(queue)
        if name.is_dead_letter:
            raise ValidationError("messages cannot be sent to a dead-letter queue")
        path = str(name)
        return path, await self._queue_settings(path)

    async def send_message(self, queue: QueueName | str, message: Message) -> MessageId:
        path, settings = await self._target(queue)
        size = validate_message(
            message, max_size=self._max_size, requires_session=_requires_session(settings)
        )
        outgoing = encode(message, _default_ttl(settings))
        outbox = await self._outbox(path)
        await outbox.send((message,), [outgoing], (size,), single=True)
        return _new_str(MessageId, message.message_id)

    async def send_messages(
        self, queue: QueueName | str, messages: Sequence[Message]
    ) -> list[MessageId]:
        path, settings = await self._target(queue)
        messages = list(message_sequence(messages))
        requires_session = _requires_session(settings)
        sizes = [
            validate_message(m, max_size=self._max_size, requires_session=requires_session)
            for m in messages
        ]
        if not messages:
            return []
        default_ttl = _default_ttl(settings)
        outgoing = [encode(m, default_ttl) for m in messages]
        outbox = await self._outbox(path)
        await outbox.send(messages, outgoing, sizes, single=False)
        return [_new_str(MessageId, m.message_id) for m in messages]

    # -- receiving -----------------------------------------------------------------------

    async def _borrow(self, where: Entity) -> Link:
        """An idle receiver of ``where`` (preferably one whose deliveries are all settled, so
        that settling them never waits for this receive), else a new one."""
        idle = self._idle.get(where.key)
        if idle:
            for index in range(len(idle) - 1, -1, -1):
                if not idle[index].busy():
                    return idle.pop(index)
            return idle.pop()
        _log.debug("open receiver %s%s", where.path, " (dead letters)" if where.dead_letter else "")
        receiver = self._conn().messaging.get_queue_receiver(where.path, sub_queue=where.sub_queue)
        try:
            with translate("open receiver", where.path):
                await receiver.__aenter__()
        except BaseException:
            with contextlib.suppress(Exception):
                await receiver.close()
            raise
        link = Link(receiver)
        self._receivers.append(link)
        return link

    def _give_back(self, where: Entity, link: Link) -> None:
        if self._state == "open" and link in self._receivers:
            self._idle.setdefault(where.key, []).append(link)

    async def receive_message(
        self, queue: QueueName | str, *, timeout: Timeout = None
    ) -> ReceivedMessage | None:
        received = await self._receive(queue, 1, timeout)
        return received[0] if received else None

    async def receive_messages(
        self, queue: QueueName | str, *, max_messages: int = 10, timeout: Timeout = None
    ) -> list[ReceivedMessage]:
        return await self._receive(queue, check_max_messages(max_messages), timeout)

    async def _receive(
        self, queue: QueueName | str, max_messages: int, timeout: Timeout
    ) -> list[ReceivedMessage]:
        if self._state != "open":
            self._check_open()
        name = queue_name(queue)
        wait = timeout_seconds(timeout, self._default_timeout)
        where = entity(name)
        settings = await self._queue_settings(where.path)
        if settings.requires_session and not where.dead_letter:
            raise ValidationError(
                f"queue {str(name)!r} requires sessions: use accept_session to receive"
            )
        link = await self._borrow(where)
        label = str(name)
        try:
            _log.debug("receive %s (up to %d, %.3f s)", label, max_messages, wait)
            incoming = await receive(link, max_messages, wait, label, self._check_open)
        finally:
            self._give_back(where, link)
        return [decode(m, Receipt(self, label, link, m, None)) for m in incoming]

    # -- settling ------------------------------------------------------------------------

    def _receipt(self, message: ReceivedMessage) -> Receipt:
        receipt = message.receipt if type(message) is ReceivedMessage else None
        if type(receipt) is Receipt and receipt.owner is self and receipt.holder is None:
            if self._state != "open":
                self._check_open()
            return receipt
        self._check_open()
        if not isinstance(message, ReceivedMessage):
            raise ValidationError(f"expected a ReceivedMessage, not {type(message).__name__}")
        receipt = message.receipt
        if receipt is None:
            raise ValidationError("a peeked message cannot be settled")
        if not isinstance(receipt, Receipt) or receipt.owner is not self:
            raise ValidationError("this message was not received through this client")
        raise ValidationError(
            "this message was received through a session: settle it through that session"
        )

    async def renew_message_lock(self, message: ReceivedMessage) -> datetime:
        return await renew(self._receipt(message))

    # -- peeking -------------------------------------------------------------------------

    async def peek_messages(
        self,
        queue: QueueName | str,
        *,
        max_messages: int = 10,
        from_sequence_number: int | None = None,
    ) -> list[ReceivedMessage]:
        self._check_open()
        name = queue_name(queue)
        count = check_max_messages(max_messages)
        start = check_sequence_number(from_sequence_number)
        where = entity(name)
        await self._queue_settings(where.path)
        link = await self._borrow(where)
        try:
            return await peek(link, count, start, str(name))
        finally:
            self._give_back(where, link)

    # -- sessions ------------------------------------------------------------------------

    async def accept_session(
        self,
        queue: QueueName | str,
        session_id: str | None = None,
        *,
        timeout: Timeout = None,
    ) -> ServiceBusSessionClient | None:
        self._check_open()
        name = queue_name(queue)
        wait = timeout_seconds(timeout, self._default_timeout)
        if session_id is not None:
            session_id = SessionId(session_id)
        where = entity(name)
        settings = None if where.dead_letter else await self._queue_settings(where.path)
        if settings is None or not (settings.requires_session or settings is UNKNOWN_SETTINGS):
            raise ValidationError(f"queue {str(name)!r} has no sessions")
        sessions = self._conn().sessions
        if session_id is not None:
            subject = f"{where.path} session {session_id}"
            receiver = sessions.get_queue_receiver(where.path, session_id=session_id)
            budget = None
        else:
            subject = f"{where.path} next available session"
            receiver = sessions.get_queue_receiver(
                where.path,
                session_id=NEXT_AVAILABLE_SESSION,
                max_wait_time=max(wait, MIN_WAIT),
            )
            budget = max(wait, MIN_WAIT) + _ACCEPT_GRACE
        _log.debug("accept %s", subject)
        try:
            with translate("accept session", subject):
                async with asyncio.timeout(budget):
                    await receiver.__aenter__()
        except TimeoutError:
            self._close_later(receiver)
            if session_id is None:
                return None  # no session became available in time
            raise
        except BaseException:
            self._close_later(receiver)
            raise
        if self._state != "open":
            await _close_quietly(receiver)
            self._check_open()
        if not _holds_session(receiver):
            # The service refused the attach (it answers with no session and detaches; the
            # SDK reports that only at the link's next use): held by another receiver, or,
            # for next-available, none became ready within the timeout.
            self._close_later(receiver)
            if session_id is None:
                return None
            _log.debug("%s is held by another receiver", subject)
            raise SessionLocked(f"Service Bus accept session ({subject}): held by another receiver")
        session = ServiceBusSessionClient(
            self,
            where.path,
            receiver,
            default_timeout=self._default_timeout,
            check_open=self._check_open,
            on_close=self._sessions.discard,
        )
        self._sessions.add(session)
        _log.debug("accepted %s", session._subject)
        return session


def _default_ttl(settings: QueueSettings) -> timedelta | None:
    ttl = settings.default_message_ttl
    return None if ttl is None else timedelta(seconds=ttl)


def _holds_session(receiver: Any) -> bool:
    """Whether the service attached ``receiver`` to a session: it then names the session and
    its lock expiry (`com.microsoft:locked-until-utc`) in its attach."""
    session = receiver.session
    return isinstance(session.session_id, str) and session.locked_until_utc is not None


async def _close_quietly(handler: Any) -> None:
    with contextlib.suppress(Exception):
        await handler.close()


def _requires_session(settings: QueueSettings) -> bool | None:
    """Whether the queue needs sessions; None when its settings could not be read (a key
    without the Manage right): then the service refuses what does not fit."""
    return None if settings is UNKNOWN_SETTINGS else settings.requires_session
