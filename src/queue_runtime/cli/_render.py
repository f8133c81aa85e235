"""How the commands print: JSON records for scripts, rich tables and progress for people."""

from __future__ import annotations

import base64
import json
import sys
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import click
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn
from rich.table import Table
from rich.text import Text

from queue_runtime import ReceivedMessage

__all__ = [
    "echo_json",
    "message_record",
    "print_messages",
    "print_fields",
    "say",
    "Tracker",
]

_BODY_PREVIEW = 60


def message_record(message: ReceivedMessage) -> dict[str, Any]:
    """One message as JSON: the body as text when it is UTF-8, else base64 (``body_encoding``)."""
    try:
        body, encoding = message.body.decode("utf-8"), "utf-8"
    except UnicodeDecodeError:
        body, encoding = base64.b64encode(message.body).decode("ascii"), "base64"
    return {
        "message_id": message.message_id,
        "body": body,
        "body_encoding": encoding,
        "attributes": dict(message.attributes),
        "session_id": message.session_id,
        "correlation_id": message.correlation_id,
        "delivery_count": message.delivery_count,
        "sequence_number": message.sequence_number,
        "enqueued_time": message.enqueued_at.isoformat(),
        "dead_letter_reason": message.dead_letter_reason,
        "dead_letter_description": message.dead_letter_description,
    }


def echo_json(value: object) -> None:
    click.echo(json.dumps(value, ensure_ascii=False))


def say(text: str) -> None:
    """A line for people on stdout (never markup: names and bodies are printed as they are)."""
    click.echo(text)


def _preview(message: ReceivedMessage) -> str:
    record = message_record(message)
    body: str = record["body"]
    if record["body_encoding"] == "base64":
        body = f"base64:{body}"
    body = body.replace("\n", "\\n")
    return body if len(body) <= _BODY_PREVIEW else body[: _BODY_PREVIEW - 1] + "…"


def _attributes(attributes: Mapping[str, str]) -> str:
    return ", ".join(f"{key}={value}" for key, value in attributes.items())


def print_messages(
    messages: Sequence[ReceivedMessage], *, dead_letter: bool = False, title: str | None = None
) -> None:
    """A table of messages (with dead-letter reason and description when ``dead_letter``)."""
    if not messages:
        say("no messages")
        return
    table = Table(title=title, title_justify="left", expand=False)
    columns = ["message id", "session", "deliveries", "enqueued", "body", "attributes"]
    if dead_letter:
        columns += ["reason", "description"]
    for column in columns:
        table.add_column(column, overflow="fold")
    for message in messages:
        cells: list[str] = [
            message.message_id,
            message.session_id or "",
            str(message.delivery_count),
            message.enqueued_at.strftime("%Y-%m-%d %H:%M:%S"),
            _preview(message),
            _attributes(message.attributes),
        ]
        if dead_letter:
            cells += [message.dead_letter_reason or "", message.dead_letter_description or ""]
        table.add_row(*(Text(cell) for cell in cells))
    _stdout().print(table)


def print_fields(rows: Iterable[tuple[str, object]]) -> None:
    table = Table(show_header=False, box=None, pad_edge=False)
    table.add_column(style="bold")
    table.add_column()
    for key, value in rows:
        table.add_row(Text(key), Text(str(value)))
    _stdout().print(table)


class Tracker:
    """A progress bar on stderr for long sends and redrives; silent where stderr is no
    terminal (scripts and tests read stdout only)."""

    def __init__(self, description: str, total: int | None = None) -> None:
        console = Console(stderr=True)
        self._progress = Progress(
            SpinnerColumn(),
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            console=console,
            transient=True,
            disable=not console.is_terminal,
        )
        self._task = self._progress.add_task(description, total=total)

    def __enter__(self) -> Tracker:
        self._progress.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._progress.stop()

    def advance(self, count: int) -> None:
        self._progress.advance(self._task, count)


def _stdout() -> Console:
    return Console(file=sys.stdout, highlight=False, soft_wrap=False)
