"""The benchmarks, run as a user runs them (a subprocess each) with their smallest sizes: exit
status 1 exactly when a target printed MISS, 0 otherwise, never a traceback; progress on
stderr; a missing extra refused in one line naming its install command (exit status 2)."""

from __future__ import annotations

import importlib.util
import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[1]
BENCHMARKS = ROOT / "benchmarks"

#: Each benchmark's smallest sizes: a few seconds each (the figures mean little, and a MISS
#: is as valid an outcome as ok).
QUICK = {
    "bench_memory": ["--messages", "1000", "--repeat", "1"],
    "bench_processor": [
        *("--sessions", "4", "--per-session", "10"),
        *("--messages", "100", "--repeat", "1"),
    ],
    "bench_ingress": ["--requests", "40", "--connections", "2", "--repeat", "1"],
    "bench_sqs": ["--messages", "20", "--groups", "4", "--depth", "10"],
    "bench_servicebus": ["--messages", "20", "--batch", "10", "--rounds", "1"],
    # PostgreSQL: the machine's server (QUEUE_RUNTIME_TEST_POSTGRES_URL overrides it)
    "bench_sql": ["--messages", "200", "--repeat", "1"],
    "bench_processor_sql": ["--messages", "200", "--repeat", "1"],
}
#: The bench extra (the libraries bench_sql and bench_processor_sql compare against): CI
#: installs only .[dev].
BENCH_EXTRA = ("litequeue", "persistqueue", "pgqueuer", "procrastinate")
#: The benchmarks that refuse to run without the bench extra.
NEED_BENCH = ("bench_sql", "bench_processor_sql")

#: Makes the imports named in QR_TEST_BLOCKED_IMPORTS fail, as if their package were missing.
SITECUSTOMIZE = """
import os
import sys

_BLOCKED = tuple(os.environ["QR_TEST_BLOCKED_IMPORTS"].split(","))


class _Blocked:
    @staticmethod
    def find_spec(name, path=None, target=None):
        if any(name == b or name.startswith(b + ".") for b in _BLOCKED):
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None


sys.meta_path.insert(0, _Blocked())
"""


def run_benchmark(
    name: str, *args: str, blocked: tuple[str, ...] = (), tmp_path: Path | None = None
) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    if blocked:
        assert tmp_path is not None
        (tmp_path / "sitecustomize.py").write_text(SITECUSTOMIZE)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(tmp_path), env.get("PYTHONPATH")]))
        env["QR_TEST_BLOCKED_IMPORTS"] = ",".join(blocked)
    return subprocess.run(
        [sys.executable, str(BENCHMARKS / f"{name}.py"), *args],
        capture_output=True,
        text=True,
        timeout=110,
        cwd=ROOT,
        env=env,
    )


def assert_honest(name: str, result: subprocess.CompletedProcess[str]) -> None:
    """Exit 0 or 1, 1 exactly when a target printed MISS; no traceback; progress shown."""
    said = f"exit {result.returncode}\n{result.stdout}\n{result.stderr}"
    assert "Traceback" not in result.stderr, said
    assert result.returncode in (0, 1), said
    assert ("MISS" in result.stdout) == (result.returncode == 1), said
    assert f"  {name}: " in result.stderr, said  # what it is running, as it goes


def assert_refused(
    name: str, extra: str, result: subprocess.CompletedProcess[str], module: str | None = None
) -> None:
    """Exit 2, nothing measured, one line on stderr naming the extra and its install."""
    said = f"exit {result.returncode}\n{result.stdout}\n{result.stderr}"
    assert result.returncode == 2, said
    assert result.stdout == "", said
    [line] = result.stderr.splitlines()
    assert line.startswith(f"{name} needs the {extra} extra"), said
    assert line.endswith(f"pip install -e '.[{extra}]'"), said
    if module is not None:
        assert repr(module) in line, said


def installed(*modules: str) -> bool:
    try:
        return all(importlib.util.find_spec(module) is not None for module in modules)
    except ImportError:  # blocked as the tests here block it
        return False


