"""The ``queue-runtime`` command: operate queues, dead letters, workers and the webhook ingress
from a terminal, on any adapter, through the public API only (extra ``[cli]``)."""

from __future__ import annotations

import sys

__all__ = ["main"]


def main(argv: list[str] | None = None) -> None:
    """Run the command (the console script and ``python -m queue_runtime``)."""
    try:
        from ._app import cli
    except ImportError as exc:  # click or rich missing: say which extra brings them
        print(
            f"error: the queue-runtime command needs an extra: pip install 'queue-runtime[cli]' "
            f"(missing module {exc.name!r})",
            file=sys.stderr,
        )
        raise SystemExit(1) from None
    cli.main(args=argv, prog_name="queue-runtime")
