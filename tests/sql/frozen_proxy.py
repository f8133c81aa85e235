"""A loopback TCP proxy that can go silent: a network partition that keeps every socket open.

`FreezableProxy` forwards the connections it accepts on a free loopback port to a target
(PostgreSQL, by default the tests' server). `freeze()` stops forwarding in both directions:
bytes sent either way are held, nothing is closed or refused, and new connections are accepted
but reach nothing, as behind a partition that drops packets silently. `thaw()` forwards again,
the held bytes first. `freeze_after(marker)` freezes once the client has sent bytes containing
``marker`` to the server: a statement reaches it, its answer does not come back.
"""

from __future__ import annotations

import asyncio
import contextlib
from types import TracebackType
from urllib.parse import urlsplit

__all__ = ["FreezableProxy"]

_CHUNK = 65536


class FreezableProxy:
    """Forwards ``127.0.0.1:<port>`` to ``host:port``; `freeze()`/`thaw()`; ``async with``."""

    def __init__(self, host: str = "127.0.0.1", port: int = 5432) -> None:
        self._target = (host, port)
        self._flowing = asyncio.Event()
        self._flowing.set()
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._writers: set[asyncio.StreamWriter] = set()
        self._marker: bytes | None = None
        self.port = 0
        #: Connections accepted so far.
        self.accepted = 0

    @classmethod
    def to(cls, url: str) -> FreezableProxy:
        """A proxy to the host and port a ``postgresql://`` URL names."""
        parts = urlsplit(url)
        return cls(parts.hostname or "127.0.0.1", parts.port or 5432)

    def url(self, url: str) -> str:
        """``url`` with its host and port replaced by the proxy's (user, path, query kept)."""
        parts = urlsplit(url)
        user, at, _ = parts.netloc.rpartition("@")
        return parts._replace(netloc=f"{user}{at}127.0.0.1:{self.port}").geturl()

    async def start(self) -> FreezableProxy:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.port = int(self._server.sockets[0].getsockname()[1])
        return self

    def freeze(self) -> None:
        """Stop forwarding, both ways, on every connection (open or yet to come)."""
        self._flowing.clear()

    def freeze_after(self, marker: bytes) -> None:
        """Freeze once bytes from a client that contain ``marker`` are passed on to the server
        (a chunk at a time: the marker must lie within what one read returns)."""
        self._marker = marker

    def thaw(self) -> None:
        """Forward again, what was held first."""
        self._marker = None
        self._flowing.set()

    async def close(self) -> None:
        """Stop listening and close every connection (their tasks end by themselves: asyncio
        logs a cancelled connection handler as an error)."""
        if self._server is not None:
            self._server.close()
        self._flowing.set()
        for writer in list(self._writers):
            writer.close()
        if self._tasks:
            await asyncio.wait(list(self._tasks), timeout=10)
        if self._server is not None:
            await self._server.wait_closed()

    async def __aenter__(self) -> FreezableProxy:
        return await self.start()

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.close()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.accepted += 1
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        self._writers.add(writer)
        try:
            await self._flowing.wait()  # behind a partition the server hears nothing
            try:
                up_reader, up_writer = await asyncio.open_connection(*self._target)
            except OSError:
                return
            self._writers.add(up_writer)
            await asyncio.gather(
                self._pump(reader, up_writer, upstream=True), self._pump(up_reader, writer)
            )
        finally:
            self._tasks.discard(task)
            self._writers.discard(writer)
            writer.close()

    async def _pump(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, upstream: bool = False
    ) -> None:
        """Copy one direction until it ends, holding bytes while frozen; then close the other
        side, so an end or a reset reaches the peer, but not across a partition either."""
        try:
            while data := await reader.read(_CHUNK):
                await self._flowing.wait()
                writer.write(data)
                await writer.drain()
                if upstream and self._marker is not None and self._marker in data:
                    self._marker = None
                    self.freeze()
        except OSError:
            pass
        await self._flowing.wait()
        self._writers.discard(writer)
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()
