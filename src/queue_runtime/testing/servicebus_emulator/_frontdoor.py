"""One listening port for both protocols the emulator speaks.

A connection that opens with the AMQP protocol header (``AMQP``...) goes to the proton
reactor; anything else (an HTTP request line) goes to the management API. So the connection
string alone is enough for ``ServiceBusClient`` and ``ServiceBusAdministrationClient`` alike.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import threading
from collections.abc import Callable

__all__ = ["FrontDoor"]

_log = logging.getLogger("queue_runtime.servicebus_emulator")
#: How long a new connection may stay silent before it is dropped.
_FIRST_BYTES_TIMEOUT = 10.0

Handoff = Callable[[socket.socket, tuple[str, int]], None]


class FrontDoor:
    """Accepts on ``host:port`` (0: a free port) and hands each connection over by protocol."""

    def __init__(self, host: str, port: int, *, amqp: Handoff, other: Handoff) -> None:
        self._amqp, self._other = amqp, other
        self._socket = socket.socket()
        self._socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._socket.bind((host, port))
        self._socket.listen(128)
        self._socket.settimeout(0.2)
        self._closed = threading.Event()
        self._thread = threading.Thread(
            target=self._accept_loop, name="servicebus-emulator-accept", daemon=True
        )

    @property
    def port(self) -> int:
        return int(self._socket.getsockname()[1])

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._closed.set()
        self._thread.join(5)
        self._socket.close()

    def _accept_loop(self) -> None:
        while not self._closed.is_set():
            try:
                connection, address = self._socket.accept()
            except TimeoutError:
                continue
            except OSError:
                if self._closed.is_set():
                    return
                continue
            threading.Thread(target=self._sniff, args=(connection, address), daemon=True).start()

    def _sniff(self, connection: socket.socket, address: tuple[str, int]) -> None:
        connection.settimeout(_FIRST_BYTES_TIMEOUT)
        try:
            head = connection.recv(4, socket.MSG_PEEK)
        except OSError:
            head = b""
        if not head or self._closed.is_set():
            with contextlib.suppress(OSError):
                connection.close()
            return
        try:
            if head.startswith(b"AMQP"):
                self._amqp(connection, address)
            else:
                connection.settimeout(None)
                self._other(connection, address)
        except Exception:
            _log.exception("could not hand over a connection from %s", address)
            with contextlib.suppress(OSError):
                connection.close()
