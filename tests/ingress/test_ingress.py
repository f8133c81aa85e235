"""The webhook ingress through a real HTTP server: signatures, sessions, replays, sizes, outages."""

from __future__ import annotations

import asyncio
import json
import sys
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest
import pytest_asyncio

import queue_runtime as qr
from queue_runtime.ingress import github_app, github_session_id, sign, webhook_app

SECRET = "It's a Secret to Everybody"
REPO = {"full_name": "octo/hello", "name": "hello", "owner": {"login": "octo"}}


@pytest_asyncio.fixture
async def client() -> AsyncIterator[qr.QueueClient]:
    async with qr.create_client() as client:
        await client.create_queue("events", requires_session=True)
        yield client


def github_headers(event: str, body: bytes, *, delivery: str | None = None) -> dict[str, str]:
    return {
        "X-GitHub-Event": event,
        "X-GitHub-Delivery": delivery or str(uuid.uuid4()),
        "X-Hub-Signature-256": sign(SECRET, body),
        "Content-Type": "application/json",
    }


async def drain(client: qr.QueueClient, queue: str = "events") -> list[qr.ReceivedMessage]:
    found: list[qr.ReceivedMessage] = []
    while session := await client.accept_session(queue, timeout=0):
        async with session:
            for message in await session.receive_messages(max_messages=100, timeout=0):
                found.append(message)
                await session.complete_message(message)
    return found


def test_the_signature_is_github_s() -> None:
    # GitHub's documented example: secret "It's a Secret to Everybody", body "Hello, World!"
    assert sign(SECRET, b"Hello, World!") == (
        "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"
    )


@pytest.mark.parametrize(
    ("event", "payload", "expected"),
    [
        ("pull_request", {"number": 42, "pull_request": {"number": 42}}, "octo/hello#42"),
        ("issues", {"issue": {"number": 7}}, "octo/hello#7"),
        ("issue_comment", {"issue": {"number": 7}, "comment": {"id": 1}}, "octo/hello#7"),
        ("pull_request_review", {"pull_request": {"number": 3}}, "octo/hello#3"),
        ("pull_request_review_comment", {"pull_request": {"number": 3}}, "octo/hello#3"),
        ("push", {"ref": "refs/heads/main"}, "octo/hello@refs/heads/main"),
        ("create", {"ref": "v1.0", "ref_type": "tag"}, "octo/hello@refs/tags/v1.0"),
        ("delete", {"ref": "topic", "ref_type": "branch"}, "octo/hello@refs/heads/topic"),
        ("star", {}, "octo/hello"),
    ],
)
def test_session_ids_follow_the_subject(event: str, payload: dict[str, Any], expected: str) -> None:
    assert github_session_id(event, {**payload, "repository": REPO}) == expected


def test_session_id_fallbacks() -> None:
    assert github_session_id("membership", {"organization": {"login": "acme"}}) == "acme"
    assert github_session_id("installation", {"installation": {"id": 5}}) == "installation/5"
    assert github_session_id("meta", {}) == "github/meta"


@pytest.mark.asyncio
async def test_signed_events_are_enqueued_in_their_session(serve: Any, client: Any) -> None:
    base = await serve(github_app(client, "events", secret=SECRET))
    posts = [
        ("pull_request", {"action": "opened", "number": 42, "pull_request": {"number": 42}}),
        ("issue_comment", {"action": "created", "issue": {"number": 42}}),
        ("push", {"ref": "refs/heads/main"}),
    ]
    deliveries = []
    async with httpx.AsyncClient(base_url=base) as http:
        for event, payload in posts:
            body = json.dumps({**payload, "repository": REPO}).encode()
            headers = github_headers(event, body)
            deliveries.append(headers["X-GitHub-Delivery"])
            response = await http.post("/webhook", content=body, headers=headers)
            assert response.status_code == 202, response.text
            assert response.json()["message_id"] == headers["X-GitHub-Delivery"]
        health = await http.get("/healthz")
        assert health.status_code == 200 and health.json()["status"] == "ok"
    messages = {m.message_id: m for m in await drain(client)}
    assert set(messages) == set(deliveries)
    pr, comment, push = (messages[d] for d in deliveries)
    assert pr.session_id == comment.session_id == "octo/hello#42"
    assert push.session_id == "octo/hello@refs/heads/main"
    assert dict(pr.attributes) == {
        "github_event": "pull_request",
        "github_delivery": deliveries[0],
        "github_action": "opened",
    }
    assert json.loads(pr.body)["number"] == 42


