"""The runtime's examples run and show what they promise (the webhook demo is tested by
tests/test_project.py through the README)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


@pytest.mark.parametrize(
    ("script", "promise"),
    [
        ("payment_handler.py", "every good charge went through once the gateway was back"),
        ("priority_lanes.py", "high lane first, low lane never starved"),
    ],
)
def test_example_runs(script: str, promise: str) -> None:
    result = subprocess.run(
        [sys.executable, str(EXAMPLES / script)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert promise in result.stdout
