"""`SqsQueueClient`: the `QueueClient` port on Amazon SQS (boto3), sessions on FIFO groups.

Every boto3 call runs in a thread pool of ``config.max_workers`` threads sharing one boto3
client (which is thread-safe), so the event loop never blocks on SQS. Receives go through the
process-wide registry (`._registry`): at most one receive per queue is in flight in the
process, and whatever it brings is filed for whoever waits for it.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import os
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Final, TypeVar

import botocore.session
from botocore.config import Config

from ..._arguments import (
    check_dead_letter_reason,
    check_max_messages,
    check_received,
    queue_definition,
    queue_name,
    timeout_seconds,
)
from ..._capabilities import Capabilities
from ..._clock import to_seconds
from ..._errors import (
    BatchSendError,
    ClientClosed,
    ConfigurationError,
    MessageLockLost,
    QueueAlreadyExists,
    QueueError,
    QueueNotFound,
    SessionLockLost,
    UnsupportedOperation,
    ValidationError,
)
from ..._lifecycle import ClientLifecycle
from ..._messages import Message, ReceivedMessage, validate_message
from ..._names import MessageId, QueueName, check_session_id
from ...config import AwsSqsConfig
from ...engine import MAX_DELIVERY_COUNT_EXCEEDED, TTL_EXPIRED
from ...ports import DEFAULT_LOCK_DURATION, DEFAULT_MAX_DELIVERY_COUNT, QueueClient, Timeout
from ._batches import MAX_BATCH, batch_outcome, plan_batches
from ._codec import METADATA_RESERVE, Outgoing, decode, encode, with_dead_letter
from ._errors import translate_errors
from ._naming import (
    SqsNames,
    candidate_names,
    dead_letter_dedup_id,
    dedup_id,
    group_id,
    sqs_names,
)
from ._registry import (
    MARGIN,
    Entry,
    Group,
    Lease,
    QueueSettingsView,
    QueueState,
    forget_state,
    queue_state,
)
from ._session import SqsSessionClient

__all__ = ["SqsQueueClient"]

_DEFAULT_TIMEOUT: Final = 30.0
#: SQS's longest long poll, in seconds.
_LONG_POLL: Final = 20
#: Pause between short polls while a wait of less than a second runs out.
_SHORT_POLL_PAUSE: Final = 0.25
#: SQS's longest retention: messages are kept until settled, up to 14 days.
_RETENTION: Final = str(14 * 24 * 3600)
_MAX_RECEIVE_COUNT: Final = 1000
_MAX_VISIBILITY: Final = 43200
_MIN_MESSAGE_SIZE: Final = 1024
_TTL_TAG: Final = "qr-default-ttl"
_DLOE_TAG: Final = "qr-dead-letter-on-expiration"
_SYSTEM_ATTRIBUTES: Final = [
    "ApproximateReceiveCount",
    "SentTimestamp",
    "MessageGroupId",
    "SequenceNumber",
]
_EXPIRED_TEXT: Final = "the message's time to live ran out"
#: How often the keeper looks for held messages about to lapse.
_KEEP_TICK: Final = 0.2
#: Extensions of a held message no session holds before it goes back to SQS.
_MAX_KEEPS: Final = 3

_R = TypeVar("_R")
_Doomed = list[tuple[Entry, str]]


@dataclass(frozen=True, slots=True)
class _QueueInfo:
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


class _Receipt:
    """What settling one delivery needs; opaque to callers."""

    __slots__ = ("dead_letter", "endpoint", "entry", "info", "lease", "state", "token", "url")

    def __init__(
        self,
        endpoint: str,
        info: _QueueInfo,
        state: QueueState,
        url: str,
        dead_letter: bool,
        entry: Entry,
    ) -> None:
        self.endpoint = endpoint
        self.info = info
        self.state = state
        self.url = url
        self.dead_letter = dead_letter
        self.entry = entry
        self.token = entry.token
        self.lease = entry.lease


class SqsQueueClient(ClientLifecycle, QueueClient):
    """Queues on Amazon SQS: session queues are FIFO queues, sessions their message groups.

    ``config`` names the region, credentials and endpoint; whatever it leaves unset comes
    from boto3's own chain (``AWS_REGION``, ``AWS_ENDPOINT_URL_SQS``, shared credentials,
    instance roles, ...). See ``specs/sqs-adapter.md`` for what holds across processes.
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
        self._max_size = self._config.max_message_size
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
            max_message_size=self._max_size - METADATA_RESERVE,
        )
        self._sqs: Any = None
        self._executor: ThreadPoolExecutor | None = None
        self._endpoint = ""
        self._queues: dict[QueueName, _QueueInfo] = {}
        self._touched: dict[tuple[str, str], QueueState] = {}
        self._sessions: set[SqsSessionClient] = set()
        self._keeper: asyncio.Task[None] | None = None
        #: Set when aclose starts: a poll finishing later gives its messages straight back.
        self._closing = False

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
        executor = ThreadPoolExecutor(
            max_workers=self._config.max_workers, thread_name_prefix="queue-runtime-sqs"
        )
        try:
            sqs = await asyncio.get_running_loop().run_in_executor(executor, self._connect)
        except BaseException:
            executor.shutdown(wait=False)
            raise
        self._sqs, self._executor = sqs, executor
        self._endpoint = str(sqs.meta.endpoint_url)
        self._state = "open"
        self._keeper = asyncio.get_running_loop().create_task(self._keep())

    def _connect(self) -> Any:
        """An SQS client (runs in the pool: reading config files and credentials is I/O).

        boto3's credential and region chain is botocore's; a botocore session is used
        directly so clients share one loaded service model (building one costs ~0.1 s).
        """
        config = self._config
        with translate_errors("connect"):
            session = _botocore_session(config.profile)
            # AWS_REGION, which other AWS SDKs read first, before boto3's own chain
            region = (
                config.region
                or os.environ.get("AWS_REGION")
                or session.get_config_variable("region")
            )
            if config.access_key_id is None and session.get_credentials() is None:
                raise ConfigurationError(
                    "no AWS credentials found: set access_key_id and secret_access_key, a "
                    "profile, or boto3's environment (AWS_ACCESS_KEY_ID, AWS_PROFILE, ...)"
                )
            return session.create_client(
                "sqs",
                region_name=region,
                endpoint_url=config.endpoint_url,
                aws_access_key_id=config.access_key_id,
                aws_secret_access_key=_secret(config.secret_access_key),
                aws_session_token=_secret(config.session_token),
                config=Config(
                    max_pool_connections=config.max_workers,
                    retries={"mode": "standard", "max_attempts": 3},
                    connect_timeout=10,
                    read_timeout=_LONG_POLL + 40,
                ),
            )

    async def aclose(self) -> None:
        if self._state != "open":
            self._state = "closed"
            return
        self._closing = True
        for session in list(self._sessions):
            await session.close()
        if self._keeper is not None:
            self._keeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._keeper
        # what this client received and no session of the process holds goes back to SQS
        for (_, url), state in list(self._touched.items()):
            await self._give_back(url, state.release_all(self))
        self._state = "closed"
        executor, sqs = self._executor, self._sqs
        if executor is not None:
            executor.shutdown(wait=False, cancel_futures=True)

            def close_when_idle() -> None:
                executor.shutdown(wait=True)
                sqs.close()

            threading.Thread(target=close_when_idle, daemon=True).start()

    async def _keep(self) -> None:
        """Keep what this client received in flight until it is settled or given back.

        Runs while the client is open: extends held messages shortly before they would lapse
        (a session's, and for a while those no session holds), and gives back explicitly
        what it stops keeping. See `QueueState.keep_due`.
        """
        while True:
            await asyncio.sleep(_KEEP_TICK)
            for state in list(self._touched.values()):
                settings = state.settings
                if settings is None:
                    continue
                seconds = settings.lock_seconds
                lead = min(max(3 * _KEEP_TICK, 0.25 * seconds), 0.5 * seconds)
                extend, release = state.keep_due(self, lead, _MAX_KEEPS)
                url = state.key[1]
                with contextlib.suppress(QueueError):
                    if extend:
                        start, start_wall = time.monotonic(), time.time()
                        refused = await self._set_visibility(url, extend, seconds)
                        kept = [entry for entry in extend if entry not in refused]
                        state.extended(kept, start, start_wall, seconds)
                    if release:
                        await self._set_visibility(url, release, 0)

    # -- calling SQS --------------------------------------------------------------------------

    async def _call(self, operation: str, /, **params: Any) -> Any:
        """Run SQS ``operation`` in the pool; errors come back as ours."""
        self._check_open()
        assert self._executor is not None
        try:
            return await asyncio.get_running_loop().run_in_executor(
                self._executor, self._invoke, operation, params
            )
        except RuntimeError as exc:
            if self._state != "open":
                raise ClientClosed("the client was closed during the call") from exc
            raise

    def _invoke(self, operation: str, params: dict[str, Any]) -> Any:
        method = getattr(self._sqs, _METHODS[operation])
        with translate_errors(operation):
            return method(**params)

    async def _call_queue(self, info: _QueueInfo, operation: str, /, **params: Any) -> Any:
        """`_call` on one of ``info``'s queues: a vanished queue is forgotten."""
        try:
            return await self._call(operation, **params)
        except QueueNotFound:
            self._queues.pop(info.name, None)
            raise

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
        try:
            existing = await self._info(name)
        except QueueNotFound:
            existing = None
        if existing is not None:
            if existing.fifo != names.fifo or existing.settings != wanted:
                raise QueueAlreadyExists(
                    f"queue {str(name)!r} exists with other settings: "
                    f"requires_session={existing.fifo}, {_describe(existing.settings)}"
                )
            return
        attributes = {"VisibilityTimeout": str(int(lock)), "MessageRetentionPeriod": _RETENTION}
        if names.fifo:
            attributes["FifoQueue"] = "true"
        created = await self._call(
            "CreateQueue",
            QueueName=names.dead_letter,
            Attributes=attributes,
            tags={"qr-role": "dead-letter"},
        )
        dead_letter_url = created["QueueUrl"]
        arn = (
            await self._call(
                "GetQueueAttributes", QueueUrl=dead_letter_url, AttributeNames=["QueueArn"]
            )
        )["Attributes"]["QueueArn"]
        redrive = {"deadLetterTargetArn": arn, "maxReceiveCount": settings.max_delivery_count}
        tags: dict[str, str] = {"qr-role": "queue"}
        if settings.default_message_ttl is not None:
            tags[_TTL_TAG] = repr(settings.default_message_ttl)
        if settings.dead_letter_on_expiration:
            tags[_DLOE_TAG] = "true"
        created = await self._call(
            "CreateQueue",
            QueueName=names.queue,
            Attributes={**attributes, "RedrivePolicy": json.dumps(redrive)},
            tags=tags,
        )
        self._queues[name] = self._make_info(
            name, names, created["QueueUrl"], dead_letter_url, wanted
        )

    async def delete_queue(self, queue: QueueName | str) -> None:
        self._check_open()
        name = queue_name(queue)
        if name.is_dead_letter:
            raise ValidationError("a dead-letter queue is deleted with its queue")
        info = await self._info(name)
        self._queues.pop(name, None)
        await self._call("DeleteQueue", QueueUrl=info.url)
        self._forget(info.url)
        if info.dead_letter_url is not None:
            with contextlib.suppress(QueueNotFound):
                await self._call("DeleteQueue", QueueUrl=info.dead_letter_url)
            self._forget(info.dead_letter_url)

    def _forget(self, url: str) -> None:
        """Drop what the process holds of a deleted queue."""
        self._touched.pop((self._endpoint, url), None)
        forget_state(self._endpoint, url)

    async def _info(self, name: QueueName) -> _QueueInfo:
        """``name``'s queue (for a dead-letter queue: its parent's), looked up once."""
        base = name.parent
        info = self._queues.get(base)
        if info is None:
            info = self._queues[base] = await self._lookup(base)
        return info

    async def _lookup(self, name: QueueName) -> _QueueInfo:
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
        attributes, tags = await asyncio.gather(
            self._call("GetQueueAttributes", QueueUrl=url, AttributeNames=["All"]),
            self._call("ListQueueTags", QueueUrl=url),
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
            response = await self._call("GetQueueUrl", QueueName=sqs_name)
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
    ) -> _QueueInfo:
        state = queue_state(self._endpoint, url, session=names.fifo)
        state.settings = settings
        self._touched[state.key] = state
        dead_letter_state = None
        if dead_letter_url is not None:
            dead_letter_state = queue_state(self._endpoint, dead_letter_url, session=False)
            dead_letter_state.settings = QueueSettingsView(
                max_delivery_count=settings.max_delivery_count,
                lock_seconds=settings.lock_seconds,
                default_ttl=None,
                dead_letter_on_expiration=False,
                dead_letter=True,
            )
            self._touched[dead_letter_state.key] = dead_letter_state
        return _QueueInfo(name, names, url, dead_letter_url, settings, state, dead_letter_state)

    # -- sending -------------------------------------------------------------------------

    async def send_message(self, queue: QueueName | str, message: Message) -> MessageId:
        self._check_open()
        info = await self._send_target(queue)
        params, _ = self._prepare(info, message)
        await self._call_queue(info, "SendMessage", QueueUrl=info.url, **params)
        return str.__new__(MessageId, message.message_id)

    async def send_messages(
        self, queue: QueueName | str, messages: Sequence[Message]
    ) -> list[MessageId]:
        """Send in order, in as few requests as SQS allows (10 messages and the size limit
        per request); a failure part way raises `BatchSendError` naming every unsent one."""
        self._check_open()
        info = await self._send_target(queue)
        prepared = [self._prepare(info, message) for message in messages]
        sent: list[str] = []
        batches = plan_batches([size for _, size in prepared], self._max_size)
        for number, batch in enumerate(batches):
            entries = [{"Id": str(index), **prepared[index][0]} for index in batch]
            try:
                response = await self._call_queue(
                    info, "SendMessageBatch", QueueUrl=info.url, Entries=entries
                )
            except QueueError as exc:
                if not sent:
                    raise
                unsent = [index for later in batches[number:] for index in later]
                raise _batch_error(messages, sent, [(i, str(exc), False) for i in unsent]) from exc
            ok, failed = batch_outcome(batch, response)
            sent.extend(messages[index].message_id for index in ok)
            if failed:
                rest = [index for later in batches[number + 1 :] for index in later]
                failed += [
                    (i, "not sent: an earlier message of the batch failed", False) for i in rest
                ]
                raise _batch_error(messages, sent, failed)
        return [str.__new__(MessageId, message.message_id) for message in messages]

    async def _send_target(self, queue: QueueName | str) -> _QueueInfo:
        name = queue_name(queue)
        if name.is_dead_letter:
            raise ValidationError("messages cannot be sent to a dead-letter queue")
        return await self._info(name)

    def _prepare(self, info: _QueueInfo, message: Message) -> tuple[dict[str, Any], int]:
        """Validate and encode ``message`` for ``info``'s queue: (request fields, SQS size)."""
        validate_message(
            message, max_size=self._capabilities.max_message_size, requires_session=info.fifo
        )
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
        info = await self._info(name)
        dead_letter = name.is_dead_letter
        if dead_letter:
            if info.dead_letter_url is None or info.dead_letter_state is None:
                raise QueueNotFound(f"queue {str(info.name)!r} has no dead-letter queue")
            state, url = info.dead_letter_state, info.dead_letter_url
        else:
            if info.fifo:
                raise ValidationError(
                    f"queue {str(name)!r} requires sessions: use accept_session to receive from it"
                )
            state, url = info.state, info.url
        entries = await self._await(
            info,
            state,
            url,
            dead_letter,
            lambda: _something(state.take_plain(max_messages)),
            poll_max=min(max_messages, MAX_BATCH),
            deadline=asyncio.get_running_loop().time() + wait,
        )
        return [self._received(info, state, url, dead_letter, entry) for entry in entries or ()]

    def _received(
        self, info: _QueueInfo, state: QueueState, url: str, dead_letter: bool, entry: Entry
    ) -> ReceivedMessage:
        incoming = entry.incoming
        lease = entry.lease
        return ReceivedMessage(
            incoming.message,
            entry.count,
            incoming.enqueued,
            lease.until_wall if lease is not None else entry.deadline_wall,
            incoming.dead_letter_reason,
            incoming.dead_letter_description,
            incoming.sequence_number,
            _Receipt(self._endpoint, info, state, url, dead_letter, entry),
        )

    async def _await(
        self,
        info: _QueueInfo,
        state: QueueState,
        url: str,
        dead_letter: bool,
        take: Callable[[], tuple[_R, _Doomed] | None],
        *,
        poll_max: int,
        deadline: float,
    ) -> _R | None:
        """Wait until ``take()`` finds something in the registry, polling SQS meanwhile.

        At most one poll per queue is in flight in the process; a waiter whose own poll is
        not running waits for the registry to be fed by another's. Long polls are used for
        waits of a second or more; shorter waits poll a few times. ``deadline`` is in loop
        time; at least one poll is made, so ``timeout=0`` still looks.
        """
        loop = asyncio.get_running_loop()
        own: Future[None] | None = None
        own_seconds = 0
        polled = False
        pace_until = 0.0
        while True:
            now = loop.time()
            remaining = deadline - now
            start_poll = None
            if own is None and now >= pace_until and (remaining > 0 or not polled):
                own_seconds = int(min(remaining, _LONG_POLL)) if remaining >= 1 else 0
                start_poll = functools.partial(
                    self._submit_poll, state, url, dead_letter, poll_max, own_seconds
                )
            got, waiter, started = state.take_or_wait(take, start_poll)
            if got is not None:
                result, doomed = got
                if doomed:
                    await self._dispose(info, state, url, doomed)
                if result:
                    return result
                continue
            if started is not None:
                own = started
                if own_seconds == 0:
                    pace_until = now + _SHORT_POLL_PAUSE
            try:
                if own is not None and not own.done():
                    if remaining > 0:
                        await waiter.wait(remaining)  # type: ignore[union-attr]
                    elif own_seconds == 0:
                        await waiter.wait(None)  # type: ignore[union-attr]
                    else:
                        return None
                elif own is None:
                    if remaining <= 0 and polled:
                        return None
                    if remaining <= 0 and state.polling is not None:
                        # another waiter's long poll is out: SQS has nothing visible now
                        return None
                    pause = pace_until - now if pace_until > now else remaining
                    await waiter.wait(max(0.0, min(remaining, pause)))  # type: ignore[union-attr]
            finally:
                state.remove_waiter(waiter)
            if own is not None and own.done():
                exc = own.exception()
                own, polled = None, True
                if exc is not None:
                    if isinstance(exc, QueueNotFound):
                        self._queues.pop(info.name, None)
                    raise exc

    def _submit_poll(
        self, state: QueueState, url: str, dead_letter: bool, max_messages: int, seconds: int
    ) -> Future[None]:
        self._check_open()
        assert self._executor is not None
        return self._executor.submit(self._poll, state, url, dead_letter, max_messages, seconds)

    def _poll(
        self, state: QueueState, url: str, dead_letter: bool, max_messages: int, seconds: int
    ) -> None:
        """One ReceiveMessage (in a pool thread); what it brings is filed in the registry."""
        settings = state.settings
        assert settings is not None
        start, start_wall = time.monotonic(), time.time()
        with translate_errors("ReceiveMessage"):
            response = self._sqs.receive_message(
                QueueUrl=url,
                MaxNumberOfMessages=max_messages,
                WaitTimeSeconds=seconds,
                VisibilityTimeout=settings.lock_seconds,
                MessageAttributeNames=["All"],
                MessageSystemAttributeNames=_SYSTEM_ATTRIBUTES,
            )
        elapsed = time.monotonic() - start
        if elapsed > 1.0:
            # a long poll that waited: the messages were taken near its end
            start += elapsed - 1.0
            start_wall += elapsed - 1.0
        received = [
            decode(raw, dead_letter_queue=dead_letter) for raw in response.get("Messages") or ()
        ]
        state.deposit(received, start, start_wall, self)
        if self._closing:
            # the client is closing and keeps nothing: back to SQS with them, in order
            released = state.release_all(self)
            with contextlib.suppress(QueueError, RuntimeError):
                for first in range(0, len(released), MAX_BATCH):
                    self._invoke(
                        "ChangeMessageVisibilityBatch",
                        {
                            "QueueUrl": url,
                            "Entries": [
                                {
                                    "Id": str(i),
                                    "ReceiptHandle": entry.incoming.receipt_handle,
                                    "VisibilityTimeout": 0,
                                }
                                for i, entry in enumerate(released[first : first + MAX_BATCH])
                            ],
                        },
                    )

    async def _dispose(
        self, info: _QueueInfo, state: QueueState, url: str, doomed: _Doomed
    ) -> None:
        """Delete or dead-letter messages that must not be delivered (expired or spent)."""
        for entry, why in doomed:
            if why == "expired" and not info.settings.dead_letter_on_expiration:
                await self._delete(info, state, url, entry)
            elif why == "expired":
                await self._move_to_dead_letter(info, state, url, entry, TTL_EXPIRED, _EXPIRED_TEXT)
            else:
                text = f"delivered {entry.next_count - 1} times without being completed"
                await self._move_to_dead_letter(
                    info, state, url, entry, MAX_DELIVERY_COUNT_EXCEEDED, text
                )

    # -- settling ------------------------------------------------------------------------

    def _receipt(self, message: ReceivedMessage) -> _Receipt:
        self._check_open()
        receipt = check_received(message, _Receipt)
        assert isinstance(receipt, _Receipt)
        if receipt.endpoint != self._endpoint:
            raise ValidationError("this message was received from another SQS endpoint")
        return receipt

    async def complete_message(self, message: ReceivedMessage) -> None:
        await self._complete(self._receipt(message))

    async def abandon_message(self, message: ReceivedMessage) -> None:
        await self._abandon(self._receipt(message))

    async def dead_letter_message(
        self,
        message: ReceivedMessage,
        *,
        reason: str | None = None,
        description: str | None = None,
    ) -> None:
        await self._dead_letter(self._receipt(message), reason, description)

    async def renew_message_lock(self, message: ReceivedMessage) -> datetime:
        receipt = self._receipt(message)
        entry, state = receipt.entry, receipt.state
        state.reserve(entry, receipt.token)
        if entry.lease is not None:
            state.unreserve(entry)
            raise ValidationError("session messages are locked by their session: renew that")
        seconds = receipt.info.settings.lock_seconds
        start, start_wall = time.monotonic(), time.time()
        await self._call_reserved(
            receipt.info,
            state,
            entry,
            "ChangeMessageVisibility",
            QueueUrl=receipt.url,
            VisibilityTimeout=seconds,
        )
        state.extended([entry], start, start_wall, seconds)
        state.unreserve(entry)
        return datetime.fromtimestamp(entry.deadline_wall, UTC)

    async def complete_messages(self, messages: Sequence[ReceivedMessage]) -> None:
        """Complete several messages in as few requests as SQS allows (10 per request).

        Every receipt is checked first (`MessageLockLost`/`SessionLockLost`: none is
        completed). Should SQS refuse some, the others stay completed and `MessageLockLost`
        names the refused ones.
        """
        receipts = [self._receipt(message) for message in messages]
        reserved: list[_Receipt] = []
        try:
            for receipt in receipts:
                receipt.state.reserve(receipt.entry, receipt.token)
                reserved.append(receipt)
        except BaseException:
            for receipt in reserved:
                receipt.state.unreserve(receipt.entry)
            raise
        refused: list[str] = []
        by_url: dict[str, list[_Receipt]] = {}
        for receipt in receipts:
            by_url.setdefault(receipt.url, []).append(receipt)
        for url, group in by_url.items():
            for start in range(0, len(group), MAX_BATCH):
                chunk = group[start : start + MAX_BATCH]
                try:
                    response = await self._call_queue(
                        chunk[0].info,
                        "DeleteMessageBatch",
                        QueueUrl=url,
                        Entries=[
                            {"Id": str(i), "ReceiptHandle": r.entry.incoming.receipt_handle}
                            for i, r in enumerate(chunk)
                        ],
                    )
                except BaseException:
                    for receipt in group[start:]:
                        receipt.state.unreserve(receipt.entry)
                    for later in list(by_url)[list(by_url).index(url) + 1 :]:
                        for receipt in by_url[later]:
                            receipt.state.unreserve(receipt.entry)
                    raise
                failed = {str(entry.get("Id")) for entry in response.get("Failed") or ()}
                for i, receipt in enumerate(chunk):
                    if str(i) in failed:
                        receipt.state.lost(receipt.entry)
                        refused.append(receipt.entry.incoming.message.message_id)
                    else:
                        receipt.state.settled(receipt.entry)
        if refused:
            raise MessageLockLost(f"SQS refused to complete {len(refused)} message(s): {refused}")

    async def _complete(self, receipt: _Receipt) -> None:
        receipt.state.reserve(receipt.entry, receipt.token)
        await self._delete(receipt.info, receipt.state, receipt.url, receipt.entry)

    async def _call_reserved(
        self, info: _QueueInfo, state: QueueState, entry: Entry, operation: str, **params: Any
    ) -> None:
        """Call SQS about a reserved message with its receipt handle. If SQS says the lock is
        gone the entry is marked lost; on any other failure it is unreserved (still held)."""
        try:
            await self._call_queue(
                info, operation, ReceiptHandle=entry.incoming.receipt_handle, **params
            )
        except MessageLockLost:
            state.lost(entry)
            raise
        except BaseException:
            state.unreserve(entry)
            raise

    async def _delete(self, info: _QueueInfo, state: QueueState, url: str, entry: Entry) -> None:
        """Delete a reserved message."""
        await self._call_reserved(info, state, entry, "DeleteMessage", QueueUrl=url)
        state.settled(entry)

    async def _abandon(self, receipt: _Receipt) -> None:
        entry, state = receipt.entry, receipt.state
        state.reserve(entry, receipt.token)
        if entry.lease is not None:
            # in a session the message stays in flight, held for the session, and comes back
            # first; SQS cannot put it back ahead of the group's later messages otherwise
            if entry.count >= receipt.info.settings.max_delivery_count:
                text = f"delivered {entry.count} times without being completed"
                await self._move_to_dead_letter(
                    receipt.info, state, receipt.url, entry, MAX_DELIVERY_COUNT_EXCEEDED, text
                )
            else:
                state.returned(entry)
            return
        await self._call_reserved(
            receipt.info,
            state,
            entry,
            "ChangeMessageVisibility",
            QueueUrl=receipt.url,
            VisibilityTimeout=0,
        )
        state.released(entry)
        state.wake_all()

    async def _dead_letter(
        self, receipt: _Receipt, reason: str | None, description: str | None
    ) -> None:
        check_dead_letter_reason(reason, description)
        if receipt.dead_letter:
            raise ValidationError("a message in a dead-letter queue cannot be dead-lettered again")
        receipt.state.reserve(receipt.entry, receipt.token)
        await self._move_to_dead_letter(
            receipt.info, receipt.state, receipt.url, receipt.entry, reason, description
        )

    async def _move_to_dead_letter(
        self,
        info: _QueueInfo,
        state: QueueState,
        url: str,
        entry: Entry,
        reason: str | None,
        description: str | None,
    ) -> None:
        """Send a reserved message to the dead-letter queue (same group), then delete it."""
        if info.dead_letter_url is None:
            state.unreserve(entry)
            raise ConfigurationError(
                f"queue {str(info.name)!r} has no dead-letter queue (no redrive policy)"
            )
        incoming = entry.incoming
        outgoing = with_dead_letter(incoming, reason, description, max_size=self._max_size)
        params: dict[str, Any] = {
            "QueueUrl": info.dead_letter_url,
            "MessageBody": outgoing.body,
            "MessageAttributes": outgoing.attributes,
        }
        if info.fifo:
            params["MessageGroupId"] = incoming.group_id or group_id(
                incoming.message.session_id or "-"
            )
            params["MessageDeduplicationId"] = dead_letter_dedup_id(incoming.sqs_id)
        if not entry.moved:  # a retry after a failed delete does not send again
            try:
                await self._call_queue(info, "SendMessage", **params)
            except BaseException:
                state.unreserve(entry)
                raise
            entry.moved = True
        await self._delete(info, state, url, entry)

    async def _set_visibility(
        self, url: str, entries: Sequence[Entry], seconds: int
    ) -> list[Entry]:
        """ChangeMessageVisibilityBatch; returns the entries SQS refused."""
        refused: list[Entry] = []
        for start in range(0, len(entries), MAX_BATCH):
            chunk = entries[start : start + MAX_BATCH]
            response = await self._call(
                "ChangeMessageVisibilityBatch",
                QueueUrl=url,
                Entries=[
                    {
                        "Id": str(i),
                        "ReceiptHandle": entry.incoming.receipt_handle,
                        "VisibilityTimeout": seconds,
                    }
                    for i, entry in enumerate(chunk)
                ],
            )
            failed = {str(item.get("Id")) for item in response.get("Failed") or ()}
            refused.extend(entry for i, entry in enumerate(chunk) if str(i) in failed)
        return refused

    async def _extend(
        self, info: _QueueInfo, state: QueueState, entries: Sequence[Entry]
    ) -> tuple[float, float]:
        """Extend held messages' visibility by the lock duration; forget those SQS refused.
        Returns when the call was sent (monotonic, wall)."""
        start, start_wall = time.monotonic(), time.time()
        seconds = info.settings.lock_seconds
        if entries:
            refused = await self._set_visibility(info.url, entries, seconds)
            state.extended([e for e in entries if e not in refused], start, start_wall, seconds)
            for entry in refused:
                state.lost(entry)
        return start, start_wall

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
        info = await self._info(name)
        if name.is_dead_letter or not info.fifo:
            raise ValidationError(f"queue {str(name)!r} does not require sessions")
        state, seconds = info.state, info.settings.lock_seconds
        if session_id is not None:
            lease = state.new_lease(group_id(session_id), session_id, seconds, self)
            extend = state.claim(lease)
        else:
            claimed = await self._await(
                info,
                state,
                info.url,
                False,
                lambda: _claimed(
                    state.claim_next(functools.partial(_lease_for, state, seconds, self))
                ),
                poll_max=MAX_BATCH,
                deadline=asyncio.get_running_loop().time() + wait,
            )
            if claimed is None:
                return None
            lease, extend = claimed
        session = SqsSessionClient(self, info, lease)
        self._sessions.add(session)
        try:
            await self._extend(info, state, extend)
        except BaseException:
            await session.close()
            raise
        return session

    async def _session_receive(
        self, session: SqsSessionClient, max_messages: int, timeout: Timeout
    ) -> list[ReceivedMessage]:
        lease = session._check()
        info = session._info
        state = info.state
        wait = timeout_seconds(timeout, self._default_timeout)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + wait
        while True:
            # a wait outliving the lease ends with it (loop time is monotonic time); a renewal
            # meanwhile lets it go on
            until = lease.until
            entries = await self._await(
                info,
                state,
                info.url,
                False,
                lambda: _something(state.take_session(lease, max_messages)),
                poll_max=MAX_BATCH,
                deadline=min(deadline, until),
            )
            if entries:
                return [self._received(info, state, info.url, False, e) for e in entries]
            session._check()
            if lease.until - time.monotonic() < 0.01:
                raise SessionLockLost(f"the lock on session {lease.session_id!r} expired")
            if lease.until == until or loop.time() >= deadline:
                return []

    async def _renew_session(self, session: SqsSessionClient) -> datetime:
        lease = session._check()
        info = session._info
        entries = info.state.session_entries(lease)
        start, start_wall = await self._extend(info, info.state, entries)
        seconds = info.settings.lock_seconds
        lease.until = start + seconds - MARGIN
        lease.until_wall = start_wall + seconds - MARGIN
        return datetime.fromtimestamp(lease.until_wall, UTC)

    def _forget_session(self, session: SqsSessionClient) -> None:
        self._sessions.discard(session)

    async def _give_back(self, url: str, entries: Sequence[Entry]) -> None:
        """Make messages the registry forgot visible again (best effort: if this fails they
        come back when their visibility runs out)."""
        with contextlib.suppress(QueueError):
            await self._set_visibility(url, entries, 0)


