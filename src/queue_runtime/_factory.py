"""The composition root: turns a URL or a `QueueConfig` into an adapter.

Nothing else in the package knows which adapters exist. Adapters are imported lazily, so a
missing optional extra costs nothing until it is asked for, and then names its install.
"""

from __future__ import annotations

import importlib
import os
from datetime import timedelta
from typing import Any

from ._errors import ConfigurationError
from .config import URL_ENV_VAR, QueueConfig
from .ports import QueueClient

__all__ = ["create_client"]

# provider kind -> (module, factory function, extra that provides its SDK)
_ADAPTERS: dict[str, tuple[str, str, str | None]] = {
    "memory": ("queue_runtime.adapters.memory", "InMemoryQueueClient", None),
    "sqs": ("queue_runtime.adapters.sqs", "SqsQueueClient", "sqs"),
    "azure-servicebus": (
        "queue_runtime.adapters.servicebus",
        "ServiceBusQueueClient",
        "azure",
    ),
    "sqlite": ("queue_runtime.adapters.sql.sqlite", "SqliteQueueClient", None),
    "postgresql": ("queue_runtime.adapters.sql.postgres", "PostgresQueueClient", "postgres"),
}


def create_client(url_or_config: str | QueueConfig | None = None, **settings: Any) -> QueueClient:
    """A client for the provider named by a URL (``memory://``, ``sqs://``,
    ``azure-servicebus://...``) or a `QueueConfig`; with nothing, ``$QUEUE_RUNTIME_URL``
    (``memory://`` when unset). No I/O happens here: ``async with client:`` connects.

    Raises `ConfigurationError` for a bad URL or config, or a missing optional extra.
    """
    if url_or_config is None:
        config = (
            QueueConfig.from_env()
            if not settings
            else QueueConfig.from_url(os.environ.get(URL_ENV_VAR) or "memory://", **settings)
        )
    elif isinstance(url_or_config, QueueConfig):
        if settings:
            config = QueueConfig.model_validate({**url_or_config.model_dump(), **settings})
        else:
            config = url_or_config
    else:
        config = QueueConfig.from_url(url_or_config, **settings)
    module_name, class_name, extra = _ADAPTERS[config.provider.kind]
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        if extra is None or (exc.name or "").startswith("queue_runtime"):
            raise ConfigurationError(
                f"the {config.provider.kind} adapter is not available in this version"
            ) from exc
        raise ConfigurationError(
            f"the {config.provider.kind} adapter needs an extra: "
            f"pip install 'queue-runtime[{extra}]' (missing module {exc.name!r})"
        ) from exc
    adapter = getattr(module, class_name)
    default_timeout: timedelta = config.default_timeout
    client: QueueClient = adapter(config.provider, default_timeout=default_timeout)
    return client
