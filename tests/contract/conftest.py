"""Which adapters the contract suite runs against.

Adding an adapter is one entry in `CONTRACT_TARGETS`: its name and a factory that returns a
`ContractTarget`. A factory may take pytest's ``request`` to reach other fixtures (for example
``request.getfixturevalue("moto_server")``) or to skip when its service is unavailable.
"""

from __future__ import annotations

import asyncio
import os
import secrets
from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any

import pytest

from queue_runtime import ManualClock, PostgresConfig, QueueClient
from queue_runtime.testing import ContractTarget, memory_target

#: The machine's own server (trust auth); ``QUEUE_RUNTIME_TEST_POSTGRES_URL`` overrides it.
DEFAULT_TEST_POSTGRES_URL = "postgresql://postgres@127.0.0.1:5432/test"

TargetFactory = Callable[[pytest.FixtureRequest], ContractTarget]


def _memory(request: pytest.FixtureRequest) -> ContractTarget:
    return memory_target()


def _memory_realtime(request: pytest.FixtureRequest) -> ContractTarget:
    return memory_target(realtime=True)


def _sqs(request: pytest.FixtureRequest) -> ContractTarget:
    """The SQS adapter against moto's server over HTTP (started by ``moto_server``)."""
    endpoint = request.getfixturevalue("moto_server")
    sqs = pytest.importorskip("queue_runtime.adapters.sqs")
    from queue_runtime import AwsSqsConfig

    config = AwsSqsConfig(
        region="us-east-1",
        endpoint_url=endpoint,
        access_key_id="testing",
        secret_access_key="testing",
    )
    return ContractTarget(
        name="sqs",
        make_client=lambda: sqs.SqsQueueClient(config, default_timeout=timedelta(seconds=5)),
        advance=asyncio.sleep,
        short_lock=timedelta(seconds=2),
        receive_timeout=3.0,
        # a short poll already returns every visible message: nothing to wait longer for
        quiet_timeout=0.2,
        notes={"server": "moto's ThreadedMotoServer on a free loopback port"},
    )


@pytest.fixture(scope="session")
def servicebus_emulator() -> Iterator[Any]:
    """Our Service Bus emulator on a free port (AMQP, and its ATOM admin API on the same port)."""
    pytest.importorskip("proton", reason="the emulator needs queue-runtime[emulator]")
    emulator_module = pytest.importorskip("queue_runtime.testing.servicebus_emulator")
    with emulator_module.running_emulator() as emulator:
        yield emulator


def _azure(request: pytest.FixtureRequest) -> ContractTarget:
    """The Service Bus adapter over AMQP to our emulator, by its connection string alone
    (queues through the emulator's ATOM admin API, with the administration client)."""
    sb = pytest.importorskip("queue_runtime.adapters.servicebus")
    emulator = request.getfixturevalue("servicebus_emulator")
    from queue_runtime import AzureServiceBusConfig

    config = AzureServiceBusConfig(connection_string=emulator.connection_string)
    return ContractTarget(
        name="azure",
        make_client=lambda: sb.ServiceBusQueueClient(config, default_timeout=timedelta(seconds=5)),
        advance=asyncio.sleep,
        short_lock=timedelta(seconds=3),
        receive_timeout=3.0,
        quiet_timeout=0.3,
        notes={"server": "queue_runtime.testing.servicebus_emulator over AMQP 1.0"},
    )


def _azure_namespace(request: pytest.FixtureRequest) -> ContractTarget:
    """The Service Bus adapter against a real namespace (AZURE_SERVICEBUS_CONNECTION_STRING)."""
    conn = os.environ.get("AZURE_SERVICEBUS_CONNECTION_STRING", "")
    if not conn or "usedevelopmentemulator=true" in conn.replace(" ", "").lower():
        pytest.skip(
            "no real Service Bus namespace: set AZURE_SERVICEBUS_CONNECTION_STRING to a "
            "namespace's connection string (with Manage rights) to run the contract against it"
        )
    sb = pytest.importorskip("queue_runtime.adapters.servicebus")
    from queue_runtime import AzureServiceBusConfig

    config = AzureServiceBusConfig(connection_string=conn)
    return ContractTarget(
        name="azure-namespace",
        make_client=lambda: sb.ServiceBusQueueClient(config, default_timeout=timedelta(seconds=10)),
        advance=asyncio.sleep,
        # the service's shortest lock
        short_lock=timedelta(seconds=5),
        receive_timeout=10.0,
        quiet_timeout=2.0,
        notes={"server": "a real Azure Service Bus namespace"},
    )


