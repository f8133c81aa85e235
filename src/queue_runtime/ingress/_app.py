"""The ASGI endpoint: read a bounded body, verify its signature, pick the session, enqueue,
and answer only once the queue has the message.

    413  the body is over the limit (by Content-Length at once, else while it streams in)
    401  the signature header is missing or wrong; nothing is enqueued
    400  not JSON, or a delivery the route cannot place (no event name, no session id, ...)
    202  enqueued (200 for an event skipped by rule, or a delivery id seen before)
    503  the queue is unreachable or missing (``Retry-After``): the sender should retry
"""

from __future__ import annotations

import json
import logging
import math
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from queue_runtime import (
    ClientClosed,
    Message,
    QueueClient,
    QueueError,
    QueueName,
    QueueNotFound,
    ValidationError,
)

from ._signature import secret_bytes, verify

__all__ = ["Delivery", "Rejected", "Router", "WebhookEvent", "build_app"]

_log = logging.getLogger("queue_runtime.ingress")


@dataclass(frozen=True, slots=True)
class WebhookEvent:
    """A delivery whose signature checked out, as a session hook sees it."""

    #: The event name (GitHub: ``X-GitHub-Event``), where the sender names one.
    name: str | None
    #: The sender's delivery id (GitHub: ``X-GitHub-Delivery``), where it gives one.
    delivery_id: str | None
    #: The parsed JSON payload.
    payload: Any
    headers: Mapping[str, str]


@dataclass(frozen=True, slots=True)
class Delivery:
    """Where and how an event is enqueued; ``skip`` answers 200 without enqueueing."""

    message_id: str | None
    session_id: str | None
    attributes: Mapping[str, str]
    skip: bool = False


class Rejected(Exception):
    """The delivery cannot be enqueued as sent (answered 400 with this text)."""


#: Turns a verified event into its `Delivery` (raises `Rejected`).
Router = Callable[[WebhookEvent], Delivery]


class _Ingress:
    """One webhook endpoint in front of one queue."""

    def __init__(
        self,
        client: QueueClient,
        queue: QueueName,
        *,
        secret: str | bytes,
        signature_header: str,
        signature_prefix: str,
        event_header: str | None,
        delivery_header: str | None,
        route: Router,
        max_body_size: int | None,
        retry_after: float,
        replay_cache_size: int,
    ) -> None:
        self._client = client
        self._queue = queue
        self._key = secret_bytes(secret)
        # raw ASGI header names (lower-case bytes): one dict per request, no per-lookup scans
        self._signature_header = signature_header.lower().encode("latin-1")
        self._prefix = signature_prefix
        self._event_header = event_header.lower().encode("latin-1") if event_header else None
        self._delivery_header = (
            delivery_header.lower().encode("latin-1") if delivery_header else None
        )
        self._route = route
        limit = client.capabilities.max_message_size
        self._limit = limit if max_body_size is None else min(max_body_size, limit)
        self._retry_after = str(max(1, math.ceil(retry_after)))
        self._seen: OrderedDict[str, None] = OrderedDict()
        self._seen_size = replay_cache_size

    async def _body(self, request: Request, raw: dict[bytes, bytes]) -> bytes | None:
        """The body, or ``None`` as soon as it is known to exceed the limit: at once by its
        Content-Length, else when the chunks received so far pass it (the rest is not read)."""
        limit = self._limit
        declared = raw.get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            return None
        chunks: list[bytes] = []
        size = 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                return None
            chunks.append(chunk)
        return chunks[0] if len(chunks) == 1 else b"".join(chunks)

    async def webhook(self, request: Request) -> Response:
        raw: dict[bytes, bytes] = dict(request.scope["headers"])
        body = await self._body(request, raw)
        if body is None:
            return _answer(413, f"body over {self._limit} bytes")
        if not verify(self._key, body, _text(raw.get(self._signature_header)), self._prefix):
            _log.warning("refused a delivery with a missing or wrong signature")
            return _answer(401, "missing or wrong signature")
        try:
            body, payload = _payload(body, _text(raw.get(b"content-type")) or "")
            event = WebhookEvent(
                name=_text(raw.get(self._event_header)) if self._event_header else None,
                delivery_id=(
                    _text(raw.get(self._delivery_header)) if self._delivery_header else None
                ),
                payload=payload,
                headers=request.headers,
            )
            delivery = self._route(event)
        except Rejected as exc:
            return _answer(400, str(exc))
        message_id = delivery.message_id
        if delivery.skip:
            return _answer(200, "skipped", message_id)
        if message_id is not None and message_id in self._seen:
            _log.info("delivery %s seen before: not enqueued again", message_id)
            return _answer(200, "duplicate", message_id)
        try:
            message = Message(
                body,
                session_id=delivery.session_id,
                attributes=delivery.attributes,
                message_id=message_id,
            )
            await self._client.send_message(self._queue, message)
        except ValidationError as exc:
            if "bytes; this queue takes at most" in str(exc):
                return _answer(413, str(exc))
            return _answer(400, str(exc))
        except QueueError as exc:
            return self._unavailable(exc, message_id)
        self._remember(message.message_id)
        return _answer(202, "enqueued", message.message_id, delivery.session_id)

    def _unavailable(self, exc: QueueError, message_id: str | None) -> Response:
        down = exc.retryable or isinstance(exc, (QueueNotFound, ClientClosed))
        _log.warning("delivery %s not enqueued: %s: %s", message_id, type(exc).__name__, exc)
        if not down:
            return _answer(500, "the queue refused the message")
        after = self._retry_after if exc.retry_after is None else str(math.ceil(exc.retry_after))
        return JSONResponse(
            {"status": "unavailable", "message_id": message_id},
            status_code=503,
            headers={"Retry-After": after},
        )

    def _remember(self, message_id: str) -> None:
        if self._seen_size <= 0:
            return
        seen = self._seen
        seen[message_id] = None
        if len(seen) > self._seen_size:
            seen.popitem(last=False)

    async def healthz(self, request: Request) -> Response:
        return JSONResponse({"status": "ok", "queue": str(self._queue)})


