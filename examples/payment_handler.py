"""A payment handler with a circuit breaker around a flaky payment gateway.

    python examples/payment_handler.py

Charges arrive on a queue; the gateway goes down for a while in the middle. The processor's
breaker opens after three failures in a row, so it stops taking charges instead of burning
their attempts toward the dead-letter queue; after ``recovery_timeout`` it lets one probe
through, and once the gateway answers again it closes and every charge goes through. A rate
limit keeps the gateway under its quota, a timeout bounds each call, a small middleware makes
charges idempotent, and a declined card is a `PermanentError` (dead-lettered at once).
"""

from __future__ import annotations

import asyncio
import logging
import time

import pydantic

import queue_runtime as qr

QUEUE = qr.QueueName("payments")


class Charge(pydantic.BaseModel):
    charge_id: str
    customer: str
    cents: int = pydantic.Field(gt=0)


class FlakyGateway:
    """Stands in for the payment provider: down between ``down_from`` and ``down_until``."""

    def __init__(self, down_from: float, down_until: float) -> None:
        self.start = time.monotonic()
        self.window = (down_from, down_until)
        self.calls_while_down = 0
        self.charged: list[str] = []

    async def charge(self, charge: Charge) -> None:
        await asyncio.sleep(0.005)
        elapsed = time.monotonic() - self.start
        if self.window[0] <= elapsed < self.window[1]:
            self.calls_while_down += 1
            raise ConnectionError("gateway unavailable (503)")
        if charge.customer == "mallory":
            raise qr.PermanentError(f"card declined for {charge.charge_id}")
        self.charged.append(charge.charge_id)


async def idempotent(context: qr.MessageContext, call_next: qr.runtime.Next) -> None:
    """Middleware: skip a charge that already went through (a redelivery after a crash)."""
    if context.message.message_id in ALREADY_CHARGED:
        return
    await call_next(context)
    ALREADY_CHARGED.add(context.message.message_id)


ALREADY_CHARGED: set[str] = set()


async def main() -> None:
    gateway = FlakyGateway(down_from=0.15, down_until=0.9)
    async with qr.create_client("memory://") as client:
        await client.create_queue(QUEUE, max_delivery_count=20)
        charges = [
            Charge(charge_id=f"ch_{n:03}", customer="alice", cents=100 + n) for n in range(40)
        ]
        charges[7] = Charge(charge_id="ch_007", customer="mallory", cents=999)
        await client.send_messages(
            QUEUE,
            [qr.Message(c.model_dump_json().encode(), message_id=c.charge_id) for c in charges],
        )

        async def handle(charge: Charge) -> None:
            await gateway.charge(charge)

        processor = qr.Processor(
            client,
            QUEUE,
            handle,
            max_concurrency=4,
            retry=qr.RetryPolicy(max_attempts=10, initial_delay=0.02, max_delay=0.2),
            circuit_breaker=qr.CircuitBreaker(failure_threshold=3, recovery_timeout=0.25),
            rate_limit=qr.RateLimit(rate=200, burst=10),
            handler_timeout=2.0,
            middleware=[idempotent],
        )
        states: list[str] = []
        async with processor:
            while len(gateway.charged) < len(charges) - 1:
                state = processor.health().breaker
                if not states or states[-1] != state:
                    states.append(state)
                    print(f"  t={time.monotonic() - gateway.start:4.2f}s breaker {state}")
                await asyncio.sleep(0.005)
        dead = await client.receive_messages(QUEUE.dead_letter, timeout=0)

    print(
        f"charged {len(gateway.charged)} of {len(charges)}; gateway calls while it was down: "
        f"{gateway.calls_while_down} (breaker threshold 3)"
    )
    print(f"dead-lettered: {[(m.message_id, m.dead_letter_reason) for m in dead]}")
    print(f"breaker went {' -> '.join(states)}")
    if len(gateway.charged) != len(charges) - 1 or len(dead) != 1 or "open" not in states:
        raise SystemExit("demo failed")
    print("every good charge went through once the gateway was back")


if __name__ == "__main__":
    logging.basicConfig(level=logging.WARNING, format="  log: %(name)s %(message)s")
    asyncio.run(main())
