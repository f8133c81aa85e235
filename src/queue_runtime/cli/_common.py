"""What every command shares: settings, the client, the event loop, and errors as exit codes.

Exit codes: 0 ok, 1 error (a typed queue-runtime error, printed as one line), 2 usage (bad
arguments, from click), 130 interrupted by SIGINT/SIGTERM before the work was done.
"""

from __future__ import annotations

import asyncio
import shlex
import traceback
from collections.abc import AsyncIterator, Coroutine
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any, TypeVar

import click

from queue_runtime import (
    ConfigurationError,
    QueueClient,
    QueueError,
    QueueNotFound,
    create_client,
)
from queue_runtime.config import URL_ENV_VAR

__all__ = [
    "INTERRUPTED",
    "ErrorReportingGroup",
    "Settings",
    "open_client",
    "pass_settings",
    "queue_url",
    "run",
]

T = TypeVar("T")

#: Exit code of a command stopped by SIGINT/SIGTERM (the shell's 128 + SIGINT).
INTERRUPTED = 130


@dataclass(frozen=True, slots=True)
class Settings:
    """What the group's options say, handed to every command."""

    url: str | None
    debug: bool


pass_settings = click.make_pass_decorator(Settings)


class ErrorReportingGroup(click.Group):
    """A group whose commands print typed errors as one line and exit 1."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except (click.exceptions.ClickException, click.exceptions.Exit, click.exceptions.Abort):
            raise
        except Exception as exc:
            settings = ctx.find_object(Settings)
            if settings is not None and settings.debug:
                traceback.print_exc()
            name = (
                type(exc).__name__
                if isinstance(exc, QueueError)
                else f"internal {type(exc).__name__}"
            )
            click.echo(f"error: {name}: {exc}", err=True)
            ctx.exit(1)


def run(coroutine: Coroutine[Any, Any, T]) -> T:
    """Run one command's coroutine to the end on a fresh event loop."""
    return asyncio.run(coroutine)


def queue_url(settings: Settings) -> str:
    """``--url`` or ``$QUEUE_RUNTIME_URL``; neither is a `ConfigurationError`, never a
    throwaway in-memory broker that forgets everything when the command ends."""
    if settings.url is None:
        raise ConfigurationError(
            f"no queue URL: give --url URL or set ${URL_ENV_VAR} "
            "(e.g. sqlite:///path/queues.db, sqs://?region=..., azure-servicebus://...)"
        )
    return settings.url


@asynccontextmanager
async def open_client(
    settings: Settings, *, queue: str | None = None
) -> AsyncIterator[QueueClient]:
    """An open client for ``--url`` (or ``$QUEUE_RUNTIME_URL``), closed on the way out.

    A `QueueNotFound` from the command's work on ``queue`` says how to create it.
    """
    client = create_client(queue_url(settings))
    async with client:
        try:
            yield client
        except QueueNotFound as exc:
            if queue is None:
                raise
            raise QueueNotFound(
                f"{exc.message}; create it with: queue-runtime queues create {shlex.quote(queue)}"
                " [--sessions]"
            ) from exc
