"""Fixtures of the SQS adapter's own tests: clients against moto's server over HTTP, and a raw
boto3 client to look at what the adapter really put in SQS."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
import pytest_asyncio
from sqs_helpers import KEYS, REGION

import queue_runtime as qr

pytest.importorskip("boto3")

from queue_runtime.adapters.sqs import SqsQueueClient


@pytest.fixture
def sqs_config(moto_server: str) -> qr.AwsSqsConfig:
    """Explicit region, keys and endpoint: nothing comes from the environment."""
    return qr.AwsSqsConfig(region=REGION, endpoint_url=moto_server, **KEYS)


@pytest_asyncio.fixture
async def client(sqs_config: qr.AwsSqsConfig) -> AsyncIterator[SqsQueueClient]:
    async with SqsQueueClient(sqs_config, default_timeout=5) as client:
        yield client


@pytest_asyncio.fixture
async def other_client(sqs_config: qr.AwsSqsConfig) -> AsyncIterator[SqsQueueClient]:
    """A second client of the same process (shares the process's session registry)."""
    async with SqsQueueClient(sqs_config, default_timeout=5) as client:
        yield client


@pytest.fixture
def boto(moto_server: str) -> Iterator[Any]:
    """A raw boto3 SQS client on the same server."""
    import boto3

    raw = boto3.client(
        "sqs",
        endpoint_url=moto_server,
        region_name=REGION,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )
    yield raw
    raw.close()


@pytest.fixture
def name() -> qr.QueueName:
    """A fresh queue name (queues of these tests are small and short-lived)."""
    return qr.QueueName(f"sqs-{secrets.token_hex(4)}")