def _text(value: bytes | None) -> str | None:
    return None if value is None else value.decode("latin-1")


def _payload(body: bytes, content_type: str) -> tuple[bytes, Any]:
    """The JSON document of a delivery (also from GitHub's form-encoded ``payload=``).

    Only interoperable JSON (RFC 8259) is taken: UTF-8 text, numbers a float or a
    4,300-digit int holds, no ``NaN``/``Infinity``, nesting Python can parse. Anything else
    is `Rejected` (400): never an unhandled error (500), never seconds of CPU on one number,
    never a payload a consumer's own parser may refuse.
    """
    try:
        if content_type.startswith("application/x-www-form-urlencoded"):
            fields = parse_qs(body.decode("utf-8"), errors="strict")
            if "payload" not in fields:
                raise Rejected("form-encoded delivery without a payload field")
            body = fields["payload"][0].encode()
        text = body.decode("utf-8")
    except UnicodeError:
        raise Rejected("the body is not JSON: it is not UTF-8") from None
    try:
        return body, _DECODER.decode(text)
    except RecursionError:
        raise Rejected("the body is not JSON we take: it is nested too deeply") from None
    except json.JSONDecodeError as exc:
        raise Rejected(f"the body is not JSON: {exc.msg} at character {exc.pos}") from None


#: Python's own default limit on int() of a string (which a process may lift, to quadratic cost).
_MAX_DIGITS = 4300


def _integer(text: str) -> int:
    if len(text) > _MAX_DIGITS:
        raise Rejected(f"the body is not JSON we take: a number has over {_MAX_DIGITS} digits")
    return int(text)


def _finite(text: str) -> float:
    value = float(text)
    if math.isinf(value):
        raise Rejected("the body is not JSON we take: a number is out of a float's range")
    return value


def _no_constant(name: str) -> Any:
    raise Rejected(f"the body is not JSON: {name} is Python's extension, not JSON")


_DECODER = json.JSONDecoder(parse_int=_integer, parse_float=_finite, parse_constant=_no_constant)


def _answer(
    status: int, text: str, message_id: str | None = None, session_id: str | None = None
) -> Response:
    content: dict[str, object] = {"status": text}
    if message_id is not None:
        content["message_id"] = message_id
    if session_id is not None:
        content["session_id"] = session_id
    return JSONResponse(content, status_code=status)


def build_app(
    client: QueueClient,
    queue: QueueName | str,
    *,
    path: str,
    close_client: bool,
    **options: Any,
) -> Starlette:
    """The Starlette app serving ``POST path`` and ``GET /healthz`` for one `_Ingress`.

    Its lifespan opens the client (idempotent), and closes it when ``close_client``.
    """
    ingress = _Ingress(client, QueueName(queue), **options)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await client.open()
        try:
            yield
        finally:
            if close_client:
                await client.aclose()

    return Starlette(
        routes=[
            Route(path, ingress.webhook, methods=["POST"]),
            Route("/healthz", ingress.healthz, methods=["GET"]),
        ],
        lifespan=lifespan,
    )
