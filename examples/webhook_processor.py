"""A GitHub webhook processor: events of several pull requests arrive interleaved, and each
pull request's events are processed in order, pull requests in parallel.

    python examples/webhook_processor.py            # on $QUEUE_RUNTIME_URL, default memory://

The ingress enqueues every event with ``session_id = "<repo>/pr-<n>"``; a few workers accept
sessions and handle each session's events strictly in order. One handler fails once
(abandon: the event comes back before any later event of its pull request) and one payload is
poison (dead-lettered with a reason), to show the queue's guarantees at work.
"""

from __future__ import annotations

import asyncio
import json
import random
from collections import defaultdict

import queue_runtime as qr

QUEUE = qr.QueueName("github-webhooks")
PULL_REQUESTS = [("octo/app", 41), ("octo/app", 42), ("octo/lib", 7), ("octo/docs", 3)]
ACTIONS = ["opened", "synchronize", "review_requested", "labeled", "synchronize", "closed"]
WORKERS = 3


def webhook_events(seed: int = 7) -> list[dict[str, object]]:
    """Each pull request's events in order, the streams shuffled together as GitHub sends them."""
    streams = [
        [{"repo": repo, "number": n, "action": a, "seq": i} for i, a in enumerate(ACTIONS, 1)]
        for repo, n in PULL_REQUESTS
    ]
    rng = random.Random(seed)
    events: list[dict[str, object]] = []
    while any(streams):
        stream = rng.choice([s for s in streams if s])
        events.append(stream.pop(0))
    events.insert(9, {"repo": "octo/lib", "number": 7, "action": "bogus", "seq": -1})
    return events


async def ingress(client: qr.QueueClient, events: list[dict[str, object]]) -> None:
    """What an HTTP endpoint does with each delivery: enqueue it under its pull request."""
    for event in events:
        await client.send_message(
            QUEUE,
            qr.Message(
                json.dumps(event).encode(),
                session_id=f"{event['repo']}/pr-{event['number']}",
                attributes={"x-github-event": "pull_request", "action": str(event["action"])},
            ),
        )
    print(f"ingress: enqueued {len(events)} webhook deliveries for {len(PULL_REQUESTS)} PRs")


async def worker(
    name: str, client: qr.QueueClient, handled: dict[str, list[int]], failed_once: set[str]
) -> None:
    """Take the next pull request with pending events; handle its events in order."""
    while (session := await client.accept_session(QUEUE, timeout=0.2)) is not None:
        async with session:
            while (message := await session.receive_message(timeout=0)) is not None:
                event = json.loads(message.body)
                label = f"{session.session_id} #{event['seq']} {event['action']}"
                if event["action"] == "bogus":
                    await session.dead_letter_message(
                        message, reason="unknown-action", description="no handler for 'bogus'"
                    )
                    print(f"  {name}: {label:42} -> dead-lettered (poison payload)")
                    continue
                if event["action"] == "review_requested" and label not in failed_once:
                    failed_once.add(label)
                    await session.abandon_message(message)
                    print(f"  {name}: {label:42} -> failed, abandoned for retry")
                    continue
                await asyncio.sleep(0.001)  # the real work: call the GitHub API, run CI, ...
                handled[session.session_id].append(int(event["seq"]))
                await session.complete_message(message)
                tries = (
                    f" (delivery {message.delivery_count})" if message.delivery_count > 1 else ""
                )
                print(f"  {name}: {label:42} -> done{tries}")


async def main() -> None:
    async with qr.create_client() as client:
        await client.create_queue(QUEUE, requires_session=True, max_delivery_count=5)
        await ingress(client, webhook_events())
        handled: dict[str, list[int]] = defaultdict(list)
        failed_once: set[str] = set()
        await asyncio.gather(
            *(worker(f"worker-{i}", client, handled, failed_once) for i in range(1, WORKERS + 1))
        )
        dead = await client.receive_messages(QUEUE.dead_letter, max_messages=10, timeout=0)
        for message in dead:
            await client.complete_message(message)

    print("\nper pull request, the order events were handled in:")
    in_order = True
    for session_id, seqs in sorted(handled.items()):
        ok = seqs == sorted(seqs) and len(seqs) == len(ACTIONS)
        in_order &= ok
        print(f"  {session_id:18} {seqs} {'in order' if ok else 'OUT OF ORDER'}")
    print(f"dead-letter queue: {[(m.session_id, m.dead_letter_reason) for m in dead]}")
    if not in_order or len(handled) != len(PULL_REQUESTS) or len(dead) != 1:
        raise SystemExit("demo failed: events lost or out of order")
    print("all events handled exactly once, in order per pull request")


if __name__ == "__main__":
    asyncio.run(main())
