"""OpenTelemetry through the API: client spans and trace-context injection, the processor's
consumer span continuing the producer's trace, metrics, and the no-SDK fast path."""

from __future__ import annotations

import asyncio
import inspect

import pytest
from runtime_helpers import Otel, eventually

import queue_runtime as qr
from queue_runtime import telemetry
from queue_runtime.adapters.memory import InMemoryQueueClient


def by_name(otel: Otel, prefix: str) -> list[object]:
    return [s for s in otel.finished() if s.name.startswith(prefix)]  # type: ignore[attr-defined]


@pytest.mark.asyncio
async def test_the_consumer_span_is_a_child_of_the_producer_span(
    client: InMemoryQueueClient, otel: Otel
) -> None:
    await client.create_queue("q", requires_session=True)
    await client.send_message("q", qr.Message(b"m", session_id="pr-42", message_id="m-1"))
    (send,) = by_name(otel, "send")
    done: list[qr.ReceivedMessage] = []

    async def handle(message: qr.ReceivedMessage) -> None:
        done.append(message)

    async with qr.Processor(client, "q", handle):
        await eventually(lambda: bool(by_name(otel, "complete")))
    (process,) = by_name(otel, "process")
    assert process.parent is not None  # type: ignore[attr-defined]
    assert process.parent.span_id == send.context.span_id  # type: ignore[attr-defined]
    assert process.context.trace_id == send.context.trace_id  # type: ignore[attr-defined]
    assert process.kind.name == "CONSUMER"  # type: ignore[attr-defined]
    assert send.kind.name == "PRODUCER"  # type: ignore[attr-defined]
    assert dict(process.attributes) == {  # type: ignore[attr-defined]
        "messaging.system": "memory",
        "messaging.destination.name": "q",
        "messaging.operation.type": "process",
        "messaging.message.id": "m-1",
        "messaging.message.conversation_id": "pr-42",
        "messaging.message.delivery_count": 1,
        "queue_runtime.attempt": 1,
    }
    assert send.attributes["messaging.operation.type"] == "send"  # type: ignore[attr-defined]
    (settle,) = by_name(otel, "complete")
    assert settle.parent.span_id == process.context.span_id  # type: ignore[attr-defined]
    assert settle.attributes["messaging.operation.type"] == "settle"  # type: ignore[attr-defined]
    assert "traceparent" in done[0].attributes
    assert by_name(otel, "receive")


@pytest.mark.asyncio
async def test_metrics_count_sends_receipts_settlements_retries_and_durations(
    client: InMemoryQueueClient, otel: Otel
) -> None:
    await client.create_queue("q")
    await client.send_messages("q", [qr.Message(b"ok"), qr.Message(b"retry")])

    async def handle(message: qr.ReceivedMessage) -> None:
        if message.body == b"retry" and message.delivery_count == 1:
            raise OSError("flaky")

    retry = qr.RetryPolicy(initial_delay=0.001, max_delay=0.002)
    async with qr.Processor(client, "q", handle, retry=retry):
        await eventually(lambda: client.statistics("q").completed == 2)
    points = otel.metric_points()
    total = {name: sum(getattr(p, "value", 0) for p in pts) for name, pts in points.items()}
    assert total["messaging.client.sent.messages"] == 2
    assert total["messaging.client.consumed.messages"] == 3
    assert total["queue_runtime.processor.retries"] == 1
    assert total["queue_runtime.processor.in_flight"] == 0
    outcomes = {
        p.attributes["queue_runtime.outcome"]: p.value  # type: ignore[attr-defined]
        for p in points["queue_runtime.messages.settled"]
    }
    assert outcomes == {"complete": 2, "abandon": 1}
    (histogram, *_) = points["messaging.process.duration"]
    assert sum(p.count for p in points["messaging.process.duration"]) == 3  # type: ignore[attr-defined]
    assert histogram is not None