@pytest.mark.asyncio
async def test_missing_or_wrong_signatures_are_401_and_enqueue_nothing(
    serve: Any, client: Any
) -> None:
    base = await serve(github_app(client, "events", secret=SECRET))
    body = json.dumps({"number": 1, "pull_request": {"number": 1}, "repository": REPO}).encode()
    async with httpx.AsyncClient(base_url=base) as http:
        wrong = ["sha256=" + "0" * 64, sign("other secret", body), "garbage", "sha256=\xe9"]
        for signature in (None, *wrong):
            headers: dict[str, Any] = github_headers("pull_request", body)
            del headers["X-Hub-Signature-256"]
            if signature is not None:
                headers["X-Hub-Signature-256"] = signature.encode("latin-1")
            response = await http.post("/webhook", content=body, headers=headers)
            assert response.status_code == 401, (signature, response.text)
        tampered = github_headers("pull_request", body)
        response = await http.post("/webhook", content=body + b" ", headers=tampered)
        assert response.status_code == 401
    assert await drain(client) == []


@pytest.mark.asyncio
async def test_a_replayed_delivery_is_not_enqueued_twice(serve: Any, client: Any) -> None:
    base = await serve(github_app(client, "events", secret=SECRET))
    body = json.dumps({"issue": {"number": 9}, "repository": REPO}).encode()
    headers = github_headers("issues", body)
    async with httpx.AsyncClient(base_url=base) as http:
        first = await http.post("/webhook", content=body, headers=headers)
        second = await http.post("/webhook", content=body, headers=headers)
        ping = b'{"zen": "hi"}'
        pinged = await http.post("/webhook", content=ping, headers=github_headers("ping", ping))
    assert first.status_code == 202
    assert second.status_code == 200 and second.json()["status"] == "duplicate"
    assert pinged.status_code == 200 and pinged.json()["status"] == "skipped"
    [message] = await drain(client)
    assert message.message_id == headers["X-GitHub-Delivery"]


@pytest.mark.asyncio
async def test_bad_deliveries_are_400(serve: Any, client: Any) -> None:
    base = await serve(github_app(client, "events", secret=SECRET))
    async with httpx.AsyncClient(base_url=base) as http:
        not_json = b"{nope"
        response = await http.post(
            "/webhook", content=not_json, headers=github_headers("push", not_json)
        )
        assert response.status_code == 400
        body = b"{}"
        headers = github_headers("push", body)
        del headers["X-GitHub-Event"]
        assert (await http.post("/webhook", content=body, headers=headers)).status_code == 400
        assert (await http.get("/webhook")).status_code == 405
    assert await drain(client) == []


@pytest.mark.asyncio
async def test_form_encoded_deliveries_and_a_session_hook(serve: Any, client: Any) -> None:
    def per_repository(event: Any) -> str | None:
        return "everything" if event.name == "star" else None

    base = await serve(github_app(client, "events", secret=SECRET, session_id=per_repository))
    payload = json.dumps({"repository": REPO, "action": "created"})
    body = httpx.QueryParams({"payload": payload}).__str__().encode()
    headers = github_headers("star", body)
    headers["Content-Type"] = "application/x-www-form-urlencoded"
    async with httpx.AsyncClient(base_url=base) as http:
        response = await http.post("/webhook", content=body, headers=headers)
    assert response.status_code == 202, response.text
    [message] = await drain(client)
    assert message.session_id == "everything" and json.loads(message.body) == json.loads(payload)


@pytest.mark.asyncio
async def test_oversize_bodies_are_413_declared_or_streamed(serve: Any, client: Any) -> None:
    base = await serve(github_app(client, "events", secret=SECRET, max_body_size=1000))
    big = json.dumps({"repository": REPO, "pad": "x" * 5000}).encode()
    async with httpx.AsyncClient(base_url=base) as http:
        declared = await http.post("/webhook", content=big, headers=github_headers("push", big))
        assert declared.status_code == 413

        async def chunks() -> AsyncIterator[bytes]:
            for start in range(0, len(big), 500):
                yield big[start : start + 500]

        streamed = await http.post(
            "/webhook", content=chunks(), headers=github_headers("push", big)
        )
        assert streamed.status_code == 413
    assert await drain(client) == []


@pytest.mark.asyncio
async def test_the_limit_is_enforced_before_the_body_is_all_sent(serve: Any, client: Any) -> None:
    """413 arrives while the sender still holds most of a huge body back (both framings)."""
    base = await serve(github_app(client, "events", secret=SECRET, max_body_size=1000))
    host, port = base.removeprefix("http://").split(":")
    for framing, first_part in (
        ("Content-Length: 100000000\r\n", b"x" * 2000),
        ("Transfer-Encoding: chunked\r\n", b"7d0\r\n" + b"x" * 2000 + b"\r\n"),
    ):
        reader, writer = await asyncio.open_connection(host, int(port))
        writer.write(
            (
                "POST /webhook HTTP/1.1\r\nHost: x\r\nX-GitHub-Event: push\r\n"
                f"X-Hub-Signature-256: sha256=00\r\n{framing}\r\n"
            ).encode()
            + first_part
        )
        await writer.drain()
        status = await asyncio.wait_for(reader.readline(), 5)  # the rest is never sent
        assert status.startswith(b"HTTP/1.1 413"), (framing, status)
        writer.close()


