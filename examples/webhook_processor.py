"""A GitHub webhook processor, end to end and durable: signed deliveries are POSTed over HTTP to
the webhook ingress, which enqueues each one in its pull request's session, and a `Processor`
handles each pull request's events in order, pull requests in parallel.

    python examples/webhook_processor.py           # SQLite file in the data or temp directory
    python examples/webhook_processor.py --slow    # slow enough to stop by hand (Ctrl-C, kill)
    python examples/webhook_processor.py --fresh   # forget the last run and start over
    QUEUE_RUNTIME_URL=memory:// python examples/webhook_processor.py   # any queue URL

Stop it half way and run it again: it resumes. What was enqueued is not posted again (the
demo's posting progress is the session state of ``demo/ingress``), and what was handled is not
handled again (each pull request's session state lists the deliveries its handler finished;
a redelivered one is skipped), so every event takes effect once, in order, across runs. One
handler call fails once (retried before any later event of its pull request), one payload is
poison (dead-lettered with its reason), and one delivery has a bad signature (401). A run
after one that completed starts over. ``--data-dir`` (or ``$QUEUE_RUNTIME_DEMO_DIR``) chooses
where the SQLite file goes (default ``$XDG_DATA_HOME/queue-runtime``, else the temp directory).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import random
import signal
import sys
import tempfile
import uuid
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import uvicorn

import queue_runtime as qr
from queue_runtime.ingress import github_app, sign

QUEUE = qr.QueueName("github-webhooks")
SECRET = "demo-webhook-secret"  # in production: os.environ["GITHUB_WEBHOOK_SECRET"]
LEDGER = "demo/ingress"  # the session whose state lists the deliveries posted so far
LOCK_SECONDS = 3.0  # short, so a killed run's locks lapse soon and the next run goes on
DATA_DIR_ENV = "QUEUE_RUNTIME_DEMO_DIR"


@dataclass(frozen=True)
class Delivery:
    """One webhook delivery as GitHub would send it."""

    id: str
    event: str
    payload: dict[str, Any]
    subject: str  # the session it belongs to: owner/repo#N, or owner/repo@ref for pushes
    label: str
    secret: str = SECRET

    @property
    def expected_status(self) -> int:
        return 202 if self.secret == SECRET else 401


def _pull_request_stream(repo: str, number: int) -> list[tuple[str, dict[str, Any], str]]:
    """The deliveries of one pull request's life, in the order GitHub sends them."""
    base = {"repository": {"full_name": repo}, "sender": {"login": "octocat"}}
    pr = {"number": number, "title": f"Change {number}", "head": {"ref": f"fix-{number}"}}
    issue = {"number": number, "pull_request": {"url": f"https://api.github.com/{repo}/{number}"}}

    def comment(text: str) -> dict[str, Any]:
        return {**base, "action": "created", "issue": issue, "comment": {"body": text}}

    return [
        ("pull_request", {**base, "action": "opened", "pull_request": pr}, "opened"),
        ("issue_comment", comment("Looks good, one nit"), "comment"),
        ("pull_request", {**base, "action": "synchronize", "pull_request": pr}, "synchronize"),
        (
            "pull_request_review",
            {**base, "action": "submitted", "pull_request": pr, "review": {"state": "approved"}},
            "review approved",
        ),
        ("issue_comment", comment("Thanks!"), "comment"),
        (
            "pull_request",
            {**base, "action": "closed", "pull_request": {**pr, "merged": True}},
            "closed (merged)",
        ),
    ]


