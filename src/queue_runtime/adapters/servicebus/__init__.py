"""The Azure Service Bus adapter (``pip install 'queue-runtime[azure]'``): the async
azure-servicebus SDK over AMQP 1.0, imported only here.

Every contract operation is native: Service Bus sessions, peek-lock locks, the dead-letter
sub-queue, scheduled messages and TTL; ``specs/servicebus-adapter.md`` has the mappings.
"""

from ._client import ServiceBusQueueClient
from ._sessions import ServiceBusSessionClient

__all__ = ["ServiceBusQueueClient", "ServiceBusSessionClient"]
