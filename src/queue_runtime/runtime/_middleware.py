"""The handler chain: a `MessageContext` passes through each `Middleware` to the handler.

A middleware is any ``async (context, call_next) -> None``; it may act before and after
``await call_next(context)``, or raise instead of calling it. The processor's own features
(rate limit, circuit breaker, timeout) are middleware of this same shape, outermost
first, around the user's own.
"""

from __future__ import annotations

import asyncio
import inspect
import typing
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Protocol

import pydantic

from .._errors import ValidationError
from .._messages import ReceivedMessage
from .._names import QueueName
from ..ports import SessionClient
from ._breaker import Breaker
from ._limits import RateLimiter
from ._policy import PayloadError

__all__ = [
    "CircuitBreakerMiddleware",
    "Handler",
    "MessageContext",
    "Middleware",
    "Next",
    "RateLimitMiddleware",
    "TimeoutMiddleware",
    "compose",
    "endpoint",
]


class MessageContext:
    """One attempt at one message, as it travels through the middleware chain."""

    __slots__ = ("attempt", "items", "message", "queue", "session")

    def __init__(
        self,
        message: ReceivedMessage,
        queue: QueueName,
        attempt: int,
        session: SessionClient | None,
    ) -> None:
        self.message = message
        self.queue = queue
        #: 1-based, across redeliveries (the message's ``delivery_count``).
        self.attempt = attempt
        #: The session being processed, for session queues.
        self.session = session
        #: Free-form values middleware hands to each other (and to a context-taking handler).
        self.items: dict[str, Any] = {}

    def __repr__(self) -> str:
        return (
            f"MessageContext(queue={str(self.queue)!r}, message_id={self.message.message_id!r}, "
            f"session_id={self.message.session_id!r}, attempt={self.attempt})"
        )


Next = Callable[[MessageContext], Awaitable[None]]
#: A handler takes the message, its parsed body (a pydantic model), or the context.
Handler = Callable[[Any], Awaitable[None]]


class Middleware(Protocol):
    """Runs around the rest of the chain: ``await call_next(context)`` to go on."""

    def __call__(self, context: MessageContext, call_next: Next, /) -> Awaitable[None]: ...


def compose(middleware: Sequence[Middleware], inner: Next) -> Next:
    """One callable for the whole chain (built once; outermost middleware first)."""
    call = inner
    for layer in reversed(middleware):
        call = _bind(layer, call)
    return call


def _bind(layer: Middleware, call_next: Next) -> Next:
    def call(context: MessageContext) -> Awaitable[None]:
        return layer(context, call_next)

    return call


def endpoint(handler: Handler) -> Next:
    """The innermost step: call ``handler`` with what its first parameter asks for.

    Annotated with a pydantic model, it gets the body parsed into that model (a body that does
    not parse raises `PayloadError`, which is permanent); with `MessageContext`, the context;
    otherwise the `ReceivedMessage`.
    """
    if not callable(handler):
        raise ValidationError(f"handler must be an async callable, not {type(handler).__name__}")
    kind = _parameter_type(handler)
    if isinstance(kind, type) and issubclass(kind, pydantic.BaseModel):
        model = kind

        async def typed(context: MessageContext) -> None:
            try:
                payload = model.model_validate_json(context.message.body)
            except pydantic.ValidationError as error:
                raise PayloadError(_summary(model, error)) from error
            await handler(payload)

        return typed
    if kind is MessageContext:
        return handler
    return _message_endpoint(handler)


def _message_endpoint(handler: Handler) -> Next:
    def plain(context: MessageContext) -> Awaitable[None]:
        return handler(context.message)

    return plain


def _parameter_type(handler: Handler) -> object:
    target: Any = handler
    if not (inspect.isfunction(handler) or inspect.ismethod(handler)):
        target = type(handler).__call__
    try:
        parameters = [
            p
            for p in inspect.signature(handler).parameters.values()
            if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)
        ]
    except (TypeError, ValueError):
        return None
    if not parameters:
        raise ValidationError(
            "a handler takes one argument: the message, its model, or the context"
        )
    annotation = parameters[0].annotation
    if not isinstance(annotation, str):
        return None if annotation is inspect.Parameter.empty else annotation
    try:
        return typing.get_type_hints(target).get(parameters[0].name)
    except NameError:
        raise ValidationError(
            f"cannot resolve the handler's annotation {annotation!r}: define the model at "
            "module level (or annotate with the class itself)"
        ) from None


def _summary(model: type[pydantic.BaseModel], error: pydantic.ValidationError) -> str:
    problems = "; ".join(
        f"{'.'.join(str(p) for p in e['loc']) or 'body'}: {e['msg']}" for e in error.errors()
    )
    return f"body is not a valid {model.__name__}: {problems}"


# -- built-ins -------------------------------------------------------------------------------


class CircuitBreakerMiddleware:
    """Waits while the breaker is open (holding the message), then records how the call went:
    transient failures count, a permanent one (the message's fault) does not."""

    def __init__(self, breaker: Breaker) -> None:
        self.breaker = breaker

    async def __call__(self, context: MessageContext, call_next: Next) -> None:
        breaker = self.breaker
        if breaker.state.state != "closed":
            await breaker.admit()
        started = breaker.started()
        try:
            await call_next(context)
        except BaseException as error:
            breaker.finished(error, started)
            raise
        breaker.finished(None, started)


class RateLimitMiddleware:
    """Starts at most ``limit.rate`` handler calls per second (token bucket)."""

    def __init__(self, limiter: RateLimiter) -> None:
        self.limiter = limiter

    async def __call__(self, context: MessageContext, call_next: Next) -> None:
        await self.limiter.acquire()
        await call_next(context)


class TimeoutMiddleware:
    """Cancels a handler that runs longer than ``seconds`` and fails the attempt with
    `TimeoutError` (transient: it is retried)."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds

    async def __call__(self, context: MessageContext, call_next: Next) -> None:
        async with asyncio.timeout(self.seconds):
            await call_next(context)
