"""Which adapters the contract suite runs against.

Adding an adapter is one entry in `CONTRACT_TARGETS`: its name and a factory that returns a
`ContractTarget`. A factory may take pytest's ``request`` to reach other fixtures (for example
``request.getfixturevalue("moto_server")``) or to skip when its service is unavailable.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any

import pytest

from queue_runtime.testing import ContractTarget, memory_target

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


#: name -> factory of the target; each becomes a parametrization of ``contract_target``.
TARGET_FACTORIES: dict[str, TargetFactory] = {
    "memory": _memory,
    "memory-realtime": _memory_realtime,
    "sqs": _sqs,
    "azure": _azure,
    "azure-namespace": _azure_namespace,
}

CONTRACT_TARGETS = [pytest.param(name, id=name) for name in TARGET_FACTORIES]


@pytest.fixture(params=CONTRACT_TARGETS)
def contract_target(request: pytest.FixtureRequest) -> ContractTarget:
    """The adapter under test, one parametrization per entry of `TARGET_FACTORIES`."""
    return TARGET_FACTORIES[request.param](request)
