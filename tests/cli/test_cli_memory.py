"""The CLI in-process (click's runner) on a named in-memory broker: multi-step flows."""

from __future__ import annotations

import base64
import json
import os
import signal
from collections.abc import Callable
from typing import Any

import pytest

import queue_runtime as qr
from queue_runtime.cli._operations import original_id

Invoke = Callable[..., Any]


async def _dead_letter_all(client: qr.QueueClient, queue: str, reason: str = "bad") -> int:
    """Dead-letter everything in ``queue`` (sessions or not); returns how many."""
    count = 0
    while True:
        try:
            got = await client.receive_messages(queue, timeout=0)
            settle: Any = client
        except qr.ValidationError:
            settle = await client.accept_session(queue, timeout=0)
            if settle is None:
                return count
            got = await settle.receive_messages(timeout=0)
        if not got:
            if settle is not client:
                await settle.close()
            return count
        for message in got:
            await settle.dead_letter_message(message, reason=reason, description=f"{reason}!")
            count += 1
        if settle is not client:
            await settle.close()


def test_queues_create_stats_delete(invoke: Invoke, name: str) -> None:
    created = invoke("queues", "create", name, "--sessions", "--max-delivery-count", "3")
    assert created.exit_code == 0, created.output
    assert invoke("send", name, "hi", "--session", "s").exit_code == 0
    stats = invoke("queues", "stats", name, "--json")
    assert stats.exit_code == 0, stats.output
    counts = json.loads(stats.stdout)
    assert counts["active"] == 1 and counts["dead_letter"] == 0 and counts["queue"] == name
    human = invoke("queues", "stats", name)
    assert "active" in human.stdout
    # same settings again: nothing changes; other settings: a typed error
    assert (
        invoke("queues", "create", name, "--sessions", "--max-delivery-count", "3").exit_code == 0
    )
    other = invoke("queues", "create", name)
    assert other.exit_code == 1 and "QueueAlreadyExists" in other.stderr
    assert invoke("queues", "delete", name).exit_code == 0
    gone = invoke("queues", "stats", name)
    assert gone.exit_code == 1
    assert gone.stderr.startswith("error: QueueNotFound:") and "Traceback" not in gone.stderr


def test_send_and_receive_json_carry_every_field(invoke: Invoke, name: str) -> None:
    invoke("queues", "create", name)
    sent = invoke(
        "send", name, "héllo", "--attr", "kind=test", "--attr", "n=1=2",
        "--correlation-id", "corr-1", "--message-id", "m-1", "--json",
    )  # fmt: skip
    assert sent.exit_code == 0, sent.output
    assert json.loads(sent.stdout)["message_ids"] == ["m-1"]
    got = invoke("receive", name, "--json", "--complete")
    assert got.exit_code == 0, got.output
    [record] = json.loads(got.stdout)
    assert record["message_id"] == "m-1"
    assert record["body"] == "héllo" and record["body_encoding"] == "utf-8"
    assert record["attributes"] == {"kind": "test", "n": "1=2"}
    assert record["correlation_id"] == "corr-1" and record["session_id"] is None
    assert record["delivery_count"] == 1 and record["enqueued_time"]
    assert record["dead_letter_reason"] is None
    assert json.loads(invoke("receive", name, "--json", "--timeout", "0").stdout) == []


def test_binary_body_from_stdin_is_base64_in_json(invoke: Invoke, name: str) -> None:
    invoke("queues", "create", name)
    assert invoke("send", name, input=b"\xff\x00raw").exit_code == 0
    [record] = json.loads(invoke("receive", name, "--json", "--abandon").stdout)
    assert record["body_encoding"] == "base64"
    assert base64.b64decode(record["body"]) == b"\xff\x00raw"
    # abandoned: it comes back, counted
    [again] = json.loads(invoke("receive", name, "--json").stdout)
    assert again["delivery_count"] == 2
    human = invoke("receive", name, "--timeout", "0")
    assert human.exit_code == 0 and "no messages" in human.stdout


def test_send_lines_in_batches_and_receive_many(invoke: Invoke, name: str) -> None:
    invoke("queues", "create", name)
    lines = "".join(f"line {i}\n" for i in range(25)) + "\n\n"
    sent = invoke("send", name, "--lines", "--batch-size", "7", "--json", input=lines)
    assert sent.exit_code == 0, sent.output
    assert json.loads(sent.stdout)["sent"] == 25
    got = json.loads(invoke("receive", name, "-n", "30", "--json", "--complete").stdout)
    assert [r["body"] for r in got] == [f"line {i}" for i in range(25)]


