"""Reaching SQS: the botocore clients, the thread pool every call runs in, and call logging.

Every botocore call runs in a pool of ``config.max_workers`` threads sharing the botocore
clients (which are thread-safe), so the event loop never blocks on SQS. There are two clients
of one session: one for every call, and one for receives whose read timeout covers the
long-poll wait on top of ``config.read_timeout``.
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, Final, TypeVar

import botocore.session
from botocore.config import Config

from ..._errors import ClientClosed, ConfigurationError
from ..._logging import get_logger
from ..._messages import Message
from ...config import AwsSqsConfig
from ._errors import translate_errors

__all__ = ["LONG_POLL", "LOG", "Ids", "SqsConnection", "queue_of"]

#: The adapter's logger: DEBUG for every SQS call (ids only), WARNING for retries and lost locks.
LOG: Final = get_logger("adapters.sqs")
#: SQS's longest long poll, in seconds.
LONG_POLL: Final = 20

_R = TypeVar("_R")


class SqsConnection:
    """The botocore clients and the pool of one `SqsQueueClient`.

    ``check_open`` is the owning client's lifecycle check: every call runs it first.
    """

    def __init__(self, config: AwsSqsConfig, check_open: Callable[[], None]) -> None:
        self.config = config
        self.check_open = check_open
        self.sqs: Any = None
        self.poll_sqs: Any = None
        self.endpoint = ""
        #: Set when the client starts closing: a poll finishing later gives its messages back.
        self.closing = False
        self._executor: ThreadPoolExecutor | None = None

    async def open(self) -> None:
        executor = ThreadPoolExecutor(
            max_workers=self.config.max_workers, thread_name_prefix="queue-runtime-sqs"
        )
        try:
            sqs, poll_sqs = await asyncio.get_running_loop().run_in_executor(
                executor, self._connect
            )
        except BaseException:
            executor.shutdown(wait=False)
            raise
        self.sqs, self.poll_sqs, self._executor = sqs, poll_sqs, executor
        self.endpoint = str(sqs.meta.endpoint_url)

    def _connect(self) -> tuple[Any, Any]:
        """The two botocore clients (in the pool: reading config files and credentials is I/O).

        boto3's credential and region chain is botocore's; a botocore session is used
        directly so clients share one loaded service model (building one costs ~0.1 s).
        """
        config = self.config
        with translate_errors("connect"):
            session = _botocore_session(config.profile)
            # AWS_REGION, which other AWS SDKs read first, before boto3's own chain
            region = (
                config.region
                or os.environ.get("AWS_REGION")
                or session.get_config_variable("region")
            )
            if not region:
                raise ConfigurationError(
                    "no AWS region: set it in the URL (sqs://?region=eu-west-1), in "
                    "AwsSqsConfig(region=...), or in the environment (AWS_REGION, "
                    "AWS_DEFAULT_REGION) or the profile's config"
                )
            if config.access_key_id is None and session.get_credentials() is None:
                raise ConfigurationError(
                    "no AWS credentials found: set access_key_id and secret_access_key, a "
                    "profile, or boto3's environment (AWS_ACCESS_KEY_ID, AWS_PROFILE, ...)"
                )

            def client(read_timeout: float) -> Any:
                sqs = session.create_client(
                    "sqs",
                    region_name=region,
                    endpoint_url=config.endpoint_url,
                    aws_access_key_id=config.access_key_id,
                    aws_secret_access_key=_secret(config.secret_access_key),
                    aws_session_token=_secret(config.session_token),
                    config=Config(
                        max_pool_connections=config.max_workers,
                        retries={"mode": "standard", "total_max_attempts": config.max_attempts},
                        connect_timeout=config.connect_timeout,
                        read_timeout=read_timeout,
                    ),
                )
                sqs.meta.events.register("request-created.sqs", _log_retry)
                return sqs

            return client(config.read_timeout), client(config.read_timeout + LONG_POLL)

    def close(self) -> None:
        """Stop the pool; the botocore clients close once running calls are done."""
        executor, clients = self._executor, (self.sqs, self.poll_sqs)
        if executor is None:
            return
        executor.shutdown(wait=False, cancel_futures=True)

        def close_when_idle() -> None:
            executor.shutdown(wait=True)
            for sqs in clients:
                sqs.close()

        threading.Thread(target=close_when_idle, daemon=True).start()

    async def call(self, operation: str, /, about: object = "", **params: Any) -> Any:
        """Run SQS ``operation`` in the pool; errors come back as ours. ``about`` (ids, never
        a body) goes into the DEBUG log line, formatted only when it is written."""
        self.check_open()
        assert self._executor is not None
        if LOG.isEnabledFor(logging.DEBUG):
            queue = queue_of(params.get("QueueUrl") or params.get("QueueName"))
            LOG.debug("SQS %s on %s %s", operation, queue, about)
        try:
            return await asyncio.get_running_loop().run_in_executor(
                self._executor, self.invoke, operation, params
            )
        except RuntimeError as exc:
            if self.closing or self._executor is None:
                raise ClientClosed("the client was closed during the call") from exc
            raise

    def invoke(self, operation: str, params: dict[str, Any]) -> Any:
        """Call SQS ``operation`` in this thread (the pool's); errors come back as ours."""
        method = getattr(self.sqs, _METHODS[operation])
        with translate_errors(operation):
            return method(**params)

    def submit(self, function: Callable[..., _R], /, *args: Any) -> Future[_R]:
        """Run ``function(*args)`` in the pool (polls, which file their own results)."""
        self.check_open()
        assert self._executor is not None
        return self._executor.submit(function, *args)


class Ids:
    """Message (and session) ids for a log line, formatted only if the line is written.

    ``items`` are messages, or anything ``message`` maps to one (a held entry, a receipt).
    """

    __slots__ = ("items", "message")

    def __init__(
        self, items: Sequence[Any], message: Callable[[Any], Message] | None = None
    ) -> None:
        self.items = items
        self.message = message

    def __str__(self) -> str:
        messages = map(self.message, self.items) if self.message else self.items
        return "message_id[@session_id]=" + ",".join(
            m.message_id + (f"@{m.session_id}" if m.session_id is not None else "")
            for m in messages
        )


def queue_of(url: object) -> str:
    """The SQS queue name at the end of a queue URL (for logs)."""
    return str(url).rsplit("/", 1)[-1] if url else "-"


def _log_retry(request: Any, operation_name: str = "", **_: Any) -> None:
    """botocore builds a request per attempt: from the second on, it is a retry."""
    attempt = (getattr(request, "context", None) or {}).get("retries", {}).get("attempt", 1)
    if attempt > 1:
        LOG.warning("SQS %s: retrying, attempt %d", operation_name, attempt)


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