def _lease_for(state: QueueState, seconds: int, owner: object, group: Group) -> Lease:
    session_id = group.entries[0].incoming.message.session_id or group.id
    return state.new_lease(group.id, session_id, seconds, owner)


def _something(
    taken: tuple[list[Entry], _Doomed],
) -> tuple[list[Entry], _Doomed] | None:
    delivered, doomed = taken
    return taken if delivered or doomed else None


def _claimed(
    claimed: tuple[Lease | None, list[Entry], _Doomed],
) -> tuple[tuple[Lease, list[Entry]] | None, _Doomed] | None:
    lease, extend, doomed = claimed
    if lease is None and not doomed:
        return None
    return (lease, extend) if lease is not None else None, doomed


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


def _describe(settings: QueueSettingsView) -> str:
    return (
        f"max_delivery_count={settings.max_delivery_count}, "
        f"lock_duration={settings.lock_seconds}s, "
        f"default_message_ttl={settings.default_ttl}, "
        f"dead_letter_on_expiration={settings.dead_letter_on_expiration}"
    )


def _batch_error(
    messages: Sequence[Message], sent: list[str], failed: list[tuple[int, str, bool]]
) -> BatchSendError:
    retryable = all(not sender_fault for _, _, sender_fault in failed)
    first = failed[0][1]
    return BatchSendError(
        f"{len(failed)} of {len(messages)} messages were not sent (first: {first}); "
        f"{len(sent)} were",
        sent=sent,
        failed=[(messages[index].message_id, reason) for index, reason, _ in failed],
        retryable=retryable,
    )


_loader_lock = threading.Lock()
_loader: Any = None


def _botocore_session(profile: str | None) -> Any:
    """A fresh botocore session (own profile, credentials, region) sharing one data loader."""
    global _loader
    session = botocore.session.Session(profile=profile)
    with _loader_lock:
        if _loader is None:
            _loader = session.get_component("data_loader")
        else:
            session.register_component("data_loader", _loader)
    return session


def _secret(value: Any) -> str | None:
    return None if value is None else str(value.get_secret_value())


# boto3 method of each SQS operation the adapter calls
_METHODS: Final = {
    "ChangeMessageVisibility": "change_message_visibility",
    "ChangeMessageVisibilityBatch": "change_message_visibility_batch",
    "CreateQueue": "create_queue",
    "DeleteMessage": "delete_message",
    "DeleteMessageBatch": "delete_message_batch",
    "DeleteQueue": "delete_queue",
    "GetQueueAttributes": "get_queue_attributes",
    "GetQueueUrl": "get_queue_url",
    "ListQueueTags": "list_queue_tags",
    "ReceiveMessage": "receive_message",
    "SendMessage": "send_message",
    "SendMessageBatch": "send_message_batch",
}
