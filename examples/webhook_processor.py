"""A GitHub webhook processor on the runtime: events of several pull requests arrive
interleaved, and each pull request's events are processed in order, pull requests in parallel.

    python examples/webhook_processor.py            # on $QUEUE_RUNTIME_URL, default memory://

The ingress enqueues every event with ``session_id = "<repo>/pr-<n>"``. A `Processor` holds up
to three pull requests (sessions) at once and runs the typed handler on each one's events
strictly in order. One handler call fails once (it is retried with backoff before any later
event of its pull request runs) and one payload is poison (`PermanentError`: dead-lettered at
once, with the reason), to show the guarantees at work.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
from collections import defaultdict

import pydantic

import queue_runtime as qr

QUEUE = qr.QueueName("github-webhooks")
PULL_REQUESTS = [("octo/app", 41), ("octo/app", 42), ("octo/lib", 7), ("octo/docs", 3)]
ACTIONS = ["opened", "synchronize", "review_requested", "labeled", "synchronize", "closed"]
KNOWN_ACTIONS = set(ACTIONS)


class PullRequestEvent(pydantic.BaseModel):
    """The part of GitHub's ``pull_request`` payload this processor reads."""

    repo: str
    number: int
    action: str
    seq: int

    @property
    def pull_request(self) -> str:
        return f"{self.repo}/pr-{self.number}"


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


class Handler:
    """The business logic: one event at a time per pull request."""

    def __init__(self, expected: int) -> None:
        self.handled: dict[str, list[int]] = defaultdict(list)
        self.failed_once: set[tuple[str, int]] = set()
        self.expected = expected
        self.all_handled = asyncio.Event()

    async def __call__(self, event: PullRequestEvent) -> None:
        label = f"{event.pull_request} #{event.seq} {event.action}"
        if event.action not in KNOWN_ACTIONS:
            print(f"  {label:42} -> poison payload, dead-lettered")
            raise qr.PermanentError(f"no handler for action {event.action!r}")
        key = (event.pull_request, event.seq)
        if event.action == "review_requested" and key not in self.failed_once:
            self.failed_once.add(key)
            print(f"  {label:42} -> GitHub API timed out, retried")
            raise TimeoutError("GitHub API did not answer")
        await asyncio.sleep(0.001)  # the real work: call the GitHub API, run CI, ...
        self.handled[event.pull_request].append(event.seq)
        print(f"  {label:42} -> done")
        if sum(map(len, self.handled.values())) == self.expected:
            self.all_handled.set()


async def main() -> None:
    async with qr.create_client() as client:
        await client.create_queue(QUEUE, requires_session=True, max_delivery_count=5)
        await ingress(client, webhook_events())
        handler = Handler(expected=len(PULL_REQUESTS) * len(ACTIONS))
        processor = qr.Processor(
            client,
            QUEUE,
            handler,
            max_concurrent_sessions=3,
            retry=qr.RetryPolicy(max_attempts=5, initial_delay=0.05, max_delay=0.5),
        )
        async with processor:  # runs in the background; leaving stops it gracefully
            await asyncio.wait_for(handler.all_handled.wait(), timeout=30)
        dead = await client.receive_messages(QUEUE.dead_letter, max_messages=10, timeout=0)
        for message in dead:
            await client.complete_message(message)
        health = processor.health()

    print("\nper pull request, the order events were handled in:")
    in_order = True
    for pull_request, seqs in sorted(handler.handled.items()):
        ok = seqs == sorted(seqs) and len(seqs) == len(ACTIONS)
        in_order &= ok
        print(f"  {pull_request:18} {seqs} {'in order' if ok else 'OUT OF ORDER'}")
    print(f"dead-letter queue: {[(m.session_id, m.dead_letter_reason) for m in dead]}")
    print(f"processor: {dict(health.counters)}")
    if not in_order or len(handler.handled) != len(PULL_REQUESTS) or len(dead) != 1:
        raise SystemExit("demo failed: events lost or out of order")
    print("all events handled exactly once, in order per pull request")


if __name__ == "__main__":
    logging.basicConfig(level=logging.WARNING, format="  log: %(name)s %(message)s")
    asyncio.run(main())
