"""``queue-runtime send|peek|receive``."""

from __future__ import annotations

import sys
from collections.abc import Awaitable, Callable, Iterator

import click

from queue_runtime import BatchSendError, Message, QueueClient, QueueName, ReceivedMessage

from ._common import Settings, open_client, pass_settings, run
from ._operations import peek as peek_messages
from ._operations import receive as receive_messages
from ._render import Tracker, echo_json, message_record, print_messages, say

__all__ = ["COMMANDS", "json_option", "parse_attributes", "show_messages"]

json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")


def parse_attributes(values: tuple[str, ...]) -> dict[str, str]:
    attributes: dict[str, str] = {}
    for value in values:
        key, sep, text = value.partition("=")
        if not sep or not key:
            raise click.BadParameter(f"{value!r} is not KEY=VALUE", param_hint="--attr")
        attributes[key] = text
    return attributes


def _lines(source: bytes | None, batch_size: int) -> Iterator[list[bytes]]:
    """Non-empty lines of ``source`` (else stdin, read as it comes) in batches."""
    lines = source.splitlines() if source is not None else sys.stdin.buffer
    batch: list[bytes] = []
    for line in lines:
        body = line.rstrip(b"\r\n")
        if not body:
            continue
        batch.append(body)
        if len(batch) == batch_size:
            yield batch
            batch = []
    if batch:
        yield batch


@click.command()
@click.argument("name")
@click.argument("body", required=False)
@click.option("--session", "session_id", metavar="ID", help="Session id of the message(s).")
@click.option("--attr", "attrs", metavar="K=V", multiple=True, help="An attribute (repeatable).")
@click.option("--correlation-id", metavar="ID", help="Correlation id of the message(s).")
@click.option("--message-id", metavar="ID", help="Message id (one message only).")
@click.option("--lines", is_flag=True, help="Each non-empty input line is one message.")
@click.option(
    "--batch-size",
    type=click.IntRange(1, 1000),
    default=100,
    show_default=True,
    help="Messages per send call with --lines.",
)
@json_option
@pass_settings
def send(
    settings: Settings,
    name: str,
    body: str | None,
    session_id: str | None,
    attrs: tuple[str, ...],
    correlation_id: str | None,
    message_id: str | None,
    lines: bool,
    batch_size: int,
    as_json: bool,
) -> None:
    """Send BODY (or stdin when BODY is '-' or absent) to queue NAME."""
    attributes = parse_attributes(attrs)
    if lines and message_id is not None:
        raise click.UsageError("--message-id names one message; it cannot go with --lines")
    source = None if body is None or body == "-" else body.encode()
    if source is None and sys.stdin.isatty():
        raise click.UsageError("give BODY, or pipe the body (or lines) into stdin")
    queue = QueueName(name)

    def message(data: bytes, identity: str | None = None) -> Message:
        return Message(
            data,
            session_id=session_id,
            attributes=attributes,
            correlation_id=correlation_id,
            message_id=identity,
        )

    async def main() -> list[str]:
        ids: list[str] = []
        async with open_client(settings, queue=name) as client:
            if not lines:
                data = sys.stdin.buffer.read() if source is None else source
                ids.append(await client.send_message(queue, message(data, message_id)))
                return ids
            with Tracker(f"sending to {name}") as tracker:
                for batch in _lines(source, batch_size):
                    try:
                        ids.extend(await client.send_messages(queue, [message(b) for b in batch]))
                    except BatchSendError as partial:
                        click.echo(
                            f"{len(ids) + len(partial.sent)} messages were sent before the failure",
                            err=True,
                        )
                        raise
                    tracker.advance(len(batch))
        return ids

    ids = run(main())
    if as_json:
        echo_json({"queue": name, "sent": len(ids), "message_ids": ids})
    elif len(ids) == 1:
        say(f"sent message {ids[0]} to {name}")
    else:
        say(f"sent {len(ids)} messages to {name}")


@click.command()
@click.argument("name")
@click.option("--dead-letter", is_flag=True, help="Peek at the queue's dead letters.")
@click.option("-n", "count", type=click.IntRange(min=1), default=10, show_default=True)
@click.option("--from-sequence", type=click.IntRange(min=0), help="First sequence number.")
@json_option
@pass_settings
def peek(
    settings: Settings,
    name: str,
    dead_letter: bool,
    count: int,
    from_sequence: int | None,
    as_json: bool,
) -> None:
    """Show up to N messages of NAME in order without locking them or counting a delivery."""
    queue = QueueName(name)
    target = queue.dead_letter if dead_letter else queue
    show_messages(
        settings,
        queue,
        lambda client: peek_messages(client, target, count, from_sequence=from_sequence),
        dead_letter=dead_letter,
        as_json=as_json,
    )


def show_messages(
    settings: Settings,
    queue: QueueName,
    fetch: Callable[[QueueClient], Awaitable[list[ReceivedMessage]]],
    *,
    dead_letter: bool,
    as_json: bool,
) -> None:
    """Print what ``fetch`` finds on ``queue`` (or its dead letters) as a table, or JSON."""

    async def main() -> list[dict[str, object]] | None:
        async with open_client(settings, queue=queue) as client:
            found = await fetch(client)
            if as_json:
                return [message_record(m) for m in found]
            print_messages(found, dead_letter=dead_letter)
            return None

    records = run(main())
    if records is not None:
        echo_json(records)


@click.command()
@click.argument("name")
@click.option("-n", "count", type=click.IntRange(min=1), default=1, show_default=True)
@click.option("--session", "session_id", metavar="ID", help="Receive from this session.")
@click.option("--dead-letter", is_flag=True, help="Receive from the queue's dead letters.")
@click.option("--complete", is_flag=True, help="Complete what was received (remove it).")
@click.option("--abandon", is_flag=True, help="Abandon what was received (deliver it again).")
@click.option(
    "--timeout",
    type=click.FloatRange(min=0),
    default=2.0,
    show_default=True,
    help="Seconds to wait for a message: the first, and each further page of up to 10.",
)
@json_option
@pass_settings
def receive(
    settings: Settings,
    name: str,
    count: int,
    session_id: str | None,
    dead_letter: bool,
    complete: bool,
    abandon: bool,
    timeout: float,
    as_json: bool,
) -> None:
    """Receive up to N messages of NAME (on a session queue: session ID, or the next one).

    Asks page after page until N, or until a page finds nothing within --timeout.

    Without --complete or --abandon the messages stay locked until their lock lapses (on a
    session queue: until the session is released when the command ends), then come back.
    """
    if complete and abandon:
        raise click.UsageError("--complete and --abandon exclude each other")
    queue = QueueName(name)
    target = queue.dead_letter if dead_letter else queue

    async def main() -> list[dict[str, object]]:
        async with open_client(settings, queue=name) as client:
            got = await receive_messages(
                client, target, count, session_id=session_id, timeout=timeout, complete=complete
            )
            settler = got.session or client
            try:
                if abandon and got.messages:
                    await settler.abandon_messages(got.messages)
            finally:
                if got.session is not None:
                    await got.session.close()
            if not as_json:
                print_messages(got.messages, dead_letter=dead_letter)
                if got.messages:
                    say(_outcome(complete, abandon, in_session=got.session is not None))
            return [message_record(m) for m in got.messages]

    records = run(main())
    if as_json:
        echo_json(records)


def _outcome(complete: bool, abandon: bool, *, in_session: bool) -> str:
    if complete:
        return "completed"
    if abandon:
        return "abandoned"
    if in_session:
        return "not settled: released with the session, they are available again"
    return "not settled: they stay locked until the lock lapses, then come back"


COMMANDS = [send, peek, receive]
