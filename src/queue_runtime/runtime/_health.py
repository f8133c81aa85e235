"""What a processor reports about itself: `Health`, its counters, and a small HTTP endpoint
(``/healthz``, ``/readyz``, ``/metrics`` in Prometheus text) on asyncio's own server."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Final

from ._service import Service

__all__ = ["Counters", "Health", "HealthServer", "render_metrics"]


@dataclass(slots=True)
class Counters:
    """Running totals of one processor (plain ints: cheap on the hot path)."""

    received: int = 0
    completed: int = 0
    abandoned: int = 0
    #: Received but never started (a stop, a lost session lock), given back uncounted where
    #: the adapter can.
    released: int = 0
    dead_lettered: int = 0
    retries: int = 0
    failures: int = 0
    lock_renewals: int = 0
    locks_lost: int = 0
    settle_errors: int = 0
    receive_errors: int = 0


@dataclass(frozen=True, slots=True)
class Health:
    """A snapshot of a processor: is it running, is it ready for work, what is it doing."""

    running: bool
    #: Running and taking messages: the circuit breaker is not open, and the last receive
    #: (or accept) did not fail (a database or broker that stopped answering).
    ready: bool
    in_flight: int
    #: Session ids held right now (session queues).
    sessions: tuple[str, ...]
    #: ``closed``, ``open`` or ``half_open`` (``closed`` when the processor has no breaker).
    breaker: str
    last_error: str | None
    counters: Mapping[str, int] = field(default_factory=dict)

    def to_dict(self) -> dict[str, object]:
        data = asdict(self)
        data["sessions"] = list(self.sessions)
        data["counters"] = dict(self.counters)
        return data


_BREAKER_VALUE: Final = {"closed": 0, "half_open": 1, "open": 2}


def render_metrics(health: Health, prefix: str = "queue_runtime_processor") -> str:
    """The health snapshot in Prometheus' text exposition format."""
    lines: list[str] = []
    for name, value in health.counters.items():
        lines += [f"# TYPE {prefix}_{name}_total counter", f"{prefix}_{name}_total {value}"]
    gauges = {
        "in_flight": health.in_flight,
        "sessions": len(health.sessions),
        "running": int(health.running),
        "ready": int(health.ready),
        "circuit_breaker_state": _BREAKER_VALUE.get(health.breaker, 0),
    }
    for name, value in gauges.items():
        lines += [f"# TYPE {prefix}_{name} gauge", f"{prefix}_{name} {value}"]
    return "\n".join(lines) + "\n"


class HealthServer(Service):
    """``/healthz`` (200 while running), ``/readyz`` (200 while ready) and ``/metrics`` for
    one processor, on ``host:port`` (port 0: any free port, see `port`)."""

    def __init__(
        self, health: Callable[[], Health], *, host: str = "127.0.0.1", port: int = 0
    ) -> None:
        self._health = health
        self._host = host
        self._port = port
        self._server: asyncio.Server | None = None

    @property
    def port(self) -> int:
        if self._server is None:
            return self._port
        return int(self._server.sockets[0].getsockname()[1])

    async def start(self) -> None:
        if self._server is None:
            self._server = await asyncio.start_server(self._serve, self._host, self._port)

    async def stop(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.close()
            await server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            request = await asyncio.wait_for(reader.readline(), 5)
            parts = request.decode("latin-1").split()
            path = parts[1].split("?", 1)[0] if len(parts) >= 2 else ""
            status, content_type, body = self._respond(path)
            head = (
                f"HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\n"
                f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
            )
            writer.write(head.encode() + body)
            await writer.drain()
        except (OSError, TimeoutError, UnicodeError):
            pass
        finally:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()

    def _respond(self, path: str) -> tuple[str, str, bytes]:
        health = self._health()
        if path == "/metrics":
            return "200 OK", "text/plain; version=0.0.4", render_metrics(health).encode()
        if path in ("/healthz", "/readyz"):
            ok = health.running if path == "/healthz" else health.ready
            body = json.dumps(health.to_dict()).encode()
            return ("200 OK" if ok else "503 Service Unavailable"), "application/json", body
        return "404 Not Found", "text/plain", b"not found\n"
