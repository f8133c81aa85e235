"""The SDK's synchronous client on the same broker (it shares the async client's AMQP layer)."""

from __future__ import annotations

from azure.servicebus import ServiceBusMessage

from queue_runtime.testing.servicebus_emulator import ServiceBusEmulator


def test_the_sync_client_works_too(emulator: ServiceBusEmulator, queue: str) -> None:
    from azure.servicebus import ServiceBusClient as SyncClient

    with SyncClient.from_connection_string(emulator.connection_string) as client:
        with client.get_queue_sender(queue, keep_alive=None) as sender:
            sender.send_messages(ServiceBusMessage("sync"))
        with client.get_queue_receiver(queue, keep_alive=None) as receiver:
            [message] = receiver.receive_messages(max_wait_time=5)
            assert str(message) == "sync" and message.delivery_count == 0
            receiver.complete_message(message)
