"""A worker process of the chaos test: ``python chaos_worker.py URL QUEUE LOG``.

Runs a `Processor` on the session queue until SIGTERM (the test SIGKILLs it at any moment).
Each handler appends ``<monotonic ns> <session> <n> <delivery count>`` to LOG when it starts
(one ``write`` of a short line on a file opened for appending: whole lines, whoever writes),
then takes 50 ms, as real work would (the drain lasts several seconds, kills land in it).
"""

from __future__ import annotations

import asyncio
import os
import sys
import time

import queue_runtime as qr


async def main(url: str, queue: str, log_path: str) -> None:
    log = os.open(log_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)

    async def handle(message: qr.ReceivedMessage) -> None:
        session, n = message.body.decode().split(":")
        line = f"{time.monotonic_ns()} {session} {n} {message.delivery_count}\n"
        os.write(log, line.encode())
        await asyncio.sleep(0.05)

    async with qr.create_client(url) as client:
        processor = qr.Processor(
            client, queue, handle, max_concurrent_sessions=8, receive_timeout=0.5
        )
        await processor.run()


if __name__ == "__main__":
    asyncio.run(main(*sys.argv[1:4]))
