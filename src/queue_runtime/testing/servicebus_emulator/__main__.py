"""``python -m queue_runtime.testing.servicebus_emulator``: serve until Ctrl-C.

Prints the connection string for the SDK (and the management API's address) on stdout.
Queues come from ``--queue NAME[:session]`` options or the management API (``--admin-port``).
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading

from ._emulator import ServiceBusEmulator


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m queue_runtime.testing.servicebus_emulator",
        description="A local Azure Service Bus emulator (AMQP 1.0, no TLS).",
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default loopback)")
    parser.add_argument("--port", type=int, default=5672, help="AMQP port (0: any free port)")
    parser.add_argument(
        "--admin-port",
        type=int,
        default=5300,
        help="management API port, plain HTTP (0: any free port, -1: none); default 5300",
    )
    parser.add_argument(
        "--queue",
        action="append",
        default=[],
        metavar="NAME[:session]",
        help="create a queue at start (append ':session' for a session queue); repeatable",
    )
    parser.add_argument("--lock-duration", type=float, default=60.0, help="their lock, seconds")
    parser.add_argument(
        "--sas-key",
        metavar="NAME=KEY",
        help="accept only SAS tokens signed by this key (default: any token)",
    )
    args = parser.parse_args(argv)
    sas_key = None
    if args.sas_key:
        name, _, key = args.sas_key.partition("=")
        if not name or not key:
            parser.error("--sas-key takes NAME=KEY")
        sas_key = (name, key)
    emulator = ServiceBusEmulator(
        args.port,
        host=args.host,
        sas_key=sas_key,
        admin_port=None if args.admin_port < 0 else args.admin_port,
    )
    try:
        emulator.start()
    except OSError as exc:  # a port in use names the flag that changes it (PortInUse)
        print(f"error: {exc}", file=sys.stderr)
        return 1
    # the handlers go in before the connection string is printed: whoever reads it may stop
    # the emulator at once, and that is a clean stop (exit 0), not a KeyboardInterrupt
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    try:
        for spec in args.queue:
            name, _, kind = spec.partition(":")
            emulator.create_queue(
                name, requires_session=kind == "session", lock_duration=args.lock_duration
            )
        print(emulator.connection_string, flush=True)
        if emulator.admin_endpoint is not None:
            print(f"management API: http://{emulator.admin_endpoint}", flush=True)
        while not stop.wait(0.5):
            pass
    finally:
        emulator.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
