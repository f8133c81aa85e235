"""queue-runtime: provider-agnostic message queues with ordered sessions and dead-lettering.

Business code uses the ports (`QueueClient`, `SessionClient`), the domain types and the error
tree from here; `create_client` picks the adapter from a URL or a `QueueConfig`.
"""

from ._capabilities import Capabilities
from ._clock import Clock, ManualClock, SystemClock
from ._errors import (
    BatchSendError,
    BatchSettleError,
    ClientClosed,
    ConfigurationError,
    ConnectionError,
    MessageLockLost,
    ProviderError,
    QueueAlreadyExists,
    QueueError,
    QueueNotFound,
    SessionLocked,
    SessionLockLost,
    TimeoutError,
    UnsupportedOperation,
    ValidationError,
)
from ._factory import create_client
from ._logging import RedactingFilter
from ._messages import Message, ReceivedMessage
from ._names import MessageId, QueueName, SessionId
from .config import (
    AwsSqsConfig,
    AzureServiceBusConfig,
    InMemoryConfig,
    PostgresConfig,
    QueueConfig,
    SqliteConfig,
)
from .engine import QueueStatistics
from .ports import QueueClient, SessionClient, Timeout
from .runtime import (
    CircuitBreaker,
    Health,
    Lane,
    MessageContext,
    Middleware,
    PayloadError,
    PermanentError,
    Processor,
    RateLimit,
    RetryPolicy,
)

__version__ = "0.1.0"

__all__ = [
    "AwsSqsConfig",
    "AzureServiceBusConfig",
    "BatchSendError",
    "BatchSettleError",
    "Capabilities",
    "CircuitBreaker",
    "ClientClosed",
    "Clock",
    "ConfigurationError",
    "ConnectionError",
    "Health",
    "InMemoryConfig",
    "Lane",
    "ManualClock",
    "PostgresConfig",
    "Message",
    "MessageContext",
    "MessageId",
    "MessageLockLost",
    "Middleware",
    "PayloadError",
    "PermanentError",
    "Processor",
    "ProviderError",
    "QueueAlreadyExists",
    "QueueClient",
    "QueueConfig",
    "QueueError",
    "QueueName",
    "QueueNotFound",
    "QueueStatistics",
    "RateLimit",
    "ReceivedMessage",
    "RedactingFilter",
    "RetryPolicy",
    "SessionClient",
    "SessionId",
    "SessionLockLost",
    "SessionLocked",
    "SqliteConfig",
    "SystemClock",
    "Timeout",
    "TimeoutError",
    "UnsupportedOperation",
    "ValidationError",
    "__version__",
    "create_client",
]