def test_receive_on_a_session_queue_takes_the_named_or_next_session(
    invoke: Invoke, name: str
) -> None:
    invoke("queues", "create", name, "--sessions")
    invoke("send", name, "a1", "--session", "a")
    invoke("send", name, "b1", "--session", "b")
    invoke("send", name, "b2", "--session", "b")
    named = json.loads(invoke("receive", name, "--session", "b", "-n", "5", "--json").stdout)
    assert [r["body"] for r in named] == ["b1", "b2"]  # released unsettled on exit
    nxt = json.loads(invoke("receive", name, "-n", "5", "--json", "--complete").stdout)
    assert len({r["session_id"] for r in nxt}) == 1 and nxt
    missing = invoke("send", name, "no session")
    assert missing.exit_code == 1 and missing.stderr.startswith("error: ValidationError:")


def test_redrive_restores_body_attributes_session_and_ids(
    invoke: Invoke, on_broker: Callable[..., Any], name: str
) -> None:
    invoke("queues", "create", name, "--sessions")
    for i in range(3):
        invoke(
            "send", name, f"body-{i}", "--session", "pr-1", "--attr", f"i={i}",
            "--correlation-id", f"c{i}", "--message-id", f"id-{i}",
        )  # fmt: skip
    invoke("send", name, "other", "--session", "pr-2", "--message-id", "id-x")
    assert on_broker(lambda c: _dead_letter_all(c, name)) == 4

    only = invoke("dlq", "redrive", name, "--session", "pr-1", "--json", "--timeout", "0")
    assert only.exit_code == 0, only.output
    report = json.loads(only.stdout)
    assert report["redriven"] == 3 and report["interrupted"] is False
    # processed again, in order, with everything intact
    got = json.loads(invoke("receive", name, "--session", "pr-1", "-n", "3", "--json").stdout)
    assert report["message_ids"] == [r["message_id"] for r in got]  # the ids the queue holds
    # a redriven copy carries a redrive id derived from the original (specs/cli.md)
    assert [
        (original_id(r["message_id"]), r["body"], r["attributes"], r["correlation_id"]) for r in got
    ] == [(f"id-{i}", f"body-{i}", {"i": str(i)}, f"c{i}") for i in range(3)]
    assert all(r["message_id"] != original_id(r["message_id"]) for r in got)
    assert all(r["session_id"] == "pr-1" and r["delivery_count"] == 1 for r in got)
    # the other session's dead letter is still there, given back
    stats = json.loads(invoke("queues", "stats", name, "--json").stdout)
    assert stats["dead_letter"] == 1
    rest = invoke("dlq", "redrive", name, "--timeout", "0")
    assert rest.exit_code == 0 and "redrove 1 dead letters" in rest.stdout


def test_redrive_max_and_purge(invoke: Invoke, on_broker: Callable[..., Any], name: str) -> None:
    invoke("queues", "create", name)
    invoke("send", name, "--lines", input="".join(f"m{i}\n" for i in range(12)))
    on_broker(lambda c: _dead_letter_all(c, name))
    some = invoke("dlq", "redrive", name, "--max", "5", "--batch-size", "2", "--json")
    assert json.loads(some.stdout)["redriven"] == 5
    refused = invoke("dlq", "purge", name)
    assert refused.exit_code == 2 and "--yes" in refused.stderr
    purged = invoke("dlq", "purge", name, "--yes", "--timeout", "0", "--json")
    assert purged.exit_code == 0, purged.output
    assert json.loads(purged.stdout)["purged"] == 7
    stats = json.loads(invoke("queues", "stats", name, "--json").stdout)
    assert stats["dead_letter"] == 0 and stats["active"] == 5


