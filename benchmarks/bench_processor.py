"""Throughput of the Processor against a hand-written loop over the raw client, in one run.

    python benchmarks/bench_processor.py [--sessions 100] [--per-session 100]
                                         [--messages 10000] [--repeat 3]

Both consume the same pre-sent messages on the in-memory adapter with a no-op handler:
100 sessions x 100 messages on a session queue, and 10,000 messages on a queue without
sessions. Figures are messages per second (best of ``--repeat``), with the processor's ratio to
the loop. Targets: >= 0.5x the loop and >= 20,000 msg/s; with tracing on (OpenTelemetry SDK,
in-memory exporter) >= 0.3x.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from collections.abc import Awaitable, Callable

from _report import progress, run, verdict

import queue_runtime as qr
from queue_runtime import telemetry
from queue_runtime.adapters.memory import InMemoryQueueClient

BODY = b'{"action":"opened","number":42}'
Scenario = Callable[[InMemoryQueueClient, str, int], Awaitable[None]]


class Tally:
    """The no-op handler of both sides: counts, and says when all ``total`` are through."""

    def __init__(self, total: int) -> None:
        self.total = total
        self.count = 0
        self.done = asyncio.Event()

    async def __call__(self, message: qr.ReceivedMessage) -> None:
        self.count += 1
        if self.count == self.total:
            self.done.set()


async def fill(client: InMemoryQueueClient, queue: str, sessions: int, per: int) -> int:
    for _ in range(per):
        await client.send_messages(
            queue,
            [
                qr.Message(BODY, session_id=f"s{s}" if sessions else None)
                for s in range(sessions or 1)
            ],
        )
    return (sessions or 1) * per


async def loop_sessions(client: InMemoryQueueClient, queue: str, total: int) -> None:
    """What a user writes by hand: a few workers, each draining one session at a time."""

    handle = Tally(total)

    async def worker() -> None:
        while (session := await client.accept_session(queue, timeout=0)) is not None:
            async with session:
                while batch := await session.receive_messages(max_messages=16, timeout=0):
                    for message in batch:
                        await handle(message)
                        await session.complete_message(message)

    await asyncio.gather(*(worker() for _ in range(8)))


async def loop_messages(client: InMemoryQueueClient, queue: str, total: int) -> None:
    handle = Tally(total)
    while batch := await client.receive_messages(queue, max_messages=16, timeout=0):
        for message in batch:
            await handle(message)
            await client.complete_message(message)


async def processor(client: InMemoryQueueClient, queue: str, total: int) -> None:
    handle = Tally(total)
    async with qr.Processor(client, queue, handle):
        await handle.done.wait()


async def _once(scenario: Scenario, sessions: int, per: int) -> float:
    async with InMemoryQueueClient() as client:
        await client.create_queue("bench", requires_session=bool(sessions))
        total = await fill(client, "bench", sessions, per)
        start = time.perf_counter()
        await scenario(client, "bench", total)
        elapsed = time.perf_counter() - start
        stats = client.statistics("bench")
        assert stats.completed == total, stats
        return elapsed


def measure(
    label: str, loop: Scenario, sessions: int, per: int, repeat: int
) -> tuple[float, float]:
    """Best rates (msg/s) of the hand-written loop and of the processor, run alternately so
    that a noisy machine slows both alike."""
    best_loop = best_processor = float("inf")
    for round_ in range(repeat):
        progress.step(f"{label}: loop, round {round_ + 1}/{repeat}")
        best_loop = min(best_loop, asyncio.run(_once(loop, sessions, per)))
        progress.step(f"{label}: processor, round {round_ + 1}/{repeat}")
        best_processor = min(best_processor, asyncio.run(_once(processor, sessions, per)))
    total = (sessions or 1) * per
    return total / best_loop, total / best_processor


def tracing_on() -> object:
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    telemetry.configure(tracer_provider=provider)
    return exporter


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sessions", type=int, default=100)
    parser.add_argument("--per-session", type=int, default=100)
    parser.add_argument("--messages", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    cases = [
        (
            f"{args.sessions} sessions x {args.per_session}",
            args.sessions,
            args.per_session,
            loop_sessions,
        ),
        (f"{args.messages:,} messages, no sessions", 0, args.messages, loop_messages),
    ]
    print(f"{'':34} {'loop msg/s':>11} {'processor':>11} {'ratio':>7}  target")
    for label, sessions, per, loop in cases:
        baseline, rate = measure(label, loop, sessions, per, args.repeat)
        ratio = rate / baseline
        judged = verdict(ratio >= 0.5 and rate >= 20_000, f"{label} >= 0.50x and >= 20k msg/s")
        print(f"{label:34} {baseline:11,.0f} {rate:11,.0f} {ratio:6.2f}x  >=0.50x, >=20k {judged}")
    try:
        exporter = tracing_on()
    except ImportError:
        print("tracing: opentelemetry-sdk is not installed (pip install -e '.[testing]'): skipped")
        return
    for label, sessions, per, loop in cases:
        traced = label + ", traced"
        baseline, rate = measure(traced, loop, sessions, per, args.repeat)
        exporter.clear()  # type: ignore[attr-defined]
        ratio = rate / baseline
        judged = verdict(ratio >= 0.3, f"{traced} >= 0.30x")
        print(f"{traced:34} {baseline:11,.0f} {rate:11,.0f} {ratio:6.2f}x  >=0.30x {judged}")
    telemetry.configure()


if __name__ == "__main__":
    run(main)
