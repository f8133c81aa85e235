"""OpenTelemetry for every client and the runtime, through ``opentelemetry-api`` only.

Spans follow the messaging semantic conventions (``send``, ``receive``, ``settle`` by the
clients; ``process`` by the runtime), the W3C trace context travels in the message attributes
``traceparent``/``tracestate`` (injected on send by every client, extracted by the processor),
and the counters and histograms below are recorded. Where the application installs no SDK
(no global provider and nothing passed to `configure`) every instrumented call costs one plain
function call: the wrapper hands back the adapter's own coroutine, unawaited.
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
import inspect
from collections.abc import Awaitable, Callable, Mapping, Sequence
from contextlib import AbstractContextManager
from typing import Any, Final, TypeVar

from opentelemetry import context as otel_context
from opentelemetry import metrics as otel_metrics
from opentelemetry import propagate
from opentelemetry import trace as otel_trace
from opentelemetry.metrics import Counter, Histogram, Meter, MeterProvider, UpDownCounter
from opentelemetry.metrics import _Gauge as Gauge
from opentelemetry.trace import Span, SpanKind, Tracer, TracerProvider

from ._messages import Message, ReceivedMessage

__all__ = [
    "CONVERSATION_ID",
    "DESTINATION_NAME",
    "MESSAGE_ID",
    "OPERATION_NAME",
    "OPERATION_TYPE",
    "SYSTEM",
    "TRACE_ATTRIBUTES",
    "Instruments",
    "configure",
    "enabled",
    "extract_context",
    "instrument_client_class",
    "instruments",
    "messaging_system",
    "metering",
    "process_span",
    "record_failure",
    "tracer",
]

SYSTEM: Final = "messaging.system"
DESTINATION_NAME: Final = "messaging.destination.name"
OPERATION_TYPE: Final = "messaging.operation.type"
OPERATION_NAME: Final = "messaging.operation.name"
MESSAGE_ID: Final = "messaging.message.id"
CONVERSATION_ID: Final = "messaging.message.conversation_id"
BATCH_COUNT: Final = "messaging.batch.message_count"
#: The message attributes that carry the W3C trace context.
TRACE_ATTRIBUTES: Final = ("traceparent", "tracestate")

_NAME: Final = "queue_runtime"
_T = TypeVar("_T")

# the API's own globals: None until the application installs a provider (read, never written)
_trace_globals: Any = otel_trace
_metrics_globals: Any = otel_metrics._internal
if not (
    hasattr(_trace_globals, "_TRACER_PROVIDER") and hasattr(_metrics_globals, "_METER_PROVIDER")
):  # pragma: no cover - an API without these globals: always take the instrumented path

    class _AlwaysSet:
        _TRACER_PROVIDER = _METER_PROVIDER = True

    _trace_globals = _metrics_globals = _AlwaysSet()


#: attribute: (instrument kind, name, unit, description)
_INSTRUMENTS: Final = {
    "sent": ("counter", "messaging.client.sent.messages", "{message}", "Messages sent"),
    "received": (
        "counter",
        "messaging.client.consumed.messages",
        "{message}",
        "Messages received",
    ),
    "settled": (
        "counter",
        "queue_runtime.messages.settled",
        "{message}",
        "Settlements by outcome (complete, abandon, dead_letter, release)",
    ),
    "retries": (
        "counter",
        "queue_runtime.processor.retries",
        "{attempt}",
        "Handler failures that will be retried",
    ),
    "duration": ("histogram", "messaging.process.duration", "s", "Handler duration"),
    "in_flight": (
        "up_down_counter",
        "queue_runtime.processor.in_flight",
        "{message}",
        "Messages being handled",
    ),
    "breaker_state": (
        "gauge",
        "queue_runtime.processor.circuit_breaker.state",
        "1",
        "0 closed, 1 half-open, 2 open",
    ),
    "lock_renewals": (
        "counter",
        "queue_runtime.processor.lock_renewals",
        "{renewal}",
        "Lock renewals by outcome (renewed, lost)",
    ),
}


class Instruments:
    """The tracer and the instruments of one provider pair (see `instruments`)."""

    sent: Counter
    received: Counter
    settled: Counter
    retries: Counter
    duration: Histogram
    in_flight: UpDownCounter
    breaker_state: Gauge
    lock_renewals: Counter

    def __init__(self, tracer: Tracer, meter: Meter) -> None:
        self.tracer = tracer
        for attribute, (kind, name, unit, description) in _INSTRUMENTS.items():
            create = getattr(meter, f"create_{kind}")
            setattr(self, attribute, create(name, unit=unit, description=description))


class _Config:
    tracer_provider: TracerProvider | None = None
    meter_provider: MeterProvider | None = None
    instruments: Instruments | None = None


_config = _Config()


def configure(
    *,
    tracer_provider: TracerProvider | None = None,
    meter_provider: MeterProvider | None = None,
) -> None:
    """Use these providers instead of the global ones (``None``: the global one again).

    For applications that do not install global providers, and for tests.
    """
    _config.tracer_provider = tracer_provider
    _config.meter_provider = meter_provider
    _config.instruments = None
    for cls, name, fast, traced in _instrumented:
        setattr(cls, name, fast if tracer_provider is None else traced)


def enabled() -> bool:
    """Whether any provider is installed (globally or through `configure`)."""
    return not (
        _trace_globals._TRACER_PROVIDER is None
        and _metrics_globals._METER_PROVIDER is None
        and _config.tracer_provider is None
        and _config.meter_provider is None
    )


def instruments() -> Instruments:
    """The current tracer and instruments (proxies of the global providers unless configured)."""
    current = _config.instruments
    if current is None:
        tracer_provider = _config.tracer_provider
        meter_provider = _config.meter_provider
        tracer = (
            otel_trace.get_tracer(_NAME)
            if tracer_provider is None
            else tracer_provider.get_tracer(_NAME)
        )
        meter = (
            otel_metrics.get_meter(_NAME)
            if meter_provider is None
            else meter_provider.get_meter(_NAME)
        )
        current = _config.instruments = Instruments(tracer, meter)
    return current


def tracer() -> Tracer:
    """The tracer queue-runtime's spans come from."""
    return instruments().tracer


