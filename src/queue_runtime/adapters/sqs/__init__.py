"""The Amazon SQS adapter (``pip install 'queue-runtime[sqs]'``): boto3 is imported only here.

Session queues are FIFO queues and sessions are their message groups, leased within the
process; ``specs/sqs-adapter.md`` says what holds across processes and what only within one.
"""

from ._client import SqsQueueClient
from ._session import SqsSessionClient

__all__ = ["SqsQueueClient", "SqsSessionClient"]
