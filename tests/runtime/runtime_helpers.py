"""Helpers of the runtime tests (a module of its own: tests/ has no packages)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass


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