_SYSTEMS: Final = (("sqs", "aws_sqs"), ("servicebus", "servicebus"), ("memory", "memory"))


def messaging_system(cls: type) -> str:
    """The ``messaging.system`` of an adapter class (from its module: ``aws_sqs``, ...)."""
    module = cls.__module__
    for part, system in _SYSTEMS:
        if part in module:
            return system
    return getattr(cls, "messaging_system", module.rsplit(".", 1)[-1])


def extract_context(attributes: Mapping[str, str]) -> otel_context.Context | None:
    """The producer's context from a message's attributes, or ``None`` if it carries none."""
    if "traceparent" not in attributes:
        return None
    return propagate.extract(attributes)


def _with_trace_context(message: Message) -> Message:
    """``message`` with the current trace context in its attributes (kept if it has one)."""
    if type(message) is not Message or not isinstance(message.attributes, Mapping):
        return message  # the adapter's validation refuses it
    if "traceparent" in message.attributes:
        return message
    carrier: dict[str, str] = {}
    propagate.inject(carrier)
    if not carrier:
        return message
    attributes = dict(message.attributes)
    for key in TRACE_ATTRIBUTES:
        if key in carrier:
            attributes[key] = carrier[key]
    return message._replace(attributes=attributes)


# -- client instrumentation ----------------------------------------------------------------

# set while a settle span is open, so a settlement that delegates (session -> client, or
# super()) is recorded once
_settling: contextvars.ContextVar[bool] = contextvars.ContextVar("qr_settling", default=False)


def _base_attributes(system: str, queue: object, operation: str) -> dict[str, Any]:
    attributes: dict[str, Any] = {SYSTEM: system, OPERATION_TYPE: operation}
    if queue is not None:
        attributes[DESTINATION_NAME] = str(queue)
    return attributes


def _message_attributes(attributes: dict[str, Any], message: Message | ReceivedMessage) -> None:
    try:
        attributes[MESSAGE_ID] = message.message_id
        if message.session_id is not None:
            attributes[CONVERSATION_ID] = message.session_id
    except AttributeError:
        pass  # bad input: the adapter's validation reports it


def _is_batch(messages: object) -> bool:
    """A batch settlement's argument (a `ReceivedMessage` is a tuple, hence a Sequence too)."""
    return isinstance(messages, Sequence) and not isinstance(messages, (ReceivedMessage, str))


def _session_queue(session: object) -> object:
    return getattr(session, "_qr_destination", None)


