"""The ``queue-runtime`` command group: its global options and its commands."""

from __future__ import annotations

import click

from queue_runtime import __version__

from . import _dlq, _extras, _messages, _queues
from ._common import ErrorReportingGroup, Settings

__all__ = ["cli"]


@click.group(cls=ErrorReportingGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--url",
    envvar="QUEUE_RUNTIME_URL",
    metavar="URL",
    help="Queue URL, needed by every command but emulator (default $QUEUE_RUNTIME_URL): "
    "sqlite:///PATH, postgresql://USER@HOST/DB, sqs://?region=REGION, "
    "azure-servicebus://[NAMESPACE], memory:// or memory://NAME (this process only).",
)
@click.option("--debug", is_flag=True, help="Show the traceback of an error.")
@click.version_option(__version__, prog_name="queue-runtime")
@click.pass_context
def cli(ctx: click.Context, url: str | None, debug: bool) -> None:
    """Operate queues, dead letters, workers and the webhook ingress of queue-runtime."""
    ctx.obj = Settings(url=url or None, debug=debug)


for _module in (_queues, _messages, _dlq, _extras):
    for _command in _module.COMMANDS:
        cli.add_command(_command)
