"""Which adapters the contract suite runs against.

Adding an adapter is one entry in `CONTRACT_TARGETS`: its name and a factory that returns a
`ContractTarget`. A factory may take pytest's ``request`` to reach other fixtures (for example
``request.getfixturevalue("moto_server")``) or to skip when its service is unavailable.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import timedelta

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


#: name -> factory of the target; each becomes a parametrization of ``contract_target``.
TARGET_FACTORIES: dict[str, TargetFactory] = {
    "memory": _memory,
    "memory-realtime": _memory_realtime,
    "sqs": _sqs,
}

CONTRACT_TARGETS = [pytest.param(name, id=name) for name in TARGET_FACTORIES]


@pytest.fixture(params=CONTRACT_TARGETS)
def contract_target(request: pytest.FixtureRequest) -> ContractTarget:
    """The adapter under test, one parametrization per entry of `TARGET_FACTORIES`."""
    return TARGET_FACTORIES[request.param](request)