@pytest.mark.asyncio
async def test_a_missing_queue_is_503_with_retry_after_and_a_retry_enqueues(
    serve: Any, client: Any
) -> None:
    base = await serve(github_app(client, "later", secret=SECRET, retry_after=7))
    body = json.dumps({"repository": REPO}).encode()
    headers = github_headers("star", body)
    async with httpx.AsyncClient(base_url=base) as http:
        response = await http.post("/webhook", content=body, headers=headers)
        assert response.status_code == 503 and response.headers["Retry-After"] == "7"
        await client.create_queue("later", requires_session=True)
        retried = await http.post("/webhook", content=body, headers=headers)
    assert retried.status_code == 202
    [message] = await drain(client, "later")
    assert message.message_id == headers["X-GitHub-Delivery"]


@pytest.mark.asyncio
async def test_an_unreachable_provider_is_503(serve: Any) -> None:
    """SQS at a port where nothing listens: the provider really is down (ConnectionError)."""
    pytest.importorskip("boto3")
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        dead = probe.getsockname()[1]
    down = qr.create_client(
        f"sqs://?endpoint_url=http://127.0.0.1:{dead}&region=us-east-1"
        "&access_key_id=testing&secret_access_key=testing"
    )
    base = await serve(github_app(down, "events", secret=SECRET, close_client=True))
    body = json.dumps({"repository": REPO}).encode()
    async with httpx.AsyncClient(base_url=base, timeout=60) as http:
        response = await http.post("/webhook", content=body, headers=github_headers("star", body))
    assert response.status_code == 503, response.text
    assert int(response.headers["Retry-After"]) >= 1


@pytest.mark.asyncio
async def test_generic_webhook_pointer_header_and_signature_header(serve: Any, client: Any) -> None:
    pointed = await serve(
        webhook_app(
            client,
            "events",
            secret=SECRET,
            signature_header="X-Acme-Signature",
            signature_prefix="",
            session_pointer="/order/id",
            message_id_header="X-Acme-Delivery",
            event_header="X-Acme-Event",
        )
    )
    by_header = await serve(
        webhook_app(client, "events", secret=SECRET, session_header="X-Tenant", path="/in")
    )
    body = json.dumps({"order": {"id": 1234}}).encode()
    signature = sign(SECRET, body, prefix="")
    async with httpx.AsyncClient() as http:
        ok = await http.post(
            f"{pointed}/webhook",
            content=body,
            headers={
                "X-Acme-Signature": signature,
                "X-Acme-Delivery": "d-1",
                "X-Acme-Event": "paid",
            },
        )
        assert ok.status_code == 202, ok.text
        no_session = json.dumps({"order": {}}).encode()
        refused = await http.post(
            f"{pointed}/webhook",
            content=no_session,
            headers={
                "X-Acme-Signature": sign(SECRET, no_session, prefix=""),
                "X-Acme-Delivery": "d-2",
            },
        )
        assert refused.status_code == 400 and "/order/id" in refused.text
        wrong = await http.post(
            f"{pointed}/webhook", content=body, headers={"X-Acme-Signature": sign(SECRET, body)}
        )
        assert wrong.status_code == 401
        tenant = await http.post(
            f"{by_header}/in",
            content=body,
            headers={"X-Signature-256": sign(SECRET, body), "X-Tenant": "tenant-a"},
        )
        assert tenant.status_code == 202, tenant.text
    messages = sorted(await drain(client), key=lambda m: m.session_id or "")
    assert [(m.session_id, m.message_id == "d-1") for m in messages] == [
        ("1234", True),
        ("tenant-a", False),
    ]
    assert dict(messages[0].attributes) == {"webhook_event": "paid", "webhook_delivery": "d-1"}


def _local_address(response: httpx.Response) -> Any:
    """The client end of the connection that carried ``response`` (same on keep-alive)."""
    return response.extensions["network_stream"].get_extra_info("client_addr")