@pytest.mark.parametrize("name", sorted(QUICK))
def test_benchmark_exits_honestly_with_its_smallest_sizes(name: str) -> None:
    result = run_benchmark(name, *QUICK[name])
    if name in NEED_BENCH and not installed(*BENCH_EXTRA):
        assert_refused(name, "bench", result)
    else:
        assert_honest(name, result)


@pytest.mark.parametrize(
    ("name", "blocked", "extra"),
    [
        ("bench_sql", "persistqueue", "bench"),
        ("bench_sql", "asyncpg", "postgres"),
        ("bench_processor_sql", "procrastinate", "bench"),
        ("bench_processor_sql", "asyncpg", "postgres"),
        ("bench_sqs", "boto3", "sqs"),
        ("bench_sqs", "moto", "dev"),
        ("bench_servicebus", "azure", "azure"),
        ("bench_servicebus", "proton", "emulator"),
        ("bench_ingress", "starlette", "ingress"),
    ],
)
def test_a_missing_extra_is_one_line_naming_its_install(
    name: str, blocked: str, extra: str, tmp_path: Path
) -> None:
    result = run_benchmark(name, *QUICK[name], blocked=(blocked,), tmp_path=tmp_path)
    # with the bench extra absent, a benchmark needing it may name another of its modules first
    module = blocked if name not in NEED_BENCH or installed(*BENCH_EXTRA) else None
    assert_refused(name, extra, result, module)


def test_bench_sql_with_skip_pg_needs_no_postgres(tmp_path: Path) -> None:
    result = run_benchmark(
        "bench_sql", *QUICK["bench_sql"], "--skip-pg", blocked=("asyncpg",), tmp_path=tmp_path
    )
    if installed("litequeue", "persistqueue"):
        assert_honest("bench_sql", result)
        assert "PostgreSQL" not in result.stdout
    else:
        assert_refused("bench_sql", "bench", result)


def test_bench_processor_sql_with_skip_pg_needs_neither_postgres_nor_the_bench_extra(
    tmp_path: Path,
) -> None:
    result = run_benchmark(
        "bench_processor_sql",
        *QUICK["bench_processor_sql"],
        "--skip-pg",
        blocked=("asyncpg", "pgqueuer", "procrastinate"),
        tmp_path=tmp_path,
    )
    assert_honest("bench_processor_sql", result)
    assert "PostgreSQL" not in result.stdout
    assert "SQLite" in result.stdout


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.mark.parametrize("name", NEED_BENCH)
def test_a_postgres_benchmark_refuses_in_one_line_when_postgres_does_not_answer(
    name: str,
) -> None:
    dead = f"postgresql://postgres@127.0.0.1:{free_port()}/test"
    result = run_benchmark(name, *QUICK[name], "--postgres", dead)
    said = f"exit {result.returncode}\n{result.stdout}\n{result.stderr}"
    assert result.returncode == 2, said
    [line] = result.stderr.splitlines()
    assert line.startswith(f"{name}: PostgreSQL (--postgres) does not answer"), said
    assert "--skip-pg" in line, said


def test_tracing_without_the_sdk_is_a_stated_skip(tmp_path: Path) -> None:
    result = run_benchmark(
        "bench_processor",
        *QUICK["bench_processor"],
        blocked=("opentelemetry.sdk",),
        tmp_path=tmp_path,
    )
    assert_honest("bench_processor", result)
    assert "tracing: opentelemetry-sdk is not installed" in result.stdout
    assert "skipped" in result.stdout
    assert "traced" not in result.stdout + result.stderr


def load_report() -> ModuleType:
    spec = importlib.util.spec_from_file_location("_report", BENCHMARKS / "_report.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_progress_speaks_up_while_a_step_is_quiet(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    report = load_report()
    monkeypatch.setattr(report, "QUIET", 0.2)
    progress = report.Progress()
    progress.step("a long step", total=10)
    progress.done = 3
    said = ""
    deadline = time.monotonic() + 60
    try:
        while said.count("a long step, 3/10") < 2 and time.monotonic() < deadline:
            time.sleep(0.1)
            said += capsys.readouterr().err
    finally:
        progress.stop()
    assert said.count("a long step, 3/10") >= 2, said  # more than once, while it lasts
