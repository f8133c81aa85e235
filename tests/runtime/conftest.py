"""Fixtures of the runtime tests: in-memory clients, an OpenTelemetry SDK with in-memory
exporters (configured for queue-runtime only, never installed globally), and polling."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest
import pytest_asyncio
from runtime_helpers import Otel

from queue_runtime import telemetry
from queue_runtime.adapters.memory import InMemoryQueueClient


@pytest_asyncio.fixture
async def client() -> AsyncIterator[InMemoryQueueClient]:
    async with InMemoryQueueClient(default_timeout=1) as client:
        yield client


@pytest.fixture
def otel() -> Iterator[Otel]:
    """An SDK tracer and meter provider used by queue-runtime for the test's duration."""
    sdk_trace = pytest.importorskip("opentelemetry.sdk.trace")
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    exporter = InMemorySpanExporter()
    provider = sdk_trace.TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    reader = InMemoryMetricReader()
    meter_provider = MeterProvider(metric_readers=[reader])
    telemetry.configure(tracer_provider=provider, meter_provider=meter_provider)
    try:
        yield Otel(exporter, reader)
    finally:
        telemetry.configure()
        provider.shutdown()
        meter_provider.shutdown()