def sample_deliveries(seed: int = 7) -> list[Delivery]:
    """Three pull requests and the pushes to main, interleaved as GitHub sends them, plus a
    poison payload and a delivery with a bad signature."""
    streams: list[list[tuple[str, str, dict[str, Any], str]]] = [
        [(f"{repo}#{n}", e, p, label) for e, p, label in _pull_request_stream(repo, n)]
        for repo, n in (("octo/app", 41), ("octo/app", 42), ("octo/lib", 7))
    ]
    main = {"ref": "refs/heads/main", "repository": {"full_name": "octo/app"}}
    streams.append(
        [
            ("octo/app@refs/heads/main", "push", {**main, "after": str(i) * 7}, f"push {i}")
            for i in (1, 2, 3)
        ]
    )
    rng = random.Random(seed)
    items: list[tuple[str, str, dict[str, Any], str]] = []
    while any(streams):
        items.append(rng.choice([s for s in streams if s]).pop(0))
    poison = {  # an issue_comment without its comment: no handler can use it
        "action": "created",
        "issue": {"number": 7, "pull_request": {}},
        "repository": {"full_name": "octo/lib"},
    }
    items.insert(9, ("octo/lib#7", "issue_comment", poison, "comment (poison)"))
    deliveries = [
        Delivery(str(uuid.uuid5(uuid.NAMESPACE_URL, f"queue-runtime-demo/{i}")), e, p, s, label)
        for i, (s, e, p, label) in enumerate(items)
    ]
    forged = deliveries[4]
    deliveries.insert(
        5,
        Delivery(
            str(uuid.uuid5(uuid.NAMESPACE_URL, "queue-runtime-demo/forged")),
            forged.event,
            forged.payload,
            forged.subject,
            f"{forged.label} (forged)",
            secret="not-the-secret",
        ),
    )
    return deliveries


DELIVERIES = sample_deliveries()
BY_ID = {d.id: d for d in DELIVERIES}
POISON = next(d.id for d in DELIVERIES if "poison" in d.label)
FLAKY = next(d.id for d in DELIVERIES if d.subject == "octo/app#42" and "review" in d.label)
EXPECTED: dict[str, list[str]] = defaultdict(list)  # per subject, the deliveries to handle
for _d in DELIVERIES:
    if _d.expected_status == 202 and _d.id != POISON:
        EXPECTED[_d.subject].append(_d.id)


def say(text: str) -> None:
    print(text, flush=True)


# -- the front half: GitHub posting to the ingress --------------------------------------------


async def post(port: int, delivery: Delivery) -> tuple[int, dict[str, Any]]:
    """POST one signed delivery to the ingress over HTTP/1.1 (stdlib asyncio streams)."""
    body = json.dumps(delivery.payload).encode()
    headers = {
        "Host": f"127.0.0.1:{port}",
        "Content-Type": "application/json",
        "Content-Length": str(len(body)),
        "X-GitHub-Event": delivery.event,
        "X-GitHub-Delivery": delivery.id,
        "X-Hub-Signature-256": sign(delivery.secret, body),
        "Connection": "close",
    }
    head = "POST /webhook HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers.items())
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(head.encode() + b"\r\n" + body)
        await writer.drain()
        response = await reader.read()
    finally:
        writer.close()
        await writer.wait_closed()
    status_line, _, rest = response.partition(b"\r\n")
    content = rest.partition(b"\r\n\r\n")[2]
    try:
        answer = json.loads(content) if content else {}
    except ValueError:
        answer = {"text": content.decode(errors="replace")}
    return int(status_line.split()[1]), answer if isinstance(answer, dict) else {}


async def session_state(client: qr.QueueClient, session_id: str) -> dict[str, Any]:
    """A session's JSON state, waiting out the lock a killed earlier run may still hold."""
    session = await accept(client, session_id)
    try:
        raw = await session.get_state()
    finally:
        await session.close()
    return json.loads(raw) if raw else {}


async def save_state(client: qr.QueueClient, session_id: str, state: dict[str, Any]) -> None:
    session = await accept(client, session_id)
    try:
        await session.set_state(json.dumps(state).encode())
    finally:
        await session.close()


