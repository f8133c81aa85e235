"""Throughput of the in-memory adapter against a raw asyncio.Queue, measured in one run.

    python benchmarks/bench_memory.py [--messages 100000] [--repeat 3]

Each figure is send + receive + complete of small messages (the batch path uses
``send_messages``, ``receive_messages`` and ``complete_messages``), in messages per second (best of
``--repeat`` runs), with its ratio to the raw ``asyncio.Queue`` producer/consumer baseline of
the same run (and kombu's ``memory://`` transport when kombu is installed).
Targets on a 2-core machine: batches of 100 >= 0.25x the baseline, one at a time >= 0.1x.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from collections.abc import Awaitable, Callable

from _report import progress, run, verdict

import queue_runtime as qr

BODY = b'{"action":"opened","number":42}'


async def raw_asyncio_queue(n: int) -> None:
    """The floor: a producer and a consumer around an unbounded asyncio.Queue."""
    queue: asyncio.Queue[bytes] = asyncio.Queue()

    async def produce() -> None:
        for _ in range(n):
            queue.put_nowait(BODY)
            await asyncio.sleep(0) if _ % 100 == 0 else None

    async def consume() -> None:
        for _ in range(n):
            await queue.get()
            queue.task_done()

    await asyncio.gather(produce(), consume())


async def adapter_one_at_a_time(n: int) -> None:
    async with qr.create_client("memory://") as client:
        q = qr.QueueName("bench")
        await client.create_queue(q)
        for _ in range(n):
            await client.send_message(q, qr.Message(BODY))
            received = await client.receive_message(q, timeout=0)
            assert received is not None
            await client.complete_message(received)


async def adapter_batches(n: int, size: int = 100) -> None:
    async with qr.create_client("memory://") as client:
        q = qr.QueueName("bench")
        await client.create_queue(q)
        for _ in range(n // size):
            await client.send_messages(q, [qr.Message(BODY) for _ in range(size)])
            received = await client.receive_messages(q, max_messages=size, timeout=0)
            assert len(received) == size
            await client.complete_messages(received)


def kombu_memory(n: int) -> None:
    import kombu

    with kombu.Connection("memory://") as conn:
        simple = conn.SimpleQueue("bench")
        for _ in range(n):
            simple.put(BODY.decode())
            simple.get(block=False).ack()
        simple.close()


def measure(run: Callable[[], Awaitable[None] | None], repeat: int, label: str = "") -> float:
    best = float("inf")
    for attempt in range(repeat):
        progress.step(f"{label} run {attempt + 1}/{repeat}")
        start = time.perf_counter()
        result = run()
        if result is not None:
            asyncio.run(result)  # type: ignore[arg-type]
        best = min(best, time.perf_counter() - start)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    n = args.messages

    # The cases take turns, round after round, and each keeps its best round: a machine whose
    # speed drifts (other load, frequency scaling) then moves the baseline and the adapter
    # alike, instead of flattering whichever ran in a fast moment.
    cases: list[tuple[str, Callable[[], Awaitable[None] | None], float | None]] = [
        ("raw asyncio.Queue (baseline)", lambda: raw_asyncio_queue(n), None)
    ]
    try:
        import kombu  # noqa: F401
    except ImportError:
        pass
    else:
        cases.append(("kombu memory:// SimpleQueue", lambda: kombu_memory(n), None))
    cases.append(("queue-runtime memory, one at a time", lambda: adapter_one_at_a_time(n), 0.10))
    cases.append(("queue-runtime memory, batches of 100", lambda: adapter_batches(n), 0.25))
    best = dict.fromkeys((label for label, _, _ in cases), float("inf"))
    for round_ in range(args.repeat):
        for label, case, _ in cases:
            best[label] = min(best[label], measure(case, 1, f"round {round_ + 1}: {label}"))
    rows = [(label, n / best[label], target) for label, _, target in cases]
    baseline = rows[0][1]

    print(f"send + receive + complete of {n:,} messages of {len(BODY)} bytes")
    print(f"{'':40} {'msgs/s':>12} {'vs baseline':>12} {'target':>8}")
    for label, rate, target in rows:
        ratio = rate / baseline
        judged = (
            ""
            if target is None
            else f">={target:.2f}x {verdict(ratio >= target, f'{label} >= {target:.2f}x')}"
        )
        print(f"{label:40} {rate:12,.0f} {ratio:11.2f}x {judged:>8}")


if __name__ == "__main__":
    run(main)