def _fast_path(
    fn: Callable[..., Awaitable[Any]], traced: Callable[..., Awaitable[Any]]
) -> Callable[..., Awaitable[Any]]:
    """A method with ``fn``'s exact signature that calls ``fn`` itself, handing its coroutine
    back unawaited (one plain call), while no global tracer provider is installed, and
    ``traced`` otherwise. (`configure` with a tracer provider installs ``traced`` itself.)

    Generated from the signature (as `dataclasses` does) so that no ``*args``/``**kwargs``
    packing is paid on the hot path; a global *meter* provider alone does not switch the
    client hook on (the processor's own metrics follow it regardless).
    """
    parameters = list(inspect.signature(fn).parameters.values())
    namespace: dict[str, Any] = {"_fn": fn, "_traced": traced, "_g": _trace_globals}
    declared: list[str] = []
    passed: list[str] = []
    keyword_only = False
    for index, parameter in enumerate(parameters):
        if parameter.kind not in (parameter.POSITIONAL_OR_KEYWORD, parameter.KEYWORD_ONLY):
            return _generic_fast_path(fn, traced)
        name = parameter.name
        if parameter.kind is parameter.KEYWORD_ONLY and not keyword_only:
            keyword_only = True
            declared.append("*")
        if parameter.default is parameter.empty:
            declared.append(name)
        else:
            namespace[f"_d{index}"] = parameter.default
            declared.append(f"{name}=_d{index}")
        passed.append(f"{name}={name}" if keyword_only else name)
    call = ", ".join(passed)
    source = (
        f"def {fn.__name__}({', '.join(declared)}):\n"
        f"    if _g._TRACER_PROVIDER is None:\n"
        f"        return _fn({call})\n"
        f"    return _traced({call})\n"
    )
    exec(source, namespace)  # our own template, built from the signature only
    method: Callable[..., Awaitable[Any]] = namespace[fn.__name__]
    functools.update_wrapper(method, fn)
    method.__qr_traced__ = functools.wraps(fn)(traced)  # type: ignore[attr-defined]
    return method


def _generic_fast_path(
    fn: Callable[..., Awaitable[Any]], traced: Callable[..., Awaitable[Any]]
) -> Callable[..., Awaitable[Any]]:
    @functools.wraps(fn)
    def method(*args: Any, **kwargs: Any) -> Awaitable[Any]:
        if _trace_globals._TRACER_PROVIDER is None:
            return fn(*args, **kwargs)
        return traced(*args, **kwargs)

    method.__qr_traced__ = functools.wraps(fn)(traced)  # type: ignore[attr-defined]
    return method


def _wrap_send_message(fn: Callable[..., Awaitable[Any]], system: str) -> Callable[..., Any]:
    async def traced(self: Any, queue: Any, message: Any) -> Any:
        tel = instruments()
        attributes = _base_attributes(system, queue, "send")
        _message_attributes(attributes, message)
        with tel.tracer.start_as_current_span(
            f"send {queue}", kind=SpanKind.PRODUCER, attributes=attributes
        ):
            result = await fn(self, queue, _with_trace_context(message))
        tel.sent.add(1, {SYSTEM: system, DESTINATION_NAME: str(queue)})
        return result

    return _fast_path(fn, traced)


def _wrap_send_messages(fn: Callable[..., Awaitable[Any]], system: str) -> Callable[..., Any]:
    async def traced(self: Any, queue: Any, messages: Any) -> Any:
        tel = instruments()
        attributes = _base_attributes(system, queue, "send")
        if isinstance(messages, Sequence):
            attributes[BATCH_COUNT] = len(messages)
        with tel.tracer.start_as_current_span(
            f"send {queue}", kind=SpanKind.PRODUCER, attributes=attributes
        ):
            if isinstance(messages, Sequence) and not isinstance(messages, (str, bytes)):
                messages = [_with_trace_context(m) for m in messages]
            result = await fn(self, queue, messages)
        tel.sent.add(len(result), {SYSTEM: system, DESTINATION_NAME: str(queue)})
        return result

    return _fast_path(fn, traced)


def _wrap_receive(
    fn: Callable[..., Awaitable[Any]], system: str, *, session: bool
) -> Callable[..., Any]:
    async def traced(self: Any, *args: Any, **kwargs: Any) -> Any:
        tel = instruments()
        queue = _session_queue(self) if session else (args[0] if args else kwargs.get("queue"))
        attributes = _base_attributes(system, queue, "receive")
        if session:
            attributes[CONVERSATION_ID] = getattr(self, "session_id", None)
        with tel.tracer.start_as_current_span(
            f"receive {queue}" if queue is not None else "receive",
            kind=SpanKind.CLIENT,
            attributes=attributes,
        ) as span:
            result = await fn(self, *args, **kwargs)
            count = 0 if result is None else len(result) if isinstance(result, list) else 1
            span.set_attribute(BATCH_COUNT, count)
        if count:
            tel.received.add(count, {SYSTEM: system, DESTINATION_NAME: str(queue)})
        return result

    return _fast_path(fn, traced)


def _wrap_settle(
    fn: Callable[..., Awaitable[Any]], system: str, outcome: str, *, session: bool
) -> Callable[..., Any]:
    async def traced(self: Any, message: Any, *args: Any, **kwargs: Any) -> Any:
        if _settling.get():
            return await fn(self, message, *args, **kwargs)
        tel = instruments()
        queue = _session_queue(self) if session else None
        attributes = _base_attributes(system, queue, "settle")
        attributes[OPERATION_NAME] = outcome
        if _is_batch(message):
            attributes[BATCH_COUNT] = len(message)
        else:
            _message_attributes(attributes, message)
        token = _settling.set(True)
        try:
            with tel.tracer.start_as_current_span(
                f"{outcome} {queue}" if queue is not None else outcome,
                kind=SpanKind.CLIENT,
                attributes=attributes,
            ):
                result = await fn(self, message, *args, **kwargs)
        finally:
            _settling.reset(token)
        count = len(message) if _is_batch(message) else 1
        tel.settled.add(count, {SYSTEM: system, "queue_runtime.outcome": outcome})
        return result

    return _fast_path(fn, traced)