FORM = "application/x-www-form-urlencoded"
HOSTILE_BODIES = {
    "100k nested arrays": b"[" * 100_000 + b"]" * 100_000,
    "100k nested objects": b'{"a":' * 100_000 + b"1" + b"}" * 100_000,
    "a number too large for a float": b'{"n": 1e999999}',
    "a negative one": b'{"n": -1e999999}',
    "a 100k-digit integer": b'{"n": ' + b"9" * 100_000 + b"}",
    "NaN": b'{"n": NaN}',
    "Infinity": b'{"n": [Infinity, -Infinity]}',
    "invalid UTF-8": b'{"action": "\xff\xfe"}',
    "UTF-16": '{"action": "opened"}'.encode("utf-16"),
    "form-encoded, invalid UTF-8": b'payload={"action": "\xff"}',
    "form-encoded, escaped invalid UTF-8": b"payload=%7B%22action%22%3A%22%FF%22%7D",
}


@pytest.mark.asyncio
@pytest.mark.parametrize("kind", list(HOSTILE_BODIES))
async def test_a_signed_hostile_body_is_400_and_the_connection_stays_usable(
    serve: Any, client: Any, kind: str
) -> None:
    base = await serve(github_app(client, "events", secret=SECRET))
    hostile = HOSTILE_BODIES[kind]
    headers = github_headers("push", hostile)
    if kind.startswith("form-encoded"):
        headers["Content-Type"] = FORM
    limits = httpx.Limits(max_connections=1, max_keepalive_connections=1)
    async with httpx.AsyncClient(base_url=base, limits=limits, timeout=60) as http:
        refused = await http.post("/webhook", content=hostile, headers=headers)
        assert refused.status_code == 400, refused.text
        assert refused.headers["content-type"] == "application/json"
        assert "not JSON" in refused.json()["status"]
        body = json.dumps({"ref": "refs/heads/main", "repository": REPO}).encode()
        headers = github_headers("push", body)
        accepted = await http.post("/webhook", content=body, headers=headers)
        assert accepted.status_code == 202, accepted.text
        assert _local_address(accepted) == _local_address(refused)  # kept alive
    [message] = await drain(client)
    assert message.message_id == headers["X-GitHub-Delivery"]


@pytest.fixture
def int_digits_unlimited() -> Iterator[None]:
    """A process that lifted Python's limit on int() of long strings (``0``: none)."""
    before = sys.get_int_max_str_digits()
    sys.set_int_max_str_digits(0)
    yield
    sys.set_int_max_str_digits(before)


@pytest.mark.asyncio
@pytest.mark.usefixtures("int_digits_unlimited")
async def test_a_huge_integer_is_400_even_where_python_would_parse_it(
    serve: Any, client: Any
) -> None:
    base = await serve(github_app(client, "events", secret=SECRET))
    hostile = b'{"n": ' + b"9" * 200_000 + b"}"  # quadratic int(): seconds of CPU
    async with httpx.AsyncClient(base_url=base, timeout=60) as http:
        response = await http.post(
            "/webhook", content=hostile, headers=github_headers("push", hostile)
        )
    assert response.status_code == 400, response.text
    assert "digits" in response.json()["status"]
    assert await drain(client) == []


@pytest.mark.asyncio
async def test_50_concurrent_posts_into_service_bus(serve: Any, servicebus_emulator: Any) -> None:
    """One Service Bus client behind the ingress, 50 deliveries posted at once over 10
    connections: each is answered 202 once its message is in the queue, and each is there
    once, in its session."""
    from queue_runtime.adapters.servicebus import ServiceBusQueueClient

    config = qr.AzureServiceBusConfig(connection_string=servicebus_emulator.connection_string)
    async with ServiceBusQueueClient(config) as sb:
        await sb.create_queue("ingress-sb", requires_session=True)
        base = await serve(github_app(sb, "ingress-sb", secret=SECRET))
        posts = []
        for i in range(50):
            number = i % 5  # five pull requests, ten events each
            payload = {"action": "edited", "number": number, "pull_request": {"number": number}}
            body = json.dumps({**payload, "repository": REPO, "seq": i}).encode()
            posts.append((body, github_headers("pull_request", body)))
        limits = httpx.Limits(max_connections=10)
        async with httpx.AsyncClient(base_url=base, limits=limits, timeout=60) as http:
            answers = await asyncio.gather(
                *(http.post("/webhook", content=b, headers=h) for b, h in posts)
            )
        assert [a.status_code for a in answers] == [202] * 50, [a.text for a in answers]
        found: dict[str, str | None] = {}
        while session := await sb.accept_session("ingress-sb", timeout=2):
            async with session:
                while batch := await session.receive_messages(max_messages=50, timeout=1):
                    for message in batch:
                        assert message.message_id not in found
                        found[message.message_id] = message.session_id
                    await session.complete_messages(batch)
        assert found == {
            h["X-GitHub-Delivery"]: f"octo/hello#{i % 5}" for i, (_, h) in enumerate(posts)
        }
        await sb.delete_queue("ingress-sb")
