"""Signed webhook posts per second through the ingress into the in-memory adapter, beside a
bare starlette endpoint that only verifies the signature, measured in one run.

    python benchmarks/bench_ingress.py [--requests 2000] [--connections 8] [--repeat 5]

Each server runs under uvicorn in a subprocess of its own (same settings); this process posts
a GitHub-like ``pull_request`` payload (~3 KB, each with its own delivery id) over keep-alive
HTTP/1.1 connections and counts 202 answers. Figures are the best of ``--repeat`` rounds,
the two servers alternating. Target: the ingress >= 0.7x the bare endpoint.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import subprocess
import sys
import time
import uuid

from _report import Failed, needs, progress, run, verdict

with needs("ingress"):
    import uvicorn
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse, Response
    from starlette.routing import Route

    from queue_runtime.ingress import github_app

SECRET = "bench-secret"
TARGET = 0.7
PAYLOAD = json.dumps(
    {
        "action": "synchronize",
        "number": 42,
        "pull_request": {
            "number": 42,
            "title": "Make the queue faster",
            "body": "x" * 2000,
            "head": {"ref": "topic", "sha": "0" * 40},
            "base": {"ref": "main", "sha": "1" * 40},
        },
        "repository": {"full_name": "octo/hello", "name": "hello", "owner": {"login": "octo"}},
        "sender": {"login": "octocat", "id": 1},
    }
).encode()


def bare_app() -> object:
    """The baseline: read the body, verify its signature, answer 202."""
    import hashlib
    import hmac

    key = SECRET.encode()

    async def webhook(request: Request) -> Response:
        body = await request.body()
        expected = "sha256=" + hmac.new(key, body, hashlib.sha256).hexdigest()
        given = request.headers.get("x-hub-signature-256", "")
        if not hmac.compare_digest(expected.encode(), given.encode()):
            return JSONResponse({"status": "missing or wrong signature"}, status_code=401)
        return JSONResponse({"status": "enqueued"}, status_code=202)

    return Starlette(routes=[Route("/webhook", webhook, methods=["POST"])])


def ingress_app() -> object:
    """The ingress into a session queue of a named in-memory broker (created first)."""
    import queue_runtime as qr

    async def create() -> None:
        async with qr.create_client("memory://bench") as setup:
            await setup.create_queue("events", requires_session=True)

    asyncio.run(create())
    return github_app(qr.create_client("memory://bench"), "events", secret=SECRET)


def serve(kind: str, port: int) -> None:
    app = bare_app() if kind == "bare" else ingress_app()
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", access_log=False)  # type: ignore[arg-type]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def _wait_listening(port: int) -> None:
    deadline = time.monotonic() + 30
    while True:
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", port)
        except OSError:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.05)
        else:
            writer.close()
            return


async def _post_many(port: int, count: int) -> int:
    """Post ``count`` signed deliveries on one keep-alive connection; returns 202 answers."""
    import hashlib
    import hmac

    signature = "sha256=" + hmac.new(SECRET.encode(), PAYLOAD, hashlib.sha256).hexdigest()
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    accepted = 0
    try:
        for _ in range(count):
            head = (
                "POST /webhook HTTP/1.1\r\nHost: bench\r\nContent-Type: application/json\r\n"
                f"X-GitHub-Event: pull_request\r\nX-GitHub-Delivery: {uuid.uuid4()}\r\n"
                f"X-Hub-Signature-256: {signature}\r\nContent-Length: {len(PAYLOAD)}\r\n\r\n"
            )
            writer.write(head.encode() + PAYLOAD)
            status = await reader.readline()
            length = 0
            while (line := await reader.readline()) not in (b"\r\n", b""):
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":", 1)[1])
            await reader.readexactly(length)
            accepted += status.startswith(b"HTTP/1.1 202")
    finally:
        writer.close()
    return accepted


def _cpu_seconds(pid: int) -> float:
    """CPU time used so far by process ``pid`` (Linux; 0 elsewhere)."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def _round(pid: int, port: int, requests: int, connections: int) -> tuple[float, float]:
    """Posts per wall-clock second, and per second of the server's CPU time."""
    share = [requests // connections] * connections
    cpu = _cpu_seconds(pid)
    start = time.perf_counter()
    accepted = sum(await asyncio.gather(*(_post_many(port, n) for n in share)))
    elapsed = time.perf_counter() - start
    used = _cpu_seconds(pid) - cpu
    if accepted != sum(share):
        raise Failed(f"only {accepted} of {sum(share)} posts were accepted")
    return sum(share) / elapsed, (sum(share) / used if used > 0 else 0.0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--serve", choices=["bare", "ingress"], help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(args.serve, args.port)
        return
    servers: dict[str, tuple[subprocess.Popen[bytes], int]] = {}
    for kind in ("bare", "ingress"):
        port = _free_port()
        command = [sys.executable, __file__, "--serve", kind, "--port", str(port)]
        servers[kind] = (subprocess.Popen(command), port)
    best = {"bare": 0.0, "ingress": 0.0}
    per_cpu = {"bare": 0.0, "ingress": 0.0}
    try:
        progress.step("starting the two servers")
        for _, port in servers.values():
            asyncio.run(_wait_listening(port))
        progress.step("warming up")
        for process, port in servers.values():
            asyncio.run(_round(process.pid, port, min(args.requests, 400), args.connections))
        for round_ in range(args.repeat):
            for kind, (process, port) in servers.items():
                progress.step(f"round {round_ + 1}/{args.repeat}: {kind}, {args.requests} posts")
                rate, cpu_rate = asyncio.run(
                    _round(process.pid, port, args.requests, args.connections)
                )
                best[kind] = max(best[kind], rate)
                per_cpu[kind] = max(per_cpu[kind], cpu_rate)
    finally:
        for process, _ in servers.values():
            process.terminate()
            process.wait(30)
    ratio = best["ingress"] / best["bare"]
    print(f"payload {len(PAYLOAD)} bytes, {args.connections} connections, best of {args.repeat}")
    print(f"bare starlette, verify only : {best['bare']:9.0f} posts/s")
    print(f"ingress -> in-memory queue  : {best['ingress']:9.0f} posts/s")
    if per_cpu["bare"] and per_cpu["ingress"]:
        cpu_ratio = per_cpu["ingress"] / per_cpu["bare"]
        print(
            f"per server CPU second       : {per_cpu['bare']:9.0f} / {per_cpu['ingress']:.0f}"
            f" posts ({cpu_ratio:.2f}x; steadier on a busy machine)"
        )
    judged = verdict(ratio >= TARGET, f"ingress/bare >= {TARGET}x")
    print(f"ratio ingress/bare          : {ratio:9.2f}x (target >= {TARGET}x) {judged}")


if __name__ == "__main__":
    run(main)