def _sqlite(request: pytest.FixtureRequest) -> ContractTarget:
    """The SQLite adapter on a file in the test's temporary directory, on a manual clock."""
    from queue_runtime import SqliteConfig
    from queue_runtime.adapters.sql.sqlite import SqliteQueueClient

    path = request.getfixturevalue("tmp_path") / "queues.db"
    config = SqliteConfig(path=str(path))
    return _manual_clock_target(
        "sqlite", lambda clock: SqliteQueueClient(config, clock=clock, default_timeout=5)
    )


def _sqlite_realtime(request: pytest.FixtureRequest) -> ContractTarget:
    """The SQLite adapter on the system clock with one-second locks: real waits and polls."""
    from queue_runtime import SqliteConfig
    from queue_runtime.adapters.sql.sqlite import SqliteQueueClient

    config = SqliteConfig(path=str(request.getfixturevalue("tmp_path") / "queues.db"))
    return ContractTarget(
        name="sqlite-realtime",
        make_client=lambda: SqliteQueueClient(config, default_timeout=5),
        advance=asyncio.sleep,
        short_lock=timedelta(seconds=1),
        receive_timeout=2.0,
        quiet_timeout=0.05,
    )


def _postgresql(request: pytest.FixtureRequest) -> ContractTarget:
    """The PostgreSQL adapter in a schema of its own on the machine's server, manual clock."""
    from queue_runtime.adapters.sql.postgres import PostgresQueueClient

    config = request.getfixturevalue("postgres_config")
    return _manual_clock_target(
        "postgresql", lambda clock: PostgresQueueClient(config, clock=clock, default_timeout=5)
    )


def _manual_clock_target(name: str, make: Callable[[ManualClock], QueueClient]) -> ContractTarget:
    """Clients sharing one manual clock: lock expiry is tested without sleeping."""
    clock = ManualClock()

    async def advance(seconds: float) -> None:
        clock.advance(seconds)
        await asyncio.sleep(0)

    return ContractTarget(
        name=name,
        make_client=lambda: make(clock),
        advance=advance,
        short_lock=timedelta(seconds=30),
        receive_timeout=2.0,
        quiet_timeout=0.05,
    )


@pytest.fixture
def postgres_config() -> Iterator[PostgresConfig]:
    """A schema of its own on the test server (``QUEUE_RUNTIME_TEST_POSTGRES_URL``, else the
    machine's PostgreSQL), dropped after the test."""
    postgres = pytest.importorskip("queue_runtime.adapters.sql.postgres")
    url = os.environ.get("QUEUE_RUNTIME_TEST_POSTGRES_URL", DEFAULT_TEST_POSTGRES_URL)
    config = PostgresConfig(dsn=url, schema_name=f"qr_test_{secrets.token_hex(4)}")
    yield config
    asyncio.run(postgres.drop_schema(config))


#: name -> factory of the target; each becomes a parametrization of ``contract_target``.
TARGET_FACTORIES: dict[str, TargetFactory] = {
    "memory": _memory,
    "memory-realtime": _memory_realtime,
    "sqs": _sqs,
    "sqlite": _sqlite,
    "sqlite-realtime": _sqlite_realtime,
    "postgresql": _postgresql,
    "azure": _azure,
    "azure-namespace": _azure_namespace,
}

CONTRACT_TARGETS = [pytest.param(name, id=name) for name in TARGET_FACTORIES]


@pytest.fixture(params=CONTRACT_TARGETS)
def contract_target(request: pytest.FixtureRequest) -> ContractTarget:
    """The adapter under test, one parametrization per entry of `TARGET_FACTORIES`."""
    return TARGET_FACTORIES[request.param](request)
