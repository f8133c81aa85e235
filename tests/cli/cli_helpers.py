"""Helpers of the CLI tests (a unique module name: tests/ has no packages)."""

from __future__ import annotations

import os
import sys


def entry_point() -> list[str]:
    """The installed ``queue-runtime`` script next to this interpreter, else ``-m``."""
    script = os.path.join(os.path.dirname(sys.executable), "queue-runtime")
    return [script] if os.path.exists(script) else [sys.executable, "-m", "queue_runtime"]
