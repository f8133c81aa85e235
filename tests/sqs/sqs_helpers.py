"""Helpers of the SQS tests: look at queues and messages with raw boto3."""

from __future__ import annotations

import asyncio
import contextlib
import http.client
import itertools
import socket
import threading
import urllib.parse
from collections.abc import Awaitable, Callable, Iterator
from datetime import timedelta
from typing import Any

import queue_runtime as qr

REGION = "us-east-1"
KEYS = {"access_key_id": "testing", "secret_access_key": "testing"}


def url_of(boto: Any, sqs_name: str) -> str:
    return str(boto.get_queue_url(QueueName=sqs_name)["QueueUrl"])


def attributes_of(boto: Any, sqs_name: str) -> dict[str, str]:
    url = url_of(boto, sqs_name)
    return dict(boto.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"])


class LossyProxy:
    """An HTTP proxy in front of moto that loses answers: requests of the operations in
    ``lose`` reach moto, then the proxy closes the connection instead of answering (a reply
    lost on the way back). Everything else is forwarded as it is."""

    def __init__(self, upstream: str, lose: set[str]) -> None:
        parts = urllib.parse.urlsplit(upstream)
        self._upstream = (parts.hostname or "127.0.0.1", parts.port or 80)
        self.lose = lose
        self.lost: list[str] = []
        self._server = socket.socket()
        self._server.bind(("127.0.0.1", 0))
        self._server.listen(16)
        self.url = f"http://127.0.0.1:{self._server.getsockname()[1]}"
        threading.Thread(target=self._accept, daemon=True).start()

    def close(self) -> None:
        self._server.close()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self._server.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        reader = conn.makefile("rb")
        upstream = http.client.HTTPConnection(*self._upstream, timeout=30)
        with conn, reader:
            while True:
                line = reader.readline()
                if not line:
                    return
                method, path, _ = line.decode("latin-1").split(" ", 2)
                headers: dict[str, str] = {}
                while (header := reader.readline()) not in (b"\r\n", b"\n", b""):
                    key, _, value = header.decode("latin-1").partition(":")
                    headers[key.strip()] = value.strip()
                length = int(headers.get("Content-Length") or headers.get("content-length") or 0)
                body = reader.read(length) if length else b""
                upstream.request(method, path, body=body, headers=headers)
                response = upstream.getresponse()
                payload = response.read()
                target = headers.get("X-Amz-Target", "").rsplit(".", 1)[-1]
                if target in self.lose:
                    self.lost.append(target)
                    return  # moto did it; the client never hears
                head = [f"HTTP/1.1 {response.status} {response.reason}"]
                head += [
                    f"{k}: {v}"
                    for k, v in response.getheaders()
                    if k.lower() not in {"content-length", "transfer-encoding", "connection"}
                ]
                head.append(f"Content-Length: {len(payload)}")
                conn.sendall(("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + payload)


class HungEndpoint:
    """A TCP endpoint that takes connections (the kernel completes them) and never answers."""

    def __init__(self) -> None:
        self._server = socket.socket()
        self._server.bind(("127.0.0.1", 0))
        self._server.listen(64)
        self.url = f"http://127.0.0.1:{self._server.getsockname()[1]}"

    def close(self) -> None:
        self._server.close()


def _keys() -> Iterator[str]:
    """Distinct attribute keys, shortest in UTF-8 first (the costliest to encode)."""
    ascii_chars = [chr(i) for i in range(128)]
    yield from ascii_chars
    yield from (chr(i) for i in range(0x80, 0x800))
    yield from (a + b for a, b in itertools.product(ascii_chars, repeat=2))
    for a, b, c in itertools.product(ascii_chars, repeat=3):
        if a + b + c != "qr-":
            yield a + b + c


def worst_case_message(size: int, *, session_id: str | None) -> qr.Message:
    """A message of exactly ``size`` bytes by the contract's rule that is as large as it gets
    once encoded: a 4-byte-per-character correlation id, then as many attributes as fit."""
    correlation = "\N{GRINNING FACE}" * min(128, size - 1)
    budget = size - len(correlation) - 1  # one body byte at least
    attributes: dict[str, str] = {}
    for key in _keys():
        cost = len(key.encode())
        if cost > budget:
            break
        attributes[key] = ""
        budget -= cost
    return qr.Message(
        b"\xff" * (1 + budget),
        session_id=session_id,
        attributes=attributes,
        correlation_id=correlation,
        message_id="i" * 128,
        time_to_live=timedelta.max,
    )


@contextlib.contextmanager
def held_request(
    client: Any, operation: str
) -> Iterator[Callable[[asyncio.Future[Any]], Awaitable[None]]]:
    """Hold ``client``'s ``operation`` request in its pool thread just before it leaves;
    ``await release(task)`` waits until it is held, cancels ``task`` (which must raise
    `CancelledError`) and lets the request go on to SQS."""
    held, go = threading.Event(), threading.Event()

    def hold(**_: Any) -> None:
        held.set()
        go.wait(5)

    async def release(task: asyncio.Future[Any]) -> None:
        await asyncio.to_thread(held.wait, 5)
        task.cancel()
        go.set()
        try:
            await task
        except asyncio.CancelledError:
            return
        raise AssertionError("the cancelled call did not raise CancelledError")

    events = client._connection.sqs.meta.events
    events.register(f"before-send.sqs.{operation}", hold)
    try:
        yield release
    finally:
        go.set()
        events.unregister(f"before-send.sqs.{operation}", hold)
