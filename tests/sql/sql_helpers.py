"""Helpers of the SQL adapters' tests (tests/ has no packages: imported by module name)."""

from __future__ import annotations

import os

import queue_runtime as qr

#: The machine's own server (trust auth); ``QUEUE_RUNTIME_TEST_POSTGRES_URL`` overrides it.
DEFAULT_TEST_POSTGRES_URL = "postgresql://postgres@127.0.0.1:5432/test"


def postgres_url() -> str:
    """Where the tests find PostgreSQL."""
    return os.environ.get("QUEUE_RUNTIME_TEST_POSTGRES_URL", DEFAULT_TEST_POSTGRES_URL)


def store_url(config: qr.SqliteConfig | qr.PostgresConfig) -> str:
    """The URL a worker process opens to reach the test's store."""
    if isinstance(config, qr.SqliteConfig):
        return f"sqlite://{config.path}"
    return schema_url(config.dsn.get_secret_value(), config.schema_name)


def schema_url(url: str, schema: str, query: str = "") -> str:
    """A ``postgresql://`` URL of the adapter's tables in ``schema``, with more ``query``
    parameters (``"a=1&b=2"``) if given."""
    more = f"&{query}" if query else ""
    return f"{url}{'&' if '?' in url else '?'}schema_name={schema}{more}"
