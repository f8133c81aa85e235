"""The SQS adapter against raw boto3, on the same moto server, same messages, same run.

    python benchmarks/bench_sqs.py [--messages 2000] [--groups 20] [--depth 50 10] [--sessions 10]

Each path sends, receives and completes ``--messages`` messages spread over ``--groups``
message groups (sessions) of a FIFO queue, produced in waves so the queue never holds more
than ``--depth`` (moto slows down with queue depth; each depth given is measured in turn, so
the effect of moto's per-message cost shows beside the request savings). Figures are messages
per second:

- raw boto3, one at a time: SendMessage, ReceiveMessage (1), DeleteMessage per message;
- the adapter, one at a time: send_message; then accept_session, receive_message and
  complete_message per message, each in a session of its own;
- the adapter's batch path: send_messages; then up to ``--sessions`` sessions held at once,
  each read with receive_messages(10) and settled by its own complete_messages (one
  DeleteMessageBatch per session), the sessions concurrently.

Targets: the adapter one at a time takes at most 1.2x raw boto3's time; its batch path is at
least 3x faster than the raw loop. A missed target is marked MISS. The adapter paths also check
per-group order. A run takes minutes: progress goes to stderr every few seconds.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import socket
import subprocess
import sys
import time
import urllib.request
from collections import defaultdict
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

from _report import Failed, needs, progress, run, verdict

import queue_runtime as qr

with needs("sqs"):
    import boto3

    from queue_runtime.adapters.sqs import SqsQueueClient
with needs("dev"):  # moto's SQS server (moto[sqs], flask, flask-cors)
    from moto.server import ThreadedMotoServer

REGION = "us-east-1"
KEYS = {"aws_access_key_id": "testing", "aws_secret_access_key": "testing"}
#: SQS requests made by the path running now (counted with botocore's event hooks).
REQUESTS: list[str] = []


def count_requests(sqs: Any) -> None:
    sqs.meta.events.register("before-call.sqs", lambda model, **_: REQUESTS.append(model.name))


class CountingClient(SqsQueueClient):
    """The adapter, counting the requests it sends (for the report only)."""

    async def open(self) -> None:
        await super().open()
        count_requests(self._connection.sqs)
        count_requests(self._connection.poll_sqs)


def make_messages(n: int, groups: int) -> list[tuple[str, bytes, dict[str, str]]]:
    """(group, body, attributes) of every message, the same for every path."""
    messages = []
    for i in range(n):
        group = f"repo/pr-{i % groups}"
        body = json.dumps({"action": "synchronize", "number": i % groups, "seq": i}).encode()
        messages.append((group, body, {"event": "pull_request", "delivery": f"d-{i}"}))
    return messages


def waves(items: list[Any], depth: int) -> list[list[Any]]:
    return [items[i : i + depth] for i in range(0, len(items), depth)]


def raw_one_at_a_time(endpoint: str, messages: list[Any], depth: int) -> None:
    """Raw boto3 on a FIFO queue: every call for one message at a time."""
    sqs = boto3.client("sqs", endpoint_url=endpoint, region_name=REGION, **KEYS)
    count_requests(sqs)
    url = sqs.create_queue(
        QueueName=f"raw-{time.monotonic_ns()}.fifo",
        Attributes={"FifoQueue": "true", "VisibilityTimeout": "30"},
    )["QueueUrl"]
    done = 0
    for number, wave in enumerate(waves(messages, depth)):
        for index, (group, body, attributes) in enumerate(wave):
            sqs.send_message(
                QueueUrl=url,
                MessageBody=body.decode(),
                MessageGroupId=group,
                MessageDeduplicationId=f"{number}-{index}",
                MessageAttributes={
                    k: {"DataType": "String", "StringValue": v} for k, v in attributes.items()
                },
            )
        left = len(wave)
        while left:
            response = sqs.receive_message(
                QueueUrl=url, MaxNumberOfMessages=1, MessageAttributeNames=["All"]
            )
            for message in response.get("Messages", []):
                sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
                left -= 1
                done += 1
        progress.done = done
    sqs.delete_queue(QueueUrl=url)
    assert done == len(messages)


class OrderCheck:
    """Every message completed once, in send order per group."""

    def __init__(self, messages: list[Any]) -> None:
        self.expected = defaultdict(list)
        for group, body, _ in messages:
            self.expected[group].append(body)
        self.seen: dict[str, list[bytes]] = defaultdict(list)

    def add(self, received: qr.ReceivedMessage) -> None:
        assert received.session_id is not None
        self.seen[received.session_id].append(received.body)

    def check(self) -> None:
        assert self.seen == self.expected, "lost, doubled or out-of-order messages"


async def adapter_one_at_a_time(config: qr.AwsSqsConfig, messages: list[Any], depth: int) -> None:
    """The adapter's API one message at a time: each is sent, then received in a session of
    its own and completed (a session's fetch brings the next messages along)."""
    check = OrderCheck(messages)
    async with CountingClient(config) as client:
        queue = qr.QueueName(f"one-{time.monotonic_ns()}")
        await client.create_queue(queue, requires_session=True)
        for wave in waves(messages, depth):
            for group, body, attributes in wave:
                await client.send_message(
                    queue, qr.Message(body, session_id=group, attributes=attributes)
                )
            for _ in wave:
                session = await client.accept_session(queue, timeout=5)
                assert session is not None
                async with session:
                    received = await session.receive_message(timeout=5)
                    assert received is not None
                    await session.complete_message(received)
                    check.add(received)
            progress.done = sum(map(len, check.seen.values()))
        await client.delete_queue(queue)
    check.check()


async def adapter_batches(
    config: qr.AwsSqsConfig, messages: list[Any], depth: int, sessions: int
) -> None:
    """The batch path: send_messages; then up to ``sessions`` sessions at a time, each read
    with receive_messages and completed with its complete_messages, concurrently."""
    check = OrderCheck(messages)
    async with CountingClient(config) as client:
        queue = qr.QueueName(f"batch-{time.monotonic_ns()}")
        await client.create_queue(queue, requires_session=True)
        for wave in waves(messages, depth):
            await client.send_messages(
                queue,
                [
                    qr.Message(body, session_id=group, attributes=attrs)
                    for group, body, attrs in wave
                ],
            )
            left = len(wave)
            while left:
                held = [await client.accept_session(queue, timeout=5)]
                while len(held) < sessions and (
                    more := await client.accept_session(queue, timeout=0)
                ):
                    held.append(more)
                live = [session for session in held if session is not None]
                batches = await asyncio.gather(
                    *(session.receive_messages(max_messages=10, timeout=0) for session in live)
                )
                # a session's messages are settled through it (holder-only settlement)
                await asyncio.gather(
                    *(
                        session.complete_messages(batch)
                        for session, batch in zip(live, batches, strict=True)
                        if batch
                    )
                )
                received = [message for batch in batches for message in batch]
                for session in held:
                    assert session is not None
                    await session.close()
                for message in received:
                    check.add(message)
                left -= len(received)
            progress.done = sum(map(len, check.seen.values()))
        await client.delete_queue(queue)
    check.check()


def timed(run: Callable[[], Any]) -> tuple[float, int]:
    """Seconds and SQS requests of ``run()``."""
    REQUESTS.clear()
    started = time.perf_counter()
    run()
    return time.perf_counter() - started, len(REQUESTS)


async def timed_async(run: Callable[[], Awaitable[None]]) -> tuple[float, int]:
    REQUESTS.clear()
    started = time.perf_counter()
    await run()
    return time.perf_counter() - started, len(REQUESTS)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def moto(mode: str) -> Iterator[str]:
    """moto's SQS server on a free loopback port: in a process of its own (like a real
    server; the default) or in a thread of this one (sharing its GIL with the clients)."""
    port = free_port()
    endpoint = f"http://127.0.0.1:{port}"
    if mode == "thread":
        logging.getLogger("werkzeug").setLevel(logging.ERROR)
        server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
        server.start()
        try:
            yield endpoint
        finally:
            server.stop()
        return
    process = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        for _ in range(100):
            try:
                urllib.request.urlopen(f"{endpoint}/moto-api/", timeout=1).close()
                break
            except OSError:
                time.sleep(0.1)
        else:
            raise Failed(f"moto's SQS server on {endpoint} did not answer")
        yield endpoint
    finally:
        process.terminate()
        process.wait(timeout=10)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=2000)
    parser.add_argument("--groups", type=int, default=20)
    parser.add_argument("--depth", type=int, nargs="+", default=[50, 10])
    parser.add_argument("--sessions", type=int, default=10, help="held at once (batch path)")
    parser.add_argument("--server", choices=["process", "thread"], default="process")
    args = parser.parse_args()

    messages = make_messages(args.messages, args.groups)
    progress.step(f"starting moto's SQS server in a {args.server}")
    with moto(args.server) as endpoint:
        config = qr.AwsSqsConfig(
            region=REGION,
            endpoint_url=endpoint,
            access_key_id="testing",
            secret_access_key="testing",
        )
        # warm up both sides (imports, model loading, connections) on a few messages
        progress.step("warming up")
        timed(lambda: raw_one_at_a_time(endpoint, messages[:20], args.depth[0]))
        asyncio.run(adapter_one_at_a_time(config, messages[:20], args.depth[0]))
        for depth in args.depth:
            measure(config, endpoint, messages, depth, args)


