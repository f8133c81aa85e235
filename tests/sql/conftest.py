"""Fixtures of the SQL adapters' own tests: a SQLite file per test, a PostgreSQL schema per test
on the machine's server (``QUEUE_RUNTIME_TEST_POSTGRES_URL`` overrides it), clients of both
run through one ``sql_client`` fixture parametrized by dialect, and a proxy to the server that
can go silent."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import pytest
import pytest_asyncio
from frozen_proxy import FreezableProxy
from sql_helpers import postgres_url

import queue_runtime as qr
from queue_runtime.adapters.sql.postgres import PostgresQueueClient, drop_schema
from queue_runtime.adapters.sql.sqlite import SqliteQueueClient


@pytest.fixture
def sqlite_config(tmp_path: Path) -> qr.SqliteConfig:
    return qr.SqliteConfig(path=str(tmp_path / "queues.db"))


@pytest.fixture
def pg_schema() -> Iterator[str]:
    """The name of a PostgreSQL schema of the test's own, dropped after the test."""
    name = f"qr_test_{secrets.token_hex(4)}"
    yield name
    asyncio.run(drop_schema(qr.PostgresConfig(dsn=postgres_url(), schema_name=name)))


@pytest.fixture
def postgres_config(pg_schema: str) -> qr.PostgresConfig:
    """A schema of its own, dropped after the test."""
    return qr.PostgresConfig(dsn=postgres_url(), schema_name=pg_schema)


@pytest_asyncio.fixture
async def proxy() -> AsyncIterator[FreezableProxy]:
    """A proxy to the tests' PostgreSQL server that can freeze (a silent partition)."""
    async with FreezableProxy.to(postgres_url()) as proxy:
        yield proxy


#: dialect -> (config fixture, client class)
DIALECTS: dict[str, tuple[str, Callable[..., qr.QueueClient]]] = {
    "sqlite": ("sqlite_config", SqliteQueueClient),
    "postgresql": ("postgres_config", PostgresQueueClient),
}


@pytest.fixture(params=list(DIALECTS))
def dialect(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def sql_config(request: pytest.FixtureRequest, dialect: str) -> qr.SqliteConfig | qr.PostgresConfig:
    config: qr.SqliteConfig | qr.PostgresConfig = request.getfixturevalue(DIALECTS[dialect][0])
    return config


@pytest.fixture
def make_client(
    dialect: str, sql_config: qr.SqliteConfig | qr.PostgresConfig
) -> Callable[..., qr.QueueClient]:
    """A new, unopened client of the test's store (keyword arguments go to the client)."""
    cls = DIALECTS[dialect][1]
    return lambda **kwargs: cls(sql_config, **{"default_timeout": 5, **kwargs})


@pytest_asyncio.fixture
async def sql_client(make_client: Callable[..., qr.QueueClient]) -> AsyncIterator[qr.QueueClient]:
    async with make_client() as client:
        yield client
