"""Priority lanes: one processor over ``orders-high`` and ``orders-low``.

    python examples/priority_lanes.py

Both lanes are full. The processor drains the high lane first, but with weighted fairness
(here 4:1) so the low lane keeps moving instead of starving behind a busy high lane.
"""

from __future__ import annotations

import asyncio

import queue_runtime as qr

HIGH, LOW = qr.QueueName("orders-high"), qr.QueueName("orders-low")


async def main() -> None:
    async with qr.create_client("memory://") as client:
        for queue in (HIGH, LOW):
            await client.create_queue(queue)
        await client.send_messages(HIGH, [qr.Message(f"express-{n}".encode()) for n in range(40)])
        await client.send_messages(LOW, [qr.Message(f"standard-{n}".encode()) for n in range(20)])
        seen: list[str] = []
        done = asyncio.Event()

        async def fulfil(message: qr.ReceivedMessage) -> None:
            seen.append(message.body.decode())
            await asyncio.sleep(0.001)
            if len(seen) == 60:
                done.set()

        lanes = [qr.Lane(HIGH, weight=4), qr.Lane(LOW, weight=1)]
        async with qr.Processor(client, lanes, fulfil, max_concurrency=1):
            await asyncio.wait_for(done.wait(), timeout=30)

    first = seen[:20]
    print("first 20 handled:", " ".join("H" if s.startswith("express") else "l" for s in first))
    high = sum(s.startswith("express") for s in first)
    print(f"of the first 20: {high} express, {20 - high} standard")
    if not 12 <= high < 20:
        raise SystemExit("demo failed: lanes not weighted")
    print("high lane first, low lane never starved")


if __name__ == "__main__":
    asyncio.run(main())
