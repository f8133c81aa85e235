"""The CLI through its real entry point, in a subprocess, on durable brokers (SQS over moto's
server; SQLite where it exists)."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

import pytest

import queue_runtime as qr
from queue_runtime.cli._operations import original_id

pytest.importorskip("boto3")

from cli_helpers import entry_point

Command = Callable[..., Any]


def test_help_lists_the_commands(sqs_command: Command) -> None:
    for argv in (entry_point(), [sys.executable, "-m", "queue_runtime"]):
        done = subprocess.run([*argv, "--help"], capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stderr
        for name in ("queues", "send", "peek", "receive", "dlq", "worker", "emulator", "ingress"):
            assert name in done.stdout
        for scheme in ("sqlite:///", "postgresql://", "sqs://", "memory://", "memory://NAME"):
            assert scheme in done.stdout
    assert sqs_command("bogus").returncode == 2


def test_create_send_receive_complete(command: Command, name: str) -> None:
    assert command("queues", "create", name, "--sessions", "--lock-duration", "5").returncode == 0
    sent = command("send", name, "--session", "pr-7", "--attr", "k=v", "--lines", input="a\nb\n")
    assert sent.returncode == 0, sent.stderr
    got = command("receive", name, "-n", "5", "--json", "--complete")
    assert got.returncode == 0, got.stderr
    records = json.loads(got.stdout)
    assert [(r["body"], r["session_id"], r["attributes"]) for r in records] == [
        ("a", "pr-7", {"k": "v"}),
        ("b", "pr-7", {"k": "v"}),
    ]
    assert json.loads(command("receive", name, "--json", "--timeout", "0").stdout) == []
    assert command("queues", "delete", name).returncode == 0


def test_what_sqs_cannot_do_is_said_in_one_line(sqs_command: Command, name: str) -> None:
    sqs_command("queues", "create", name)
    for args in (("peek", name), ("queues", "stats", name)):
        done = sqs_command(*args)
        assert done.returncode == 1, done
        assert done.stderr.startswith("error: UnsupportedOperation:"), done.stderr
        assert done.stderr.count("\n") == 1
    missing = sqs_command("send", "no-such-queue-here", "x")
    assert missing.returncode == 1 and missing.stderr.startswith("error: QueueNotFound:")
    assert "queue-runtime queues create no-such-queue-here" in missing.stderr
    bad_url = sqs_command("queues", "create", name, url="nope://")
    assert bad_url.returncode == 1 and "ConfigurationError" in bad_url.stderr


def test_without_a_url_nothing_is_made_on_a_throwaway_broker(name: str) -> None:
    env = {k: v for k, v in os.environ.items() if k != "QUEUE_RUNTIME_URL"}
    done = subprocess.run(
        [*entry_point(), "queues", "create", name], env=env, capture_output=True, text=True,
        timeout=60,
    )  # fmt: skip
    assert done.returncode == 1 and done.stdout == ""
    assert done.stderr.startswith("error: ConfigurationError: no queue URL: give --url URL")
    assert "$QUEUE_RUNTIME_URL" in done.stderr and done.stderr.count("\n") == 1


def test_dlq_list_on_sqs_receives_and_gives_back(
    sqs_command: Command, sqs_url: str, name: str
) -> None:
    """SQS cannot peek: the dead letters are received, listed and released, all still there."""
    asyncio.run(_dead_letter(sqs_url, name, 12, sessions=False))
    counts: list[set[int]] = []
    for _ in range(2):
        listed = sqs_command("dlq", "list", name, "--json")
        assert listed.returncode == 0, listed.stderr
        records = json.loads(listed.stdout)
        assert sorted(r["message_id"] for r in records) == sorted(f"id-{i}" for i in range(12))
        assert {(r["dead_letter_reason"], r["dead_letter_description"]) for r in records} == {
            ("boom", "it broke")
        }
        counts.append({r["delivery_count"] for r in records})
    [first], [second] = counts
    assert second == first + 1  # each listing counts one receive on every dead letter
    assert json.loads(sqs_command("dlq", "list", name, "-n", "5", "--json").stdout)[4]
    human = sqs_command("dlq", "list", name)
    assert human.returncode == 0 and "boom" in human.stdout
    left = json.loads(
        sqs_command("receive", name, "--dead-letter", "-n", "20", "--json", "--complete").stdout
    )
    assert sorted(r["message_id"] for r in left) == sorted(f"id-{i}" for i in range(12))
    done = sqs_command("dlq", "list", "--help")
    assert done.returncode == 0 and "counts a receive" in " ".join(done.stdout.split())


def test_receive_n_returns_n_across_pages(command: Command, name: str) -> None:
    """A provider hands out 10 at most per request (SQS): the command asks until it has N."""
    command("queues", "create", name)
    sent = command("send", name, "--lines", input="".join(f"m{i}\n" for i in range(50)))
    assert sent.returncode == 0, sent.stderr
    got = command("receive", name, "-n", "50", "--json", "--complete")
    assert got.returncode == 0, got.stderr
    assert sorted(r["body"] for r in json.loads(got.stdout)) == sorted(f"m{i}" for i in range(50))


def test_send_with_a_session_to_a_queue_without_sessions_is_refused(
    command: Command, name: str
) -> None:
    command("queues", "create", name)
    refused = command("send", name, "x", "--session", "pr-1")
    assert refused.returncode == 1 and refused.stderr.count("\n") == 1, refused
    assert refused.stderr.startswith("error: ValidationError:") and "no sessions" in refused.stderr
    assert json.loads(command("receive", name, "--json", "--timeout", "0").stdout) == []
    sessions = f"{name}s"
    command("queues", "create", sessions, "--sessions")
    assert command("send", sessions, "x", "--session", "pr-1").returncode == 0


async def _dead_letter(
    url: str, queue: str, count: int, *, sessions: bool, lock_duration: float = 5
) -> None:
    async with qr.create_client(url) as client:
        await client.create_queue(queue, requires_session=sessions, lock_duration=lock_duration)
        messages = [
            qr.Message(
                f"body-{i}".encode(),
                session_id="pr-1" if sessions else None,
                attributes={"i": str(i)},
                correlation_id=f"c{i}",
                message_id=f"id-{i}",
            )
            for i in range(count)
        ]
        await client.send_messages(queue, messages)
        done = 0
        while done < count:
            holder: Any = client
            if sessions:
                holder = await client.accept_session(queue, timeout=2)
                got = await holder.receive_messages(timeout=2)
            else:
                got = await client.receive_messages(queue, timeout=2)
            for message in got:
                await holder.dead_letter_message(message, reason="boom", description="it broke")
            done += len(got)
            if sessions:
                await holder.close()


def test_redrive_processes_again_with_everything_intact(
    command: Command, durable_url: str, name: str
) -> None:
    asyncio.run(_dead_letter(durable_url, name, 3, sessions=True))
    moved = command("dlq", "redrive", name, "--json")
    assert moved.returncode == 0, moved.stderr
    assert json.loads(moved.stdout)["redriven"] == 3
    got = json.loads(command("receive", name, "-n", "5", "--json", "--complete").stdout)
    # a redriven copy carries a redrive id derived from the original (specs/cli.md)
    assert [
        (original_id(r["message_id"]), r["body"], r["attributes"], r["correlation_id"]) for r in got
    ] == [(f"id-{i}", f"body-{i}", {"i": str(i)}, f"c{i}") for i in range(3)]
    assert all(r["message_id"] != original_id(r["message_id"]) for r in got)
    assert {r["session_id"] for r in got} == {"pr-1"}
    assert (
        json.loads(command("receive", name, "--dead-letter", "--json", "--timeout", "0").stdout)
        == []
    )


@pytest.mark.slow
def test_sigint_during_a_redrive_loses_and_duplicates_nothing(durable_url: str, name: str) -> None:
    # SQLite moves a dead letter in well under a millisecond: give it enough to be stopped
    total = 400 if durable_url.startswith("sqlite") else 60
    asyncio.run(_dead_letter(durable_url, name, total, sessions=False, lock_duration=120))
    env = {**os.environ, "QUEUE_RUNTIME_URL": durable_url}
    argv = [*entry_point(), "dlq", "redrive", name, "--batch-size", "1", "--timeout", "60"]
    seen: list[str] = []

    async def watch() -> tuple[int | None, bytes, bytes, list[str], list[str]]:
        async with qr.create_client(durable_url) as client:
            # one dead letter held: however fast it goes, the redrive cannot end before the
            # signal, as it waits for that one, which is given back only after the signal
            [held] = await client.receive_messages(
                qr.QueueName(name).dead_letter, max_messages=1, timeout=30
            )
            process = await asyncio.create_subprocess_exec(
                *argv, "--json", env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE
            )
            deadline = time.monotonic() + 60
            while not seen and time.monotonic() < deadline:
                for message in await client.receive_messages(name, timeout=0):
                    seen.append(message.message_id)
                    await client.complete_message(message)
            process.send_signal(signal.SIGINT)
            await client.abandon_message(held)
            out, err = await asyncio.wait_for(process.communicate(), 90)
            back = await _drain(client, name)
            left = await _drain(client, qr.QueueName(name).dead_letter)
            return process.returncode, out, err, back, left

    returncode, out, err, back, left = asyncio.run(watch())
    assert returncode == 130, err
    report = json.loads(out)
    assert report["interrupted"] is True
    everything = [original_id(i) for i in seen + back + left]
    assert sorted(everything) == sorted(f"id-{i}" for i in range(total))  # none lost, none twice
    assert sorted(seen + back) == sorted(report["message_ids"])  # the ids the queue held
    assert left, "the redrive should have been interrupted before the end"


async def _drain(client: qr.QueueClient, queue: str) -> list[str]:
    ids: list[str] = []
    while got := await client.receive_messages(queue, timeout=0.5):
        for message in got:
            ids.append(message.message_id)
            await client.complete_message(message)
    return ids


def test_ingress_github_command_enqueues_signed_events(sqs_url: str, name: str) -> None:
    pytest.importorskip("uvicorn")
    import socket
    import uuid

    import httpx

    from queue_runtime.ingress import sign

    asyncio.run(_create(sqs_url, name))
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = {**os.environ, "QUEUE_RUNTIME_URL": sqs_url, "GITHUB_WEBHOOK_SECRET": "s3cret"}
    argv = [*entry_point(), "ingress", "github", "--queue", name, "--port", str(port)]
    no_secret = {k: v for k, v in env.items() if k != "GITHUB_WEBHOOK_SECRET"}
    refused = subprocess.run(argv, env=no_secret, capture_output=True, text=True, timeout=60)
    assert refused.returncode == 2 and "GITHUB_WEBHOOK_SECRET" in refused.stderr
    server = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"{base}/healthz").status_code == 200:
                    break
            except httpx.TransportError:
                if time.monotonic() > deadline or server.poll() is not None:
                    raise
                time.sleep(0.05)
        body = json.dumps(
            {"number": 5, "pull_request": {"number": 5}, "repository": {"full_name": "octo/hello"}}
        ).encode()
        delivery = str(uuid.uuid4())
        headers = {
            "X-GitHub-Event": "pull_request",
            "X-GitHub-Delivery": delivery,
            "X-Hub-Signature-256": sign("s3cret", body),
        }
        assert httpx.post(f"{base}/webhook", content=body, headers=headers).status_code == 202
        headers["X-Hub-Signature-256"] = sign("wrong", body)
        assert httpx.post(f"{base}/webhook", content=body, headers=headers).status_code == 401
    finally:
        server.send_signal(signal.SIGINT)
        _, err = server.communicate(timeout=30)
    assert server.returncode == 0, err
    got = asyncio.run(_receive_session(sqs_url, name))
    assert [(m.message_id, m.session_id) for m in got] == [(delivery, "octo/hello#5")]


async def _create(url: str, queue: str) -> None:
    async with qr.create_client(url) as client:
        await client.create_queue(queue, requires_session=True)


async def _receive_session(url: str, queue: str) -> list[qr.ReceivedMessage]:
    async with qr.create_client(url) as client:
        session = await client.accept_session(queue, timeout=2)
        assert session is not None
        async with session:
            got = await session.receive_messages(timeout=2)
            for message in got:
                await session.complete_message(message)
            return got
