"""health(): what the processor reports, and the HTTP endpoint (/healthz, /readyz,
/metrics) on a real socket."""

from __future__ import annotations

import asyncio
import json

import pytest
from runtime_helpers import eventually

import queue_runtime as qr
from queue_runtime.adapters.memory import InMemoryQueueClient


async def get(port: int, path: str) -> tuple[int, str]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(f"GET {path} HTTP/1.1\r\nHost: localhost\r\n\r\n".encode())
    await writer.drain()
    response = (await reader.read()).decode()
    writer.close()
    await writer.wait_closed()
    head, _, body = response.partition("\r\n\r\n")
    return int(head.split()[1]), body


@pytest.mark.asyncio
async def test_health_reports_sessions_in_flight_and_the_last_error(
    client: InMemoryQueueClient,
) -> None:
    await client.create_queue("q", requires_session=True)
    await client.send_message("q", qr.Message(b"bad", session_id="pr-1"))
    await client.send_message("q", qr.Message(b"slow", session_id="pr-2"))
    release = asyncio.Event()

    async def handle(message: qr.ReceivedMessage) -> None:
        if message.body == b"bad":
            raise qr.PermanentError("no such pull request")
        await release.wait()

    processor = qr.Processor(client, "q", handle)
    assert not processor.health().running
    async with processor:
        await eventually(lambda: processor.health().in_flight == 1)
        await eventually(lambda: processor.health().counters["dead_lettered"] == 1)
        health = processor.health()
        assert health.running
        assert health.ready
        assert health.sessions == ("pr-2",)
        assert health.breaker == "closed"
        assert health.last_error is not None
        assert "PermanentError: no such pull request" in health.last_error
        release.set()
    assert processor.health().counters["completed"] == 1


@pytest.mark.asyncio
async def test_the_health_endpoint_serves_liveness_readiness_and_metrics(
    client: InMemoryQueueClient,
) -> None:
    await client.create_queue("q")
    await client.send_message("q", qr.Message(b"m"))

    async def handle(message: qr.ReceivedMessage) -> None: ...

    processor = qr.Processor(client, "q", handle, health_port=0, receive_timeout=0.05)
    async with processor:
        port = processor.health_port
        assert port
        await eventually(lambda: processor.counters.completed == 1)
        status, body = await get(port, "/healthz")
        assert status == 200
        assert json.loads(body)["running"] is True
        status, body = await get(port, "/readyz")
        assert (status, json.loads(body)["breaker"]) == (200, "closed")
        status, body = await get(port, "/metrics")
        assert status == 200
        assert "queue_runtime_processor_completed_total 1" in body
        assert "queue_runtime_processor_circuit_breaker_state 0" in body
        assert (await get(port, "/nope"))[0] == 404
    with pytest.raises(OSError):
        await get(port, "/healthz")  # closed with the processor


@pytest.mark.asyncio
async def test_readyz_fails_while_the_breaker_is_open(client: InMemoryQueueClient) -> None:
    await client.create_queue("q")
    await client.send_message("q", qr.Message(b"m"))

    async def handle(message: qr.ReceivedMessage) -> None:
        raise OSError("down")

    breaker = qr.CircuitBreaker(failure_threshold=1, recovery_timeout=60)
    server_port = 0
    processor = qr.Processor(client, "q", handle, circuit_breaker=breaker, health_port=0)
    async with processor:
        server_port = processor.health_port or 0
        await eventually(lambda: processor.health().breaker == "open")
        status, body = await get(server_port, "/readyz")
        assert status == 503
        assert json.loads(body)["ready"] is False
        assert (await get(server_port, "/healthz"))[0] == 200
        await processor.stop(timeout=1)


@pytest.mark.asyncio
async def test_logs_carry_message_and_session_ids_never_bodies(
    client: InMemoryQueueClient, caplog: pytest.LogCaptureFixture
) -> None:
    await client.create_queue("q", requires_session=True)
    await client.send_message("q", qr.Message(b"secret-body", session_id="pr-9", message_id="m-9"))

    async def handle(message: qr.ReceivedMessage) -> None:
        raise qr.PermanentError("unknown action")

    with caplog.at_level("INFO", logger="queue_runtime.runtime"):
        async with qr.Processor(client, "q", handle):
            await eventually(lambda: client.statistics(qr.QueueName("q").dead_letter).active == 1)
    (record,) = [r for r in caplog.records if "dead-lettering" in r.getMessage()]
    assert record.name == "queue_runtime.runtime"
    assert (record.message_id, record.session_id, record.queue) == ("m-9", "pr-9", "q")  # type: ignore[attr-defined]
    assert record.reason == "permanent-error"  # type: ignore[attr-defined]
    assert all("secret-body" not in r.getMessage() for r in caplog.records)