def _wrap_accept(fn: Callable[..., Awaitable[Any]]) -> Callable[..., Any]:
    async def traced(self: Any, queue: Any, *args: Any, **kwargs: Any) -> Any:
        session = await fn(self, queue, *args, **kwargs)
        if session is not None:
            with contextlib.suppress(AttributeError):  # a session class with __slots__
                session._qr_destination = str(queue)
        return session

    return _fast_path(fn, traced)


#: (class, method name, fast-path method, always-traced method) of every instrumented method
_instrumented: list[tuple[type, str, Callable[..., Any], Callable[..., Any]]] = []

_SETTLE_OUTCOMES: Final = {
    "complete_message": "complete",
    "abandon_message": "abandon",
    "dead_letter_message": "dead_letter",
    "complete_messages": "complete",
    "abandon_messages": "abandon",
    "release_messages": "release",
}


def instrument_client_class(cls: type) -> None:
    """Wrap the send, receive and settle methods ``cls`` itself defines with spans, metrics
    and trace-context injection (called by `QueueClient`/`SessionClient.__init_subclass__`).

    Abstract methods and methods already wrapped are left alone.
    """
    session = hasattr(cls, "renew_session_lock")  # a SessionClient (no import of the ports)
    system = messaging_system(cls)
    wrappers: dict[str, Callable[[Callable[..., Awaitable[Any]]], Callable[..., Any]]] = {
        "receive_message": lambda fn: _wrap_receive(fn, system, session=session),
        "receive_messages": lambda fn: _wrap_receive(fn, system, session=session),
    }
    for name, outcome in _SETTLE_OUTCOMES.items():
        wrappers[name] = functools.partial(
            _wrap_settle, system=system, outcome=outcome, session=session
        )
    if not session:
        wrappers["send_message"] = lambda fn: _wrap_send_message(fn, system)
        wrappers["send_messages"] = lambda fn: _wrap_send_messages(fn, system)
        wrappers["accept_session"] = _wrap_accept
    for name, wrap in wrappers.items():
        fn = cls.__dict__.get(name)
        if fn is None or getattr(fn, "__isabstractmethod__", False):
            continue
        if getattr(fn, "__qr_instrumented__", False):
            continue
        fast = wrap(fn)
        traced = fast.__qr_traced__  # type: ignore[attr-defined]
        for method in (fast, traced):
            method.__dict__["__qr_instrumented__"] = True
        _instrumented.append((cls, name, fast, traced))
        setattr(cls, name, fast if _config.tracer_provider is None else traced)


# -- processing spans (used by the runtime) -------------------------------------------------


def process_span(
    system: str, queue: str, message: ReceivedMessage, attempt: int
) -> AbstractContextManager[Span]:
    """A ``process`` span for ``message`` (use as ``with``), a child of the producer's span when
    the message carries a trace context (a trace of its own otherwise, not a child of whatever
    started the processor)."""
    attributes: dict[str, Any] = {
        SYSTEM: system,
        OPERATION_TYPE: "process",
        DESTINATION_NAME: queue,
        MESSAGE_ID: message.message_id,
        "messaging.message.delivery_count": message.delivery_count,
        "queue_runtime.attempt": attempt,
    }
    if message.session_id is not None:
        attributes[CONVERSATION_ID] = message.session_id
    parent = extract_context(message.attributes)
    return instruments().tracer.start_as_current_span(
        f"process {queue}",
        context=_ROOT if parent is None else parent,
        kind=SpanKind.CONSUMER,
        attributes=attributes,
    )


_ROOT: Final = otel_context.Context()


def metering() -> bool:
    """Whether a meter provider is installed (globally or through `configure`)."""
    return not (_metrics_globals._METER_PROVIDER is None and _config.meter_provider is None)


def record_failure(error: BaseException) -> None:
    """Mark the current span failed with ``error`` (a handler's exception that was handled)."""
    span = otel_trace.get_current_span()
    span.record_exception(error)
    span.set_status(otel_trace.Status(otel_trace.StatusCode.ERROR, describe(error)))


def describe(error: BaseException) -> str:
    """``Type: message`` of an exception (its type alone when the message is empty)."""
    return f"{type(error).__name__}: {error}" if str(error) else type(error).__name__
