"""The ``queue-runtime`` command: operate queues, dead letters, workers and the webhook ingress
from a terminal, on any adapter, through the public API only (extra ``[cli]``)."""

from __future__ import annotations

import sys

__all__ = ["main"]


def main(argv: list[str] | None = None) -> None:
    """Run the command (the console script and ``python -m queue_runtime``)."""
    try:
        import click

        from ._app import cli
    except ImportError as exc:  # click or rich missing: say which extra brings them
        print(
            f"error: the queue-runtime command needs an extra: pip install 'queue-runtime[cli]' "
            f"(missing module {exc.name!r})",
            file=sys.stderr,
        )
        raise SystemExit(1) from None
    try:
        code = cli.main(args=argv, prog_name="queue-runtime", standalone_mode=False)
    except click.exceptions.Abort:  # Ctrl-C outside the commands that handle it themselves
        print("interrupted", file=sys.stderr)
        raise SystemExit(130) from None
    except click.ClickException as exc:
        exc.show()
        raise SystemExit(exc.exit_code) from None
    raise SystemExit(code if isinstance(code, int) else 0)