@pytest.mark.asyncio
async def test_a_message_without_trace_context_starts_a_new_trace(
    client: InMemoryQueueClient, otel: Otel
) -> None:
    await client.create_queue("q")
    telemetry.configure()  # sent with telemetry off: no traceparent
    await client.send_message("q", qr.Message(b"m"))
    telemetry.configure(tracer_provider=otel_provider(otel))

    async def handle(message: qr.ReceivedMessage) -> None:
        assert "traceparent" not in message.attributes

    processor = qr.Processor(client, "q", handle)
    with telemetry.tracer().start_as_current_span("application startup"):
        async with processor:  # started inside a span: its messages are not its children
            await eventually(lambda: client.statistics("q").completed == 1)
    (process,) = by_name(otel, "process")
    assert process.parent is None  # type: ignore[attr-defined]
    assert processor.counters.completed == 1


def otel_provider(otel: Otel) -> object:
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor

    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(otel.spans))  # type: ignore[arg-type]
    return provider


@pytest.mark.asyncio
async def test_sent_messages_keep_an_existing_trace_context(
    client: InMemoryQueueClient, otel: Otel
) -> None:
    await client.create_queue("q")
    carried = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    await client.send_message("q", qr.Message(b"m", attributes={"traceparent": carried}))
    received = await client.receive_message("q", timeout=0)
    assert received is not None
    assert received.attributes["traceparent"] == carried


@pytest.mark.asyncio
async def test_without_an_sdk_the_client_hook_hands_back_the_adapters_own_coroutine(
    client: InMemoryQueueClient,
) -> None:
    assert not telemetry.enabled()
    await client.create_queue("q")
    pending = client.send_message("q", qr.Message(b"m"))
    assert inspect.iscoroutine(pending)
    wrapped = InMemoryQueueClient.send_message.__wrapped__  # type: ignore[attr-defined]
    assert pending.cr_code is wrapped.__code__  # no extra coroutine layer
    await pending
    received = await client.receive_message("q", timeout=0)
    assert received is not None
    assert "traceparent" not in received.attributes
    await client.complete_message(received)


def test_every_adapter_class_is_instrumented_once() -> None:
    from queue_runtime.adapters.memory import InMemorySessionClient

    for cls, names in (
        (
            InMemoryQueueClient,
            (
                "send_message",
                "send_messages",
                "receive_message",
                "receive_messages",
                "complete_message",
                "abandon_message",
                "dead_letter_message",
            ),
        ),
        (InMemorySessionClient, ("receive_message", "receive_messages", "complete_message")),
    ):
        for name in names:
            method = cls.__dict__[name]
            assert method.__qr_instrumented__, (cls, name)
            assert not getattr(method.__wrapped__, "__qr_instrumented__", False)

    class Sub(InMemoryQueueClient):
        pass  # inherits the wrapped methods; wraps nothing again

    assert Sub.send_message is InMemoryQueueClient.send_message


@pytest.mark.asyncio
async def test_breaker_state_and_lock_renewals_are_metrics(
    client: InMemoryQueueClient, otel: Otel
) -> None:
    await client.create_queue("q", lock_duration=0.2)
    await client.send_message("q", qr.Message(b"m"))
    calls = 0

    async def handle(message: qr.ReceivedMessage) -> None:
        nonlocal calls
        calls += 1
        if calls == 1:
            await asyncio.sleep(0.3)  # renewed at least once
            raise OSError("down")

    processor = qr.Processor(
        client,
        "q",
        handle,
        retry=qr.RetryPolicy(initial_delay=0.001, max_delay=0.002),
        circuit_breaker=qr.CircuitBreaker(failure_threshold=1, recovery_timeout=0.05),
    )
    async with processor:
        await eventually(lambda: client.statistics("q").completed == 1)
    points = otel.metric_points()
    (state,) = points["queue_runtime.processor.circuit_breaker.state"]
    assert state.value == 0  # type: ignore[attr-defined]  # closed again, after open and half-open
    renewals = {
        p.attributes["queue_runtime.outcome"]: p.value  # type: ignore[attr-defined]
        for p in points["queue_runtime.processor.lock_renewals"]
    }
    assert renewals["renewed"] >= 1
