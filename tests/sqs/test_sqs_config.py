"""Reaching SQS: explicit config, the ``sqs://`` URL, profiles, and boto3's own environment
(``AWS_ENDPOINT_URL_SQS``, ``AWS_REGION``, credentials); unusable setups are configuration
errors at open, and secrets never show."""

from __future__ import annotations

from pathlib import Path

import pytest

import queue_runtime as qr
from queue_runtime.adapters.sqs import SqsQueueClient

pytestmark = pytest.mark.asyncio


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> pytest.MonkeyPatch:
    """No AWS settings from the machine: no env credentials, files, region or metadata service."""
    for variable in (
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_SESSION_TOKEN",
        "AWS_PROFILE",
        "AWS_DEFAULT_PROFILE",
        "AWS_REGION",
        "AWS_DEFAULT_REGION",
        "AWS_ENDPOINT_URL",
        "AWS_ENDPOINT_URL_SQS",
        "QUEUE_RUNTIME_URL",
    ):
        monkeypatch.delenv(variable, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-credentials"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-config"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    return monkeypatch


async def round_trip(client: qr.QueueClient, name: str) -> None:
    async with client:
        await client.create_queue(name)
        await client.send_message(name, qr.Message(b"hello"))
        got = await client.receive_message(name, timeout=5)
        assert got is not None and got.body == b"hello"
        await client.complete_message(got)
        await client.delete_queue(name)


@pytest.mark.parametrize("region_variable", ["AWS_REGION", "AWS_DEFAULT_REGION"])
async def test_boto3_environment_and_sqs_url(
    moto_server: str, clean_env: pytest.MonkeyPatch, region_variable: str
) -> None:
    clean_env.setenv("AWS_ENDPOINT_URL_SQS", moto_server)
    clean_env.setenv(region_variable, "us-east-1")
    clean_env.setenv("AWS_ACCESS_KEY_ID", "testing")
    clean_env.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    client = qr.create_client("sqs://")
    assert isinstance(client, SqsQueueClient)
    await round_trip(client, "env-path")
    clean_env.setenv("QUEUE_RUNTIME_URL", "sqs://")
    await round_trip(qr.create_client(), "env-url")


async def test_region_and_endpoint_in_the_url(
    moto_server: str, clean_env: pytest.MonkeyPatch
) -> None:
    clean_env.setenv("AWS_ACCESS_KEY_ID", "testing")
    clean_env.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    await round_trip(qr.create_client(f"sqs://?region=us-east-1&endpoint_url={moto_server}"), "url")


async def test_a_queue_config_with_explicit_keys(
    moto_server: str, clean_env: pytest.MonkeyPatch
) -> None:
    config = qr.QueueConfig(
        provider=qr.AwsSqsConfig(
            region="us-east-1",
            endpoint_url=moto_server,
            access_key_id="testing",
            secret_access_key="top-secret-value",
            session_token="session-secret-value",
            max_workers=4,
        )
    )
    client = qr.create_client(config)
    assert isinstance(client, SqsQueueClient)
    for text in (repr(client), repr(client.config), str(client.config)):
        assert "top-secret-value" not in text and "session-secret-value" not in text
    await round_trip(client, "explicit")


async def test_a_named_profile(
    moto_server: str, clean_env: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    credentials = tmp_path / "credentials"
    credentials.write_text("[qr-test]\naws_access_key_id = a\naws_secret_access_key = b\n")
    clean_env.setenv("AWS_SHARED_CREDENTIALS_FILE", str(credentials))
    config = qr.AwsSqsConfig(profile="qr-test", region="us-east-1", endpoint_url=moto_server)
    await round_trip(SqsQueueClient(config), "profile")
    with pytest.raises(qr.ConfigurationError):
        await SqsQueueClient(config.model_copy(update={"profile": "missing"})).open()


async def test_missing_credentials_are_a_configuration_error(
    moto_server: str, clean_env: pytest.MonkeyPatch
) -> None:
    client = SqsQueueClient(qr.AwsSqsConfig(region="us-east-1", endpoint_url=moto_server))
    with pytest.raises(qr.ConfigurationError, match="credentials"):
        await client.open()


async def test_a_missing_region_is_a_configuration_error(
    moto_server: str, clean_env: pytest.MonkeyPatch
) -> None:
    config = qr.AwsSqsConfig(access_key_id="a", secret_access_key="b")
    with pytest.raises(qr.ConfigurationError):
        await SqsQueueClient(config).open()


async def test_a_client_does_no_io_until_opened_and_refuses_use_after_close(
    sqs_config: qr.AwsSqsConfig,
) -> None:
    client = SqsQueueClient(sqs_config)
    with pytest.raises(qr.ClientClosed):
        await client.send_message("q", qr.Message(b"x"))
    await client.open()
    await client.aclose()
    with pytest.raises(qr.ClientClosed):
        await client.receive_message("q", timeout=0)


async def test_a_size_limit_below_what_sqs_takes_is_refused() -> None:
    with pytest.raises(qr.ConfigurationError):
        SqsQueueClient(qr.AwsSqsConfig(max_message_size=512))