async def accept(client: qr.QueueClient, session_id: str) -> qr.SessionClient:
    for tries in range(int(LOCK_SECONDS * 10) + 20):
        try:
            session = await client.accept_session(QUEUE, session_id)
        except qr.SessionLocked:
            if tries == 0:
                say(f"session {session_id} is still locked by a stopped run: waiting")
            await asyncio.sleep(0.1)  # held by a run that was killed: its lock lapses soon
            continue
        assert session is not None
        return session
    raise SystemExit(f"demo failed: session {session_id} stayed locked")


async def ingress_side(client: qr.QueueClient, port: int, pace: float) -> None:
    """What GitHub does: deliver each event, signed, one after the other."""
    posted: list[str] = (await session_state(client, LEDGER)).get("posted", [])
    if posted:
        say(f"resuming: {len(posted)} of {len(DELIVERIES)} deliveries were posted before")
    for delivery in DELIVERIES:
        if delivery.id in posted:
            continue
        status, answer = await post(port, delivery)
        where = answer.get("session_id") or answer.get("detail") or answer.get("status", "")
        what = f"{delivery.event:19} {delivery.subject:25} {delivery.label:18}"
        say(f"POST {what} -> {status} {where}")
        misrouted = status == 202 and answer.get("session_id") != delivery.subject
        if status != delivery.expected_status or misrouted:
            raise SystemExit(f"demo failed: the ingress answered {status} {answer}")
        posted.append(delivery.id)
        await save_state(client, LEDGER, {"posted": posted})
        await asyncio.sleep(pace)


# -- the back half: the business logic, one event at a time per pull request ----------------


class Handler:
    """Handles each delivery once: its pull request's session state lists those done."""

    def __init__(self, pace: float) -> None:
        self.pace = pace
        self.handled = 0

    async def __call__(self, context: qr.MessageContext) -> None:
        message, session = context.message, context.session
        assert session is not None
        delivery = BY_ID[message.attributes["github_delivery"]]
        line = f"  handle {delivery.subject:25} {delivery.label:18}"
        raw = await session.get_state()
        state: dict[str, list[str]] = json.loads(raw) if raw else {"handled": []}
        if delivery.id in state["handled"]:
            say(f"{line} -> handled before the restart, not again")
            return
        payload = json.loads(message.body)
        if delivery.event == "issue_comment" and "comment" not in payload:
            say(f"{line} -> poison payload, dead-lettered")
            raise qr.PermanentError("issue_comment payload has no comment")
        if delivery.id == FLAKY and context.attempt == 1:
            say(f"{line} -> GitHub API timed out, retried")
            raise TimeoutError("GitHub API did not answer")
        await asyncio.sleep(self.pace)  # the real work: call the GitHub API, run CI, ...
        state["handled"].append(delivery.id)
        await session.set_state(json.dumps(state).encode())  # the effect, kept with the queue
        self.handled += 1
        say(f"{line} -> done")


async def drained(client: qr.QueueClient) -> None:
    """Until nothing is left in the queue: every message completed or dead-lettered."""
    while True:
        stats = await client.get_queue_statistics(QUEUE)
        if stats.total == 0:
            return
        await asyncio.sleep(0.05)


async def verdict(client: qr.QueueClient) -> bool:
    """What the handlers did, across every run, read back from the sessions' state."""
    say("\nper subject, the deliveries handled, in the order they were handled:")
    ok = True
    for subject, expected in EXPECTED.items():
        handled = (await session_state(client, subject)).get("handled", [])
        steps = [expected.index(d) + 1 if d in expected else 0 for d in handled]
        right = handled == expected
        ok &= right
        say(f"  {subject:25} {steps} {'in order' if right else 'LOST, DOUBLED OR OUT OF ORDER'}")
    dead = await client.peek_messages(QUEUE.dead_letter, max_messages=10)
    for m in dead:
        say(
            f"dead-lettered: {BY_ID[m.message_id].subject} {BY_ID[m.message_id].label}: "
            f"{m.dead_letter_reason} ({m.dead_letter_description})"
        )
    return ok and {m.message_id for m in dead} == {POISON}


