"""Throughput of the in-memory adapter against a raw asyncio.Queue, measured in one run.

    python benchmarks/bench_memory.py [--messages 100000] [--repeat 3]

Each figure is send + receive + complete of small messages, in messages per second (best of
``--repeat`` runs), with its ratio to the raw ``asyncio.Queue`` producer/consumer baseline of
the same run (and kombu's ``memory://`` transport when kombu is installed).
Targets on a 2-core machine: batches of 100 >= 0.25x the baseline, one at a time >= 0.1x.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from collections.abc import Awaitable, Callable

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
            for message in received:
                await client.complete_message(message)


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
        print(f"  {label} run {attempt + 1}/{repeat} ...", file=sys.stderr, flush=True)
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

    rows: list[tuple[str, float, float | None]] = []
    baseline = n / measure(lambda: raw_asyncio_queue(n), args.repeat, "raw asyncio.Queue")
    rows.append(("raw asyncio.Queue (baseline)", baseline, None))
    try:
        import kombu  # noqa: F401
    except ImportError:
        pass
    else:
        rate = n / measure(lambda: kombu_memory(n), args.repeat, "kombu")
        rows.append(("kombu memory:// SimpleQueue", rate, None))
    for label, fn, target in (
        ("queue-runtime memory, one at a time", adapter_one_at_a_time, 0.10),
        ("queue-runtime memory, batches of 100", adapter_batches, 0.25),
    ):
        rows.append((label, n / measure(lambda fn=fn: fn(n), args.repeat, label), target))

    print(f"send + receive + complete of {n:,} messages of {len(BODY)} bytes")
    print(f"{'':40} {'msgs/s':>12} {'vs baseline':>12} {'target':>8}")
    for label, rate, target in rows:
        ratio = rate / baseline
        verdict = "" if target is None else f">={target:.2f}x {'ok' if ratio >= target else 'MISS'}"
        print(f"{label:40} {rate:12,.0f} {ratio:11.2f}x {verdict:>8}")


if __name__ == "__main__":
    main()
