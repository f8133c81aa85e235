"""The project's own promises: README commands, CI, demo, lint and types."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def readme_commands() -> list[str]:
    text = (ROOT / "README.md").read_text()
    block = text.split("```", 2)[1]
    return [line for line in block.splitlines()[1:] if line.strip() and not line.startswith("#")]


def test_readme_first_block_is_demo_then_tests_and_ci_runs_the_test_command() -> None:
    demo, tests = readme_commands()
    assert "examples/webhook_processor.py" in demo
    assert "pytest" in tests
    assert tests in (ROOT / ".ci" / "run").read_text().splitlines()


DEMO = ROOT / "examples" / "webhook_processor.py"
HANDLED = 21  # the demo's valid deliveries: 3 pull requests x 6 events and 3 pushes
POSTS = 23  # ... plus the poison payload and the forged delivery


def demo_env(data_dir: Path) -> dict[str, str]:
    """The demo on its embedded default (SQLite), in ``data_dir``, never the user's own."""
    env = {k: v for k, v in os.environ.items() if k != "QUEUE_RUNTIME_URL"}
    return {**env, "QUEUE_RUNTIME_DEMO_DIR": str(data_dir), "PYTHONUNBUFFERED": "1"}


def run_demo(data_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(DEMO), *args],
        capture_output=True,
        text=True,
        timeout=60,
        env=demo_env(data_dir),
    )


def test_demo_runs_on_the_embedded_default(tmp_path: Path) -> None:
    result = run_demo(tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    assert f"sqlite:///{tmp_path.resolve() / 'demo.db'}" in out  # the file it uses, printed
    assert (tmp_path / "demo.db").exists()
    assert out.count("-> done") == HANDLED
    assert out.count("POST ") == POSTS
    assert "-> 401" in out and "GitHub API timed out, retried" in out
    assert "dead-lettered: octo/lib#7 comment (poison): permanent-error" in out
    assert out.count(" in order\n") == 4
    assert "in order per pull request" in out
    again = run_demo(tmp_path)  # a run after a completed one starts over
    assert again.returncode == 0, again.stdout + again.stderr
    assert "the last run had completed: starting over" in again.stdout
    assert again.stdout.count("-> done") == HANDLED


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGKILL], ids=["SIGINT", "SIGKILL"])
def test_demo_stopped_half_way_resumes_where_it_stopped(tmp_path: Path, sig: int) -> None:
    first = subprocess.Popen(
        [sys.executable, str(DEMO), "--slow"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=demo_env(tmp_path),
    )
    assert first.stdout is not None
    lines: list[str] = []
    try:
        while sum("-> done" in line for line in lines) < 4:
            line = first.stdout.readline()
            assert line, "".join(lines)
            lines.append(line)
        first.send_signal(sig)
        rest, _ = first.communicate(timeout=30)
    finally:
        if first.poll() is None:
            first.kill()
            first.wait()
    before = "".join(lines) + rest
    if sig == signal.SIGINT:
        assert first.returncode == 130, before
        assert "interrupted after handling" in before
    else:
        assert first.returncode == -signal.SIGKILL, before
    assert "in order per pull request" not in before
    done_before = before.count("-> done")
    assert 4 <= done_before < HANDLED

    again = run_demo(tmp_path)
    after = again.stdout
    assert again.returncode == 0, before + after + again.stderr
    assert "resuming: " in after
    # nothing handled twice (a delivery whose effect was kept but not yet completed when the
    # process died is skipped), nothing posted twice but the one a kill may have cut short
    assert done_before + after.count("-> done") <= HANDLED
    assert POSTS <= before.count("POST ") + after.count("POST ") <= POSTS + 1
    assert after.count(" in order\n") == 4
    assert "every event handled exactly once, in order per pull request" in after


def tool(name: str) -> str:
    path = Path(sys.executable).parent / name
    found = str(path) if path.exists() else shutil.which(name)
    if found is None:
        pytest.skip(f"{name} is not installed (pip install -e '.[dev]')")
    return found


def test_ruff_is_clean() -> None:
    for args in (["check"], ["format", "--check"]):
        result = subprocess.run(
            [tool("ruff"), *args, "src", "tests", "benchmarks", "examples"],
            cwd=ROOT,
            capture_output=True,
            text=True,
        )
        assert result.returncode == 0, result.stdout + result.stderr


def test_mypy_strict_is_clean() -> None:
    result = subprocess.run([tool("mypy")], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
