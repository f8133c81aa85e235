"""``queue-runtime dlq list|redrive|purge``: dead letters, their reasons, and the way back."""

from __future__ import annotations

import click

from queue_runtime import QueueName

from ._common import INTERRUPTED, Settings, open_client, pass_settings, run
from ._messages import json_option, show_messages
from ._operations import RedriveReport, list_dead_letters, purge, redrive, stop_on_signals
from ._render import Tracker, echo_json, say

__all__ = ["COMMANDS"]

_TIMEOUT = click.option(
    "--timeout",
    type=click.FloatRange(min=0),
    default=1.0,
    show_default=True,
    help="Seconds to wait for more dead letters before stopping.",
)


@click.group()
def dlq() -> None:
    """Look at, redrive and purge a queue's dead letters."""


@dlq.command("list")
@click.argument("name")
@click.option("-n", "count", type=click.IntRange(min=1), default=100, show_default=True)
@_TIMEOUT
@json_option
@pass_settings
def list_(settings: Settings, name: str, count: int, timeout: float, as_json: bool) -> None:
    """Show up to N dead letters of NAME with their reasons and descriptions.

    Peeked where the adapter can peek. Where it cannot (SQS), they are received and at once
    released back: each stays a dead letter, but this counts a receive on it (its delivery
    count grows) and, until released, hides it from other readers.
    """
    queue = QueueName(name)
    show_messages(
        settings,
        queue,
        lambda client: list_dead_letters(client, queue, count, timeout=timeout),
        dead_letter=True,
        as_json=as_json,
    )


@dlq.command("redrive")
@click.argument("name")
@click.option("--max", "limit", type=click.IntRange(min=1), help="Redrive at most N messages.")
@click.option("--session", "session_id", metavar="ID", help="Only this session's dead letters.")
@click.option(
    "--batch-size",
    type=click.IntRange(1, 10),
    default=10,
    show_default=True,
    help="Messages sent and then completed together.",
)
@_TIMEOUT
@json_option
@pass_settings
def redrive_(
    settings: Settings,
    name: str,
    limit: int | None,
    session_id: str | None,
    batch_size: int,
    timeout: float,
    as_json: bool,
) -> None:
    """Send dead letters back to NAME, then remove them: body, attributes, session and
    correlation id intact, the message id with a redrive suffix (--json lists the new ids).

    SIGINT/SIGTERM stop it between batches, never between a send and its complete: nothing
    is lost or sent twice (exit 130).
    """
    queue = QueueName(name)

    async def main() -> RedriveReport:
        async with open_client(settings, queue=name) as client, stop_on_signals() as stop:
            with Tracker(f"redriving {name}", total=limit) as tracker:
                return await redrive(
                    client,
                    queue,
                    limit=limit,
                    session_id=session_id,
                    batch_size=batch_size,
                    timeout=timeout,
                    stop=stop,
                    progress=tracker.advance,
                )

    report = run(main())
    if as_json:
        echo_json(
            {
                "queue": name,
                "redriven": len(report.moved),
                "message_ids": report.moved,
                "doubled": report.doubled,
                "interrupted": report.interrupted,
            }
        )
    else:
        say(f"redrove {len(report.moved)} dead letters to {name}")
        if report.interrupted:
            say("interrupted: the rest stay in the dead-letter queue")
    if report.doubled:
        click.echo(
            f"error: {len(report.doubled)} messages were sent back but stayed dead-lettered "
            f"(lock lost), dead letters: {', '.join(report.doubled)}",
            err=True,
        )
        raise SystemExit(1)
    if report.interrupted:
        raise SystemExit(INTERRUPTED)


@dlq.command("purge")
@click.argument("name")
@click.option("--yes", is_flag=True, help="Yes, delete every dead letter of NAME.")
@_TIMEOUT
@json_option
@pass_settings
def purge_(settings: Settings, name: str, yes: bool, timeout: float, as_json: bool) -> None:
    """Delete every dead letter of NAME for good (asks for --yes)."""
    if not yes:
        raise click.UsageError(f"purging deletes the dead letters of {name} for good: add --yes")
    queue = QueueName(name)

    async def main() -> tuple[int, bool]:
        async with open_client(settings, queue=name) as client, stop_on_signals() as stop:
            with Tracker(f"purging {name}") as tracker:
                count = await purge(
                    client, queue, timeout=timeout, stop=stop, progress=tracker.advance
                )
            return count, stop.requested()

    count, interrupted = run(main())
    if as_json:
        echo_json({"queue": name, "purged": count, "interrupted": interrupted})
    else:
        say(f"purged {count} dead letters of {name}")
    if interrupted:
        raise SystemExit(INTERRUPTED)


COMMANDS = [dlq]
