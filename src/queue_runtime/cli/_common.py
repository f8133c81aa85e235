"""What every command shares: settings, the client, the event loop, and errors as exit codes.

Exit codes: 0 ok, 1 error (a typed queue-runtime error, printed as one line), 2 usage (bad
arguments, from click), 130 interrupted by SIGINT/SIGTERM before the work was done.
"""

from __future__ import annotations

import asyncio
import traceback
from collections.abc import AsyncIterator, Coroutine
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any, TypeVar

import click

from queue_runtime import QueueClient, QueueError, create_client

__all__ = [
    "INTERRUPTED",
    "ErrorReportingGroup",
    "Settings",
    "open_client",
    "pass_settings",
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


@asynccontextmanager
async def open_client(settings: Settings) -> AsyncIterator[QueueClient]:
    """An open client for ``--url`` (or ``$QUEUE_RUNTIME_URL``), closed on the way out."""
    client = create_client(settings.url)
    async with client:
        yield client
