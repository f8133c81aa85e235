"""A separate process for the crash and multi-process tests: ``python sql_worker.py MODE URL
QUEUE [ARG]``. It reports on stdout, one line per event, flushed, so the test can kill it at a
known point.

Modes:
- ``hang``: receive one message, print ``RECEIVED <message id> <delivery count>``, then sleep
  (the test kills it mid-handler).
- ``produce``: send batches of ARG messages forever, printing ``SENT <batch number>`` after
  each (the test kills it mid-batch).
- ``drain``: take sessions until none comes for a while; complete their messages in small
  batches, and write ``<ns timestamp> <session id> <body>`` per completed message (timestamp
  taken once its batch is completed) to the file ARG at the end.
- ``take``: receive and complete one message at a time (a queue without sessions) until none
  comes for a while, and write ``<body>`` per completed message to the file ARG at the end.
"""

from __future__ import annotations

import asyncio
import sys
import time

import queue_runtime as qr


async def hang(client: qr.QueueClient, queue: str) -> None:
    message = await client.receive_message(queue, timeout=30)
    assert message is not None
    print(f"RECEIVED {message.message_id} {message.delivery_count}", flush=True)
    await asyncio.sleep(3600)


async def produce(client: qr.QueueClient, queue: str, size: int) -> None:
    batch = 0
    while True:
        await client.send_messages(
            queue, [qr.Message(f"{batch}:{i}".encode()) for i in range(size)]
        )
        print(f"SENT {batch}", flush=True)
        batch += 1


async def drain(client: qr.QueueClient, queue: str, log: list[str]) -> None:
    while True:
        session = await client.accept_session(queue, timeout=2.0)
        if session is None:
            return
        async with session:
            while batch := await session.receive_messages(max_messages=10, timeout=0):
                await session.complete_messages(batch)
                stamp = time.time_ns()
                for message in batch:
                    log.append(f"{stamp} {session.session_id} {message.body.decode()}\n")


async def take(client: qr.QueueClient, queue: str, log: list[str]) -> None:
    while message := await client.receive_message(queue, timeout=2.0):
        await client.complete_message(message)
        log.append(f"{message.body.decode()}\n")


async def main(mode: str, url: str, queue: str, arg: str | None, log: list[str]) -> None:
    async with qr.create_client(url) as client:
        if mode == "hang":
            await hang(client, queue)
        elif mode == "produce":
            await produce(client, queue, int(arg or 100))
        elif mode == "drain":
            await drain(client, queue, log)
        elif mode == "take":
            await take(client, queue, log)
        else:
            raise SystemExit(f"unknown mode {mode!r}")


if __name__ == "__main__":
    mode, url, queue, *rest = sys.argv[1:]
    arg = rest[0] if rest else None
    completed: list[str] = []
    asyncio.run(main(mode, url, queue, arg, completed))
    if mode in ("drain", "take") and arg is not None:
        with open(arg, "w", encoding="utf-8") as out:
            out.writelines(completed)
