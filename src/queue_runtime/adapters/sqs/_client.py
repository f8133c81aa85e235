"""`SqsQueueClient`: the `QueueClient` port on Amazon SQS (boto3), sessions on FIFO groups.

The client composes one object per concern: `SqsConnection` (botocore, the pool, logging),
`QueueDirectory` (administration), `Sender`, `Receiver` (the poller and the registry) and
`Settler`; it owns their life (open, the keeper, close) and the sessions it accepted.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Final

from ..._arguments import check_max_messages, queue_definition, queue_name, timeout_seconds
from ..._capabilities import Capabilities
from ..._clock import to_seconds
from ..._errors import ConfigurationError, ValidationError
from ..._lifecycle import ClientLifecycle
from ..._messages import Message, ReceivedMessage
from ..._names import MessageId, QueueName, check_session_id
from ...config import AwsSqsConfig
from ...ports import DEFAULT_LOCK_DURATION, DEFAULT_MAX_DELIVERY_COUNT, QueueClient, Timeout
from ._codec import guaranteed_size
from ._connection import SqsConnection
from ._naming import group_id
from ._queues import QueueDirectory
from ._receiving import Receiver
from ._sending import Sender
from ._session import SqsSessionClient
from ._settlement import Settler

__all__ = ["SqsQueueClient"]

_DEFAULT_TIMEOUT: Final = 30.0
_MIN_MESSAGE_SIZE: Final = 1024
#: How often the keeper looks for held messages about to lapse.
_KEEP_TICK: Final = 0.2
#: Extensions of a held message no session holds before it goes back to SQS.
_MAX_KEEPS: Final = 3


class SqsQueueClient(ClientLifecycle, QueueClient):
    """Queues on Amazon SQS: session queues are FIFO queues, sessions their message groups.

    ``config`` names the region, credentials, endpoint and timeouts; whatever it leaves unset
    comes from boto3's own chain (``AWS_REGION``, ``AWS_ENDPOINT_URL_SQS``, shared
    credentials, instance roles, ...). See ``specs/sqs-adapter.md`` for what holds across
    processes.
    """

    def __init__(
        self,
        config: AwsSqsConfig | None = None,
        *,
        default_timeout: float | timedelta = _DEFAULT_TIMEOUT,
    ) -> None:
        self._config = config or AwsSqsConfig()
        if self._config.max_message_size < _MIN_MESSAGE_SIZE:
            raise ConfigurationError(
                f"max_message_size must be at least {_MIN_MESSAGE_SIZE} bytes on SQS"
            )
        self._default_timeout = to_seconds(default_timeout)
        max_size = self._config.max_message_size
        self._capabilities = Capabilities(
            sessions=True,
            session_state=False,
            exclusive_sessions_across_processes=False,
            scheduled_messages=False,
            message_ttl=True,
            lock_renewal=True,
            peek=False,
            statistics=False,
            durable=True,
            max_message_size=guaranteed_size(max_size),
        )
        self._connection = SqsConnection(self._config, self._check_open)
        self._queues = QueueDirectory(self._connection)
        self._settler = Settler(self._connection, self._queues, max_size)
        self._receiver = Receiver(self._connection, self._queues, self._settler)
        self._sender = Sender(self._queues, max_size, self._capabilities.max_message_size)
        self._sessions: set[SqsSessionClient] = set()
        self._keeper: asyncio.Task[None] | None = None

    def __repr__(self) -> str:
        # the config's repr hides its secrets
        return f"SqsQueueClient(state={self._state!r}, region={self._config.region!r})"

    @property
    def capabilities(self) -> Capabilities:
        return self._capabilities

    @property
    def config(self) -> AwsSqsConfig:
        return self._config

    # -- lifecycle --------------------------------------------------------------------------

    async def open(self) -> None:
        if not self._needs_open():
            return
        await self._connection.open()
        self._state = "open"
        self._keeper = asyncio.get_running_loop().create_task(self._keep())

    async def aclose(self) -> None:
        if self._state != "open":
            self._state = "closed"
            return
        self._connection.closing = True
        for session in list(self._sessions):
            await session.close()
        if self._keeper is not None:
            self._keeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._keeper
        await self._settler.finish()
        # what this client received and no session of the process holds goes back to SQS
        for (_, url), state in list(self._queues.touched.items()):
            await self._settler.give_back(url, state.release_all(self._receiver))
        self._state = "closed"
        self._connection.close()

    async def _keep(self) -> None:
        """Keep what this client received in flight until it is settled or given back.

        Runs while the client is open: extends held messages shortly before they would lapse
        (a session's, and for a while those no session holds), and gives back explicitly
        what it stops keeping. See `QueueState.keep_due`.
        """
        while True:
            await asyncio.sleep(_KEEP_TICK)
            for state in list(self._queues.touched.values()):
                await self._settler.keep(state, self._receiver, _KEEP_TICK, _MAX_KEEPS)

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
        await self._queues.create(name, settings)

    async def delete_queue(self, queue: QueueName | str) -> None:
        self._check_open()
        await self._queues.delete(queue_name(queue))

    # -- sending -------------------------------------------------------------------------

    async def send_message(self, queue: QueueName | str, message: Message) -> MessageId:
        self._check_open()
        return await self._sender.send_one(queue, message)

    async def send_messages(
        self, queue: QueueName | str, messages: Sequence[Message]
    ) -> list[MessageId]:
        """Send in order, in as few requests as SQS allows (10 messages and the size limit
        per request); a failure part way raises `BatchSendError` naming every unsent one,
        and those whose outcome is unknown (the answer was lost) in ``unknown``."""
        self._check_open()
        return await self._sender.send_many(queue, messages)

    # -- receiving from queues without sessions ------------------------------------------

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
        self._check_open()
        name = queue_name(queue)
        wait = timeout_seconds(timeout, self._default_timeout)
        return await self._receiver.receive(name, max_messages, wait)

    # -- settling ------------------------------------------------------------------------

    async def complete_message(self, message: ReceivedMessage) -> None:
        await self._settler.complete(self._settler.receipt(message, None))

    async def complete_messages(self, messages: Sequence[ReceivedMessage]) -> None:
        """Complete several messages in as few ``DeleteMessageBatch`` requests as SQS allows
        (10 per request). Every message is checked first; should some not be completed,
        `BatchSettleError` says which were and why the others were not."""
        self._check_open()
        await self._settler.complete_many(messages, None)

    async def abandon_message(self, message: ReceivedMessage) -> None:
        await self._settler.abandon(self._settler.receipt(message, None))

    async def abandon_messages(self, messages: Sequence[ReceivedMessage]) -> None:
        """Abandon several messages in as few ``ChangeMessageVisibilityBatch`` requests as SQS
        allows. Raises as `complete_messages`."""
        self._check_open()
        await self._settler.abandon_many(messages, None)

    async def dead_letter_message(
        self,
        message: ReceivedMessage,
        *,
        reason: str | None = None,
        description: str | None = None,
    ) -> None:
        await self._settler.dead_letter(self._settler.receipt(message, None), reason, description)

    async def renew_message_lock(self, message: ReceivedMessage) -> datetime:
        return await self._settler.renew(self._settler.receipt(message, None))

    # -- sessions ---------------------------------------------------------------------------

    async def accept_session(
        self,
        queue: QueueName | str,
        session_id: str | None = None,
        *,
        timeout: Timeout = None,
    ) -> SqsSessionClient | None:
        self._check_open()
        name = queue_name(queue)
        wait = timeout_seconds(timeout, self._default_timeout)
        if session_id is not None:
            check_session_id(session_id)
        info = await self._queues.info(name)
        if name.is_dead_letter or not info.fifo:
            raise ValidationError(f"queue {str(name)!r} does not require sessions")
        state, seconds = info.state, info.settings.lock_seconds
        if session_id is not None:
            lease = state.new_lease(group_id(session_id), session_id, seconds, self._receiver)
            extend = state.claim(lease)
        else:
            claimed = await self._receiver.claim_any(info, wait)
            if claimed is None:
                return None
            lease, extend = claimed
        session = SqsSessionClient(
            info,
            lease,
            receiver=self._receiver,
            settler=self._settler,
            check_open=self._check_open,
            default_timeout=self._default_timeout,
            on_close=self._sessions.discard,
        )
        self._sessions.add(session)
        try:
            await self._settler.extend(info, state, extend)
        except BaseException:
            await session.close()
            raise
        return session
