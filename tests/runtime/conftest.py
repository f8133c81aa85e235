"""Fixtures of the runtime tests: in-memory clients, an OpenTelemetry SDK with in-memory
exporters (configured for queue-runtime only, never installed globally), and polling."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass

import pytest
import pytest_asyncio

from queue_runtime import telemetry
from queue_runtime.adapters.memory import InMemoryQueueClient


@pytest_asyncio.fixture
async def client() -> AsyncIterator[InMemoryQueueClient]:
    async with InMemoryQueueClient(default_timeout=1) as client:
        yield client


async def eventually(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    """Wait (polling every few ms) until ``condition()`` holds; fail after ``timeout``."""
    deadline = asyncio.get_running_loop().time() + timeout
    while not condition():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.005)


@dataclass
class Otel:
    spans: object  # InMemorySpanExporter
    metrics: object  # InMemoryMetricReader

    def finished(self) -> list[object]:
        return list(self.spans.get_finished_spans())  # type: ignore[attr-defined]

    def metric_points(self) -> dict[str, list[object]]:
        data = self.metrics.get_metrics_data()  # type: ignore[attr-defined]
        points: dict[str, list[object]] = {}
        for resource in data.resource_metrics if data else ():
            for scope in resource.scope_metrics:
                for metric in scope.metrics:
                    points.setdefault(metric.name, []).extend(metric.data.data_points)
        return points


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