def measure(
    config: qr.AwsSqsConfig, endpoint: str, messages: list[Any], depth: int, args: Any
) -> None:
    """Run the three paths at one queue depth and print their figures and ratios."""
    n = len(messages)
    progress.step(f"depth <= {depth}: raw boto3, one at a time", n)
    raw, raw_requests = timed(lambda: raw_one_at_a_time(endpoint, messages, depth))
    progress.step(f"depth <= {depth}: adapter, one at a time", n)
    one, one_requests = asyncio.run(
        timed_async(lambda: adapter_one_at_a_time(config, messages, depth))
    )
    progress.step(f"depth <= {depth}: adapter, batches", n)
    batch, batch_requests = asyncio.run(
        timed_async(lambda: adapter_batches(config, messages, depth, args.sessions))
    )
    print(
        f"{n} messages over {args.groups} groups, queue depth <= {depth}, moto server "
        f"over HTTP in a {args.server} (send + receive + complete)"
    )
    for label, seconds, requests in (
        ("raw boto3, one at a time", raw, raw_requests),
        ("adapter, one at a time", one, one_requests),
        ("adapter, batches", batch, batch_requests),
    ):
        print(
            f"  {label:26} {n / seconds:6.0f} msg/s  ({seconds:6.2f} s, "
            f"{requests / n:4.2f} requests per message)"
        )
    single, batched = one / raw, raw / batch
    judged = verdict(single <= 1.2, f"depth {depth}: one at a time <= 1.2x raw time")
    print(f"  adapter one-at-a-time time / raw time: {single:5.2f}x  (target <= 1.2x) {judged}")
    judged = verdict(batched >= 3, f"depth {depth}: batches >= 3x faster than raw")
    print(f"  raw time / adapter batch time:         {batched:5.2f}x  (target >= 3x) {judged}")


if __name__ == "__main__":
    run(main)
