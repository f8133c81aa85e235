"""Helpers of the runtime tests (a module of its own: tests/ has no packages)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass

import queue_runtime as qr
from queue_runtime.adapters.memory import InMemoryQueueClient


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


def drained(client: InMemoryQueueClient, queue: str) -> bool:
    """Nothing of ``queue`` is available or locked any more."""
    stats = client.statistics(queue)
    return stats.active == 0 and stats.locked == 0


async def dead_letters(client: InMemoryQueueClient, queue: str) -> list[qr.ReceivedMessage]:
    """Everything in the dead-letter queue of ``queue`` (received, not settled)."""
    found: list[qr.ReceivedMessage] = []
    while batch := await client.receive_messages(
        qr.QueueName(queue).dead_letter, max_messages=100, timeout=0
    ):
        found.extend(batch)
    return found
