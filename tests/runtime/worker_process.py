"""A worker process for the shutdown tests: runs a Processor until SIGTERM (or SIGKILL).

    python worker_process.py memory <messages> <sessions: 0|1>
    python worker_process.py sqs <endpoint_url> <queue> <log_path>

``memory``: fills an in-memory queue itself, processes until SIGTERM, then prints one JSON
line with what it handled and what the broker holds. ``sqs``: processes an existing SQS queue,
appending each message id to ``log_path`` when its handler starts (the test kills it).
Both print ``READY`` once the first handler is running.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys

import queue_runtime as qr


def ready_once(flag: list[bool]) -> None:
    if not flag:
        flag.append(True)
        print("READY", flush=True)


async def memory(messages: int, sessions: bool) -> None:
    from queue_runtime.adapters.memory import InMemoryQueueClient

    async with InMemoryQueueClient() as client:
        await client.create_queue("jobs", requires_session=sessions)
        await client.send_messages(
            "jobs",
            [
                qr.Message(f"{n}".encode(), session_id=f"s{n % 4}" if sessions else None)
                for n in range(messages)
            ],
        )
        started: list[str] = []
        finished: list[str] = []
        flag: list[bool] = []

        async def handle(message: qr.ReceivedMessage) -> None:
            started.append(message.body.decode())
            ready_once(flag)
            await asyncio.sleep(0.05)
            finished.append(message.body.decode())

        processor = qr.Processor(
            client, "jobs", handle, max_concurrency=4, max_concurrent_sessions=4
        )
        await processor.run()  # returns after SIGTERM, stopped gracefully
        stats = client.statistics("jobs")
        dead = client.statistics(qr.QueueName("jobs").dead_letter)
        print(
            json.dumps(
                {
                    "started": started,
                    "finished": finished,
                    "completed": stats.completed,
                    "active": stats.active,
                    "locked": stats.locked,
                    "locked_sessions": stats.locked_sessions,
                    "dead": dead.active,
                    "counters": processor.health().counters,
                    "running": processor.health().running,
                }
            ),
            flush=True,
        )


async def sqs(endpoint: str, queue: str, log_path: str) -> None:
    from queue_runtime.adapters.sqs import SqsQueueClient

    config = qr.AwsSqsConfig(
        region="us-east-1",
        endpoint_url=endpoint,
        access_key_id="testing",
        secret_access_key="testing",
    )
    flag: list[bool] = []
    with open(log_path, "a", buffering=1) as log:  # noqa: ASYNC230 - the test's evidence

        async def handle(message: qr.ReceivedMessage) -> None:
            log.write(message.body.decode() + "\n")
            log.flush()
            os.fsync(log.fileno())
            ready_once(flag)
            await asyncio.sleep(0.2)

        async with SqsQueueClient(config, default_timeout=1) as client:
            await qr.Processor(client, queue, handle, max_concurrency=4, receive_timeout=0.5).run()


def main() -> None:
    mode = sys.argv[1]
    if mode == "memory":
        asyncio.run(memory(int(sys.argv[2]), sys.argv[3] == "1"))
    else:
        asyncio.run(sqs(sys.argv[2], sys.argv[3], sys.argv[4]))


if __name__ == "__main__":
    main()