def test_interrupted_redrive_loses_and_duplicates_nothing(
    invoke: Invoke,
    on_broker: Callable[..., Any],
    name: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """SIGINT arriving in the middle of a send is honoured only after that batch completed."""
    invoke("queues", "create", name)
    invoke("send", name, "--lines", input="".join(f"m{i}\n" for i in range(9)))
    on_broker(lambda c: _dead_letter_all(c, name))
    from queue_runtime.adapters.memory import InMemoryQueueClient

    real_send = InMemoryQueueClient.send_messages
    calls = 0

    async def send_then_interrupt(self: Any, queue: Any, messages: Any) -> Any:
        nonlocal calls
        calls += 1
        ids = await real_send(self, queue, messages)
        if calls == 2:
            os.kill(os.getpid(), signal.SIGINT)  # lands between this send and its complete
        return ids

    monkeypatch.setattr(InMemoryQueueClient, "send_messages", send_then_interrupt)
    stopped = invoke("dlq", "redrive", name, "--batch-size", "2", "--json")
    monkeypatch.undo()
    assert stopped.exit_code == 130, stopped.output
    report = json.loads(stopped.stdout)
    assert report["interrupted"] is True and report["redriven"] == 4
    stats = json.loads(invoke("queues", "stats", name, "--json").stdout)
    assert (stats["active"], stats["dead_letter"], stats["locked"]) == (4, 5, 0)


def test_a_redrive_that_finished_exits_0_though_a_signal_came_in_its_last_wait(
    invoke: Invoke,
    on_broker: Callable[..., Any],
    name: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The dead-letter queue answered empty: the work is done, whatever came meanwhile."""
    invoke("queues", "create", name)
    invoke("send", name, "--lines", input="m0\nm1\nm2\n")
    on_broker(lambda c: _dead_letter_all(c, name))
    from queue_runtime.adapters.memory import InMemoryQueueClient

    real_receive = InMemoryQueueClient.receive_messages

    async def receive_then_interrupt(self: Any, queue: Any, **options: Any) -> Any:
        got = await real_receive(self, queue, **options)
        if not got:
            os.kill(os.getpid(), signal.SIGINT)  # lands while the last, empty wait runs
        return got

    monkeypatch.setattr(InMemoryQueueClient, "receive_messages", receive_then_interrupt)
    done = invoke("dlq", "redrive", name, "--json")
    monkeypatch.undo()
    assert done.exit_code == 0, done.output
    report = json.loads(done.stdout)
    assert report["interrupted"] is False and report["redriven"] == 3
    got = json.loads(invoke("receive", name, "-n", "3", "--json", "--complete").stdout)
    assert sorted(report["message_ids"]) == sorted(r["message_id"] for r in got)
    assert all(i != original_id(i) for i in report["message_ids"])


def test_peek_and_dlq_list_show_without_delivering(
    invoke: Invoke, on_broker: Callable[..., Any], name: str
) -> None:
    invoke("queues", "create", name)
    invoke("send", name, "--lines", input="a\nb\nc\n")
    peeked = json.loads(invoke("peek", name, "-n", "2", "--json").stdout)
    assert [r["body"] for r in peeked] == ["a", "b"]
    assert json.loads(invoke("peek", name, "--json").stdout)[0]["delivery_count"] in (0, 1)
    on_broker(lambda c: _dead_letter_all(c, name, reason="poison"))
    listed = invoke("dlq", "list", name, "--json")
    assert listed.exit_code == 0, listed.output
    records = json.loads(listed.stdout)
    assert [r["body"] for r in records] == ["a", "b", "c"]
    assert {(r["dead_letter_reason"], r["dead_letter_description"]) for r in records} == {
        ("poison", "poison!")
    }
    human = invoke("dlq", "list", name)
    assert "poison" in human.stdout and "reason" in human.stdout
    assert json.loads(invoke("peek", name, "--dead-letter", "--json").stdout) == records


def test_usage_errors_exit_2_and_debug_shows_the_traceback(invoke: Invoke, name: str) -> None:
    bad = invoke("send", name, "x", "--attr", "novalue")
    assert bad.exit_code == 2 and "KEY=VALUE" in bad.stderr
    both = invoke("receive", name, "--complete", "--abandon")
    assert both.exit_code == 2
    assert invoke("queues", "create", name, "--lock-duration", "-1").exit_code == 2
    invalid = invoke("queues", "create", "bad name!")
    assert invalid.exit_code == 1 and invalid.stderr.count("\n") == 1
    assert invalid.stderr.startswith("error: ValidationError:")
    from click.testing import CliRunner

    from queue_runtime.cli._app import cli

    debug = CliRunner().invoke(cli, ["--url", "memory://x", "--debug", "queues", "delete", name])
    assert debug.exit_code == 1 and "Traceback" in debug.stderr and "QueueNotFound" in debug.stderr


def test_without_a_url_every_command_but_emulator_is_refused(name: str) -> None:
    from click.testing import CliRunner

    from queue_runtime.cli._app import cli

    runner = CliRunner(env={"QUEUE_RUNTIME_URL": None, "GITHUB_WEBHOOK_SECRET": "s"})
    for args in (
        ["queues", "create", name],
        ["queues", "delete", name],
        ["queues", "stats", name],
        ["send", name, "x"],
        ["peek", name],
        ["receive", name],
        ["dlq", "list", name],
        ["dlq", "redrive", name],
        ["dlq", "purge", name, "--yes"],
        ["worker", "json:loads", "--queue", name],
        ["ingress", "github", "--queue", name],
        ["ingress", "webhook", "--queue", name, "--secret-env", "GITHUB_WEBHOOK_SECRET"],
    ):
        refused = runner.invoke(cli, args)
        assert refused.exit_code == 1, (args, refused.output)
        assert refused.stderr.startswith("error: ConfigurationError: no queue URL"), args
        assert "--url" in refused.stderr and "$QUEUE_RUNTIME_URL" in refused.stderr
        assert refused.stderr.count("\n") == 1 and refused.stdout == "", args
    # what --url takes, every scheme by name
    text = " ".join(runner.invoke(cli, ["--help"]).stdout.split())
    for scheme in ("memory://", "memory://NAME", "sqlite:///", "postgresql://", "sqs://"):
        assert scheme in text, scheme
    assert "azure-servicebus://" in text.replace("- ", "-")


def test_a_missing_queue_says_how_to_create_it(invoke: Invoke, name: str) -> None:
    for args in (("send", name, "x"), ("receive", name), ("dlq", "list", name)):
        missing = invoke(*args)
        assert missing.exit_code == 1 and missing.stderr.count("\n") == 1, missing.output
        assert missing.stderr.startswith("error: QueueNotFound:")
        assert f"create it with: queue-runtime queues create {name}" in missing.stderr


def test_send_with_a_session_to_a_queue_without_sessions_is_refused(
    invoke: Invoke, name: str
) -> None:
    invoke("queues", "create", name)
    for args in (("x",), ("--lines",)):
        refused = invoke("send", name, *args, "--session", "s", input="a\nb\n")
        assert refused.exit_code == 1 and refused.stderr.count("\n") == 1, refused.output
        assert refused.stderr.startswith("error: ValidationError:")
        assert "has no sessions" in refused.stderr
    assert json.loads(invoke("receive", name, "--json", "--timeout", "0").stdout) == []
    bad = invoke("send", name, "x", "--session", "")
    assert bad.exit_code == 1 and "invalid session id" in bad.stderr
    # a session queue takes it
    other = f"{name}-s"
    invoke("queues", "create", other, "--sessions")
    assert invoke("send", other, "x", "--session", "s").exit_code == 0


def test_worker_and_emulator_need_their_parts(invoke: Invoke, name: str) -> None:
    assert invoke("worker", "nocolon", "--queue", name).exit_code == 2
    missing = invoke("worker", "no_such_module_xyz:handle", "--queue", name)
    assert missing.exit_code == 1 and "no_such_module_xyz" in missing.stderr
    if not hasattr(qr, "Processor"):
        result = invoke("worker", "json:loads", "--queue", name)
        assert result.exit_code == 1 and "Processor" in result.stderr
    try:
        import queue_runtime.testing.servicebus_emulator  # noqa: F401
    except ImportError:
        result = invoke("emulator", "servicebus", "--port", "0")
        assert result.exit_code == 1 and "emulator" in result.stderr


def test_a_redrive_id_is_stable_per_dead_letter_and_never_the_original() -> None:
    from queue_runtime.cli._operations import redrive_id

    def dead(message_id: str, enqueued: float) -> qr.ReceivedMessage:
        return qr.ReceivedMessage(qr.Message(b"x", message_id=message_id), 1, enqueued, None)

    first = redrive_id(dead("order-7", 100.0))
    assert first.startswith("order-7~r") and first == redrive_id(dead("order-7", 100.0))
    assert original_id(first) == "order-7"
    # redriven again after it died again: a new suffix in place of the old one
    second = redrive_id(dead(first, 200.0))
    assert original_id(second) == "order-7" and second not in (first, "order-7")
    assert len(redrive_id(dead("x" * 128, 1.0))) <= 128
    qr.MessageId(redrive_id(dead("x" * 128, 1.0)))  # a valid message id
