"""The ``queue_runtime`` logger hierarchy, and a filter that keeps secrets out of log records.

Every module logs under ``queue_runtime.<area>`` (``queue_runtime.adapters.sqs``,
``queue_runtime.runtime``, ...): DEBUG for each provider call with queue, message and session
ids, WARNING for lost locks and retries. Bodies and secrets are never logged by this library;
`RedactingFilter` also scrubs what provider SDKs log at DEBUG (botocore prints request headers,
``x-amz-security-token`` included).
"""

from __future__ import annotations

import logging
import re
from typing import Final

__all__ = ["ROOT_LOGGER", "RedactingFilter", "get_logger"]

#: The name of the library's root logger.
ROOT_LOGGER: Final = "queue_runtime"


def get_logger(area: str) -> logging.Logger:
    """The logger ``queue_runtime.<area>``."""
    return logging.getLogger(f"{ROOT_LOGGER}.{area}")


# header or key=value forms of credentials, as SDKs print them
_SECRET = re.compile(
    r"(?i)(x-amz-security-token|authorization|sharedaccesskey|sharedaccesssignature|"
    r"aws_secret_access_key|aws_session_token|client_secret|password|signature)"
    r"""(['"]?\s*[:=]\s*b?['"]?)([^'",;&\s}]+)"""
)


class RedactingFilter(logging.Filter):
    """Replaces credential values in a record's message with ``***``.

    Install it on the handlers that receive SDK debug logs, for example::

        handler.addFilter(queue_runtime.RedactingFilter())
    """

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        redacted = _SECRET.sub(r"\1\2***", message)
        if redacted != message:
            record.msg, record.args = redacted, None
        return True