# -- wiring --------------------------------------------------------------------------------


def default_url(data_dir: str | None) -> str:
    if data_dir is None:
        xdg = os.environ.get("XDG_DATA_HOME")
        data_dir = os.path.join(xdg, "queue-runtime") if xdg else None
    folder = Path(data_dir or os.path.join(tempfile.gettempdir(), "queue-runtime-demo"))
    folder.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{(folder / 'demo.db').resolve()}"


async def create_queue(client: qr.QueueClient) -> None:
    await client.create_queue(
        QUEUE, requires_session=True, max_delivery_count=5, lock_duration=LOCK_SECONDS
    )


async def main(args: argparse.Namespace) -> int:
    url = os.environ.get("QUEUE_RUNTIME_URL") or default_url(args.data_dir)
    say(f"queue: {url}  (QUEUE_RUNTIME_URL overrides; --fresh starts over)")
    pace = 0.25 if args.slow else 0.005
    async with qr.create_client(url) as client:
        await create_queue(client)
        if args.fresh or (await session_state(client, LEDGER)).get("completed"):
            say("starting over" if args.fresh else "the last run had completed: starting over")
            with contextlib.suppress(qr.QueueNotFound):
                await client.delete_queue(QUEUE)
            await create_queue(client)
        app = github_app(client, QUEUE, secret=SECRET)
        config = uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning")
        server = uvicorn.Server(config)
        serving = asyncio.create_task(server.serve())
        while not server.started:
            if serving.done():
                serving.result()
            await asyncio.sleep(0.005)
        port = server.servers[0].sockets[0].getsockname()[1]
        say(f"ingress: github_app on http://127.0.0.1:{port}/webhook")
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):  # after uvicorn's: a stop is ours to run
            loop.add_signal_handler(sig, stop.set)
        handler = Handler(pace * 0.8)
        processor = qr.Processor(
            client,
            QUEUE,
            handler,
            max_concurrent_sessions=3,
            retry=qr.RetryPolicy(max_attempts=5, initial_delay=0.05, max_delay=0.5),
            shutdown_timeout=5.0,
        )
        interrupted = False
        try:
            async with processor:  # runs in the background; leaving stops it gracefully
                work = asyncio.create_task(run_until_drained(client, port, pace))
                stopped = asyncio.create_task(stop.wait())
                await asyncio.wait({work, stopped}, return_when=asyncio.FIRST_COMPLETED)
                interrupted = not work.done()
                for task in (work, stopped):
                    task.cancel()
                await asyncio.gather(work, stopped, return_exceptions=True)
                if not interrupted:
                    work.result()
            health = processor.health()
        finally:
            server.should_exit = True
            await serving
        if interrupted:
            say(f"\ninterrupted after handling {handler.handled} events: run again to resume")
            return 130
        say(f"processor: {dict(health.counters)}")
        ok = await verdict(client)
        if ok:  # the next run starts over
            await save_state(client, LEDGER, {"posted": [d.id for d in DELIVERIES], "completed": 1})
    if not ok:
        say("demo failed: events lost, doubled or out of order")
        return 1
    say("every event handled exactly once, in order per pull request")
    return 0


async def run_until_drained(client: qr.QueueClient, port: int, pace: float) -> None:
    await ingress_side(client, port, pace)
    await asyncio.wait_for(drained(client), timeout=60)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--slow", action="store_true", help="a pace easy to interrupt by hand")
    parser.add_argument("--fresh", action="store_true", help="delete the last run's queue first")
    parser.add_argument(
        "--data-dir", default=os.environ.get(DATA_DIR_ENV), help=f"or ${DATA_DIR_ENV}"
    )
    logging.basicConfig(level=logging.WARNING, format="  log: %(name)s %(message)s")
    sys.exit(asyncio.run(main(parser.parse_args())))
