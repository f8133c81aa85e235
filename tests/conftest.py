"""Fixtures shared by every test directory: a real SQS endpoint over HTTP (moto's server)."""

from __future__ import annotations

import logging
import socket
from collections.abc import Iterator

import pytest

#: Dummy credentials and region for moto (it checks neither, boto3 wants them).
MOTO_REGION = "us-east-1"
MOTO_KEYS = {"access_key_id": "testing", "secret_access_key": "testing"}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="session")
def moto_server() -> Iterator[str]:
    """The endpoint URL of moto's SQS server, started once on a free loopback port.

    Skips (rather than fails) where moto's server extra is not installed.
    """
    server_module = pytest.importorskip("moto.server")
    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # one log line per request otherwise
    port = _free_port()
    server = server_module.ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop()
