"""A local Azure Service Bus emulator: an AMQP 1.0 broker the unmodified SDK talks to.

    with running_emulator() as emulator:
        emulator.create_queue("orders", requires_session=True, lock_duration=5)
        client = ServiceBusClient.from_connection_string(emulator.connection_string)

Needs ``pip install 'queue-runtime[emulator]'`` (python-qpid-proton). What it implements and how
it differs from the real service: specs/servicebus-emulator.md.
"""

from ._broker import MAX_MESSAGE_SIZE
from ._emulator import ServiceBusEmulator, running_emulator
from ._http import plain_http_transport
from ._store import QueueOptions

__all__ = [
    "MAX_MESSAGE_SIZE",
    "QueueOptions",
    "ServiceBusEmulator",
    "plain_http_transport",
    "running_emulator",
]
