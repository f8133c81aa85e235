"""The Service Bus adapter against the raw async SDK, on the same emulator, same run.

    python benchmarks/bench_servicebus.py [--messages 2000] [--batch 100] [--rounds 3]

Both sides send, receive and complete ``--messages`` messages (a JSON body and two
attributes) over AMQP to the local emulator, which runs in a process of its own:

- one at a time: send one message, then receive one and complete it, per message;
- batches: send ``--batch`` messages per call (the SDK's ServiceBusMessageBatch), then
  receive up to ``--batch`` per call and complete them (the raw SDK one by one, as it has no
  batch settlement; the adapter with ``complete_messages``).

The raw side uses ``azure.servicebus.aio`` directly with one sender and one receiver per
queue, as the adapter keeps them; every link is opened and warmed before timing starts.
Target: the adapter takes at most 1.2x the raw SDK's time on both paths (``MISS`` is printed
otherwise). The paths take turns, in reversed order every other round; the best of
``--rounds`` is reported. The adapter's own work is a few microseconds a message (encode,
decode, checks): differences beyond that are the machine's noise (the emulator, the SDK and
anything else running share its cores).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import socket
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

from _report import Failed, needs, progress, run, verdict

import queue_runtime as qr

with needs("azure"):
    from azure.servicebus import ServiceBusMessage
    from azure.servicebus.aio import ServiceBusClient

    from queue_runtime.adapters.servicebus import ServiceBusQueueClient
with needs("emulator"):
    from queue_runtime.testing import servicebus_emulator

TARGET = 1.2


def bodies(n: int) -> list[tuple[bytes, dict[str, str]]]:
    return [
        (json.dumps({"action": "push", "seq": i}).encode(), {"event": "push", "delivery": f"d{i}"})
        for i in range(n)
    ]


async def raw_one(links: tuple[Any, Any], messages: list[Any]) -> None:
    sender, receiver = links
    for body, attributes in messages:
        await sender.send_messages(ServiceBusMessage(body, application_properties=dict(attributes)))
        [got] = await receiver.receive_messages(max_message_count=1, max_wait_time=5)
        await receiver.complete_message(got)


async def raw_batches(links: tuple[Any, Any], messages: list[Any], size: int) -> None:
    sender, receiver = links
    for start in range(0, len(messages), size):
        batch = await sender.create_message_batch()
        for body, attributes in messages[start : start + size]:
            batch.add_message(ServiceBusMessage(body, application_properties=dict(attributes)))
        await sender.send_messages(batch)
        left = len(batch)
        while left:
            got = await receiver.receive_messages(max_message_count=left, max_wait_time=5)
            for message in got:
                await receiver.complete_message(message)
            left -= len(got)


async def adapter_one(client: qr.QueueClient, queue: str, messages: list[Any]) -> None:
    for body, attributes in messages:
        await client.send_message(queue, qr.Message(body, attributes=attributes))
        got = await client.receive_message(queue, timeout=5)
        assert got is not None
        await client.complete_message(got)


async def adapter_batches(
    client: qr.QueueClient, queue: str, messages: list[Any], size: int
) -> None:
    for start in range(0, len(messages), size):
        wave = [qr.Message(b, attributes=a) for b, a in messages[start : start + size]]
        await client.send_messages(queue, wave)
        left = len(wave)
        while left:
            got = await client.receive_messages(queue, max_messages=left, timeout=5)
            await client.complete_messages(got)
            left -= len(got)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def emulator() -> Iterator[tuple[str, str]]:
    """The emulator in a process of its own: (connection string, admin host:port)."""
    port, admin = free_port(), free_port()
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            servicebus_emulator.__name__,
            "--port",
            str(port),
            "--admin-port",
            str(admin),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        for _ in range(100):
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", admin), 1):
                break
            time.sleep(0.1)
        else:
            raise Failed(f"the emulator's admin port 127.0.0.1:{admin} did not answer")
        conn = (
            f"Endpoint=sb://127.0.0.1:{port};SharedAccessKeyName=RootManageSharedAccessKey;"
            "SharedAccessKey=emulator;UseDevelopmentEmulator=true"
        )
        yield conn, f"127.0.0.1:{admin}"
    finally:
        process.terminate()
        process.wait(10)


async def timed(run: Callable[[], Awaitable[None]]) -> float:
    """Seconds ``run()`` takes."""
    started = time.perf_counter()
    await run()
    return time.perf_counter() - started


async def main(messages: int, size: int, rounds: int) -> None:
    data = bodies(messages)
    progress.step("starting the emulator, opening links")
    with emulator() as (conn, admin):
        config = qr.AzureServiceBusConfig(connection_string=conn, admin_endpoint=admin)
        async with (
            ServiceBusQueueClient(config) as client,
            ServiceBusClient.from_connection_string(conn) as raw,
        ):
            queues = {name: f"bench-{name}" for name in ("raw-one", "one", "raw-batch", "batch")}
            for queue in queues.values():
                await client.create_queue(queue)
            # every side's links are opened (and warmed) before anything is timed
            links: dict[str, tuple[Any, Any]] = {}
            for name in ("raw-one", "raw-batch"):
                sender = raw.get_queue_sender(queues[name])
                receiver = raw.get_queue_receiver(queues[name])
                await sender.__aenter__()
                await receiver.__aenter__()
                links[name] = (sender, receiver)
            paths: dict[str, Callable[[list[Any]], Awaitable[None]]] = {
                "raw-one": lambda d: raw_one(links["raw-one"], d),
                "one": lambda d: adapter_one(client, queues["one"], d),
                "raw-batch": lambda d: raw_batches(links["raw-batch"], d, size),
                "batch": lambda d: adapter_batches(client, queues["batch"], d, size),
            }
            progress.step("warming up")
            for path in paths.values():
                await path(data[:20])
            best = dict.fromkeys(paths, float("inf"))
            order = list(paths)
            for round_ in range(rounds):
                for name in order:
                    path = paths[name]
                    progress.step(f"round {round_ + 1}/{rounds}: {name}, {messages} messages")
                    best[name] = min(best[name], await timed(lambda path=path: path(data)))
                order.reverse()  # neither side always goes first
            for queue in queues.values():
                await client.delete_queue(queue)
    print(f"{messages} messages, send + receive + complete, best of {rounds}")
    for label, raw, ours in (
        ("one at a time", "raw-one", "one"),
        ("batches", "raw-batch", "batch"),
    ):
        ratio = best[ours] / best[raw]
        judged = verdict(ratio <= TARGET, f"{label}: adapter <= {TARGET}x the raw SDK's time")
        print(
            f"  {label:14} raw SDK {best[raw]:7.2f} s ({messages / best[raw]:7.0f}/s)  "
            f"adapter {best[ours]:7.2f} s ({messages / best[ours]:7.0f}/s)  "
            f"ratio {ratio:4.2f}x (target <= {TARGET}x) {judged}"
        )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=2000)
    parser.add_argument("--batch", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    run(lambda: main(args.messages, args.batch, args.rounds))
