"""Webhook ingress: an ASGI app (starlette, served by uvicorn; extra ``[ingress]``) that
verifies each delivery's HMAC-SHA256 signature and enqueues it in the session its events must
be ordered by, answering 202 only once the queue has it.

    app = github_app(client, "events", secret=os.environ["GITHUB_WEBHOOK_SECRET"])
    uvicorn.run(app, port=8000)      # or: queue-runtime ingress github --queue events
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from typing import Final

from starlette.applications import Starlette

from queue_runtime import QueueClient, QueueName

from ._app import Delivery, Rejected, WebhookEvent, build_app
from ._routing import fit_session_id, github_session_id, resolve_pointer
from ._signature import sign

__all__ = [
    "DEFAULT_RETRY_AFTER",
    "SessionHook",
    "WebhookEvent",
    "github_app",
    "github_session_id",
    "sign",
    "webhook_app",
]

#: A user's choice of session id for an event; ``None`` keeps the default rule's.
SessionHook = Callable[[WebhookEvent], str | None]

#: Seconds a sender is asked to wait (``Retry-After``) when the queue is down.
DEFAULT_RETRY_AFTER: Final = 5.0
_REPLAY_CACHE: Final = 10_000


def github_app(
    client: QueueClient,
    queue: QueueName | str,
    *,
    secret: str | bytes,
    path: str = "/webhook",
    session_id: SessionHook | None = None,
    skip_events: Collection[str] = ("ping",),
    max_body_size: int | None = None,
    retry_after: float = DEFAULT_RETRY_AFTER,
    replay_cache_size: int = _REPLAY_CACHE,
    close_client: bool = False,
) -> Starlette:
    """GitHub webhooks into ``queue``: ``X-Hub-Signature-256`` verified, message id =
    ``X-GitHub-Delivery``, session = `github_session_id` (or ``session_id``'s choice),
    attributes ``github_event``, ``github_delivery`` (and ``github_action`` where there is one).

    ``skip_events`` are answered 200 and not enqueued (GitHub's ``ping`` by default); a
    delivery id enqueued in the last ``replay_cache_size`` deliveries is not enqueued again.
    """
    skipped = frozenset(skip_events)

    def route(event: WebhookEvent) -> Delivery:
        if not event.name:
            raise Rejected("missing X-GitHub-Event header")
        if not event.delivery_id:
            raise Rejected("missing X-GitHub-Delivery header")
        attributes = {"github_event": event.name, "github_delivery": event.delivery_id}
        payload = event.payload
        action = payload.get("action") if isinstance(payload, dict) else None
        if isinstance(action, str):
            attributes["github_action"] = action
        chosen = session_id(event) if session_id is not None else None
        subject = chosen if chosen is not None else github_session_id(event.name, payload)
        return Delivery(
            message_id=event.delivery_id,
            session_id=fit_session_id(subject),
            attributes=attributes,
            skip=event.name in skipped,
        )

    return build_app(
        client,
        queue,
        path=path,
        close_client=close_client,
        secret=secret,
        signature_header="X-Hub-Signature-256",
        signature_prefix="sha256=",
        event_header="X-GitHub-Event",
        delivery_header="X-GitHub-Delivery",
        route=route,
        max_body_size=max_body_size,
        retry_after=retry_after,
        replay_cache_size=replay_cache_size,
    )


def webhook_app(
    client: QueueClient,
    queue: QueueName | str,
    *,
    secret: str | bytes,
    signature_header: str = "X-Signature-256",
    signature_prefix: str = "sha256=",
    session_pointer: str | None = None,
    session_header: str | None = None,
    session_id: SessionHook | None = None,
    message_id_header: str | None = None,
    event_header: str | None = None,
    path: str = "/webhook",
    max_body_size: int | None = None,
    retry_after: float = DEFAULT_RETRY_AFTER,
    replay_cache_size: int = _REPLAY_CACHE,
    close_client: bool = False,
) -> Starlette:
    """Any JSON webhook signed with a hex HMAC-SHA256 of the body in ``signature_header``.

    The session id comes from ``session_id(event)``, else the ``session_header`` header, else
    the value at JSON pointer ``session_pointer`` (RFC 6901); a delivery where the named place
    is empty is refused (400). With none of them, messages have no session. The message id is
    the ``message_id_header`` header where named (a repeat is not enqueued again), else new.
    Attributes: ``webhook_event`` (from ``event_header``) and ``webhook_delivery``.
    """
    if session_pointer is not None and session_header is not None:
        raise ValueError("session_pointer and session_header exclude each other")
    if session_pointer is not None:
        resolve_pointer({}, session_pointer)  # a malformed pointer fails here, not per request
    header = session_header.lower() if session_header is not None else None

    def route(event: WebhookEvent) -> Delivery:
        chosen = session_id(event) if session_id is not None else None
        if chosen is None and header is not None:
            chosen = event.headers.get(header)
            if not chosen:
                raise Rejected(f"missing {session_header} header")
        elif chosen is None and session_pointer is not None:
            found = resolve_pointer(event.payload, session_pointer)
            if found is None or isinstance(found, (dict, list)) or found == "":
                raise Rejected(f"no session id at {session_pointer}")
            chosen = found if isinstance(found, str) else json_scalar(found)
        if message_id_header is not None and not event.delivery_id:
            raise Rejected(f"missing {message_id_header} header")
        attributes: dict[str, str] = {}
        if event.name:
            attributes["webhook_event"] = event.name
        if event.delivery_id:
            attributes["webhook_delivery"] = event.delivery_id
        return Delivery(
            message_id=event.delivery_id,
            session_id=None if chosen is None else fit_session_id(chosen),
            attributes=attributes,
        )

    return build_app(
        client,
        queue,
        path=path,
        close_client=close_client,
        secret=secret,
        signature_header=signature_header,
        signature_prefix=signature_prefix,
        event_header=event_header,
        delivery_header=message_id_header,
        route=route,
        max_body_size=max_body_size,
        retry_after=retry_after,
        replay_cache_size=replay_cache_size,
    )


def json_scalar(value: object) -> str:
    """A number or boolean at a pointer as its JSON text (``42``, ``true``)."""
    import json

    return json.dumps(value)
