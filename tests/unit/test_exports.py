"""The public surface: exported, documented, and free of provider SDKs at import."""

from __future__ import annotations

import subprocess
import sys

import queue_runtime as qr


def test_every_public_name_is_exported_and_documented() -> None:
    for name in qr.__all__:
        obj = getattr(qr, name)
        if name.startswith("__") or not callable(obj) or name == "Timeout":
            continue
        assert obj.__doc__, f"{name} has no docstring"
    public = {n for n in dir(qr) if not n.startswith("_")}
    modules = {
        "adapters", "cli", "config", "engine", "ingress", "ports", "runtime", "telemetry", "testing"
    }  # fmt: skip
    assert public - modules <= set(qr.__all__), public - set(qr.__all__) - modules


def test_port_methods_are_documented() -> None:
    for port in (qr.QueueClient, qr.SessionClient):
        for name in port.__abstractmethods__:
            assert getattr(port, name).__doc__, f"{port.__name__}.{name} is undocumented"


def test_importing_the_package_imports_no_provider_sdk() -> None:
    code = (
        "import sys, queue_runtime, queue_runtime.testing; "
        "queue_runtime.create_client('memory://'); "
        "bad = [m for m in ('boto3', 'botocore', 'azure', 'pytest') if m in sys.modules]; "
        "print(bad); raise SystemExit(1 if bad else 0)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
