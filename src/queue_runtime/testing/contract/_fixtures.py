"""Fixtures and helpers shared by every behaviour of the contract suite.

Everything here goes through the public port (`QueueClient`/`SessionClient`) and the
`ContractTarget`; nothing reaches into an adapter's internals.
"""

from __future__ import annotations

import contextlib
import secrets
from collections.abc import AsyncIterator, Mapping, Sequence
from datetime import timedelta

import pytest
import pytest_asyncio

import queue_runtime as qr

from .._target import ContractTarget

__all__ = [
    "ContractFixtures",
    "accept",
    "QueueFactory",
    "accept_next",
    "assert_dead_letters",
    "assert_holds",
    "assert_sessions_hold",
    "new_queue_name",
    "receive_exactly",
    "receive_one",
    "require",
    "session_complete_exactly",
    "session_receive_exactly",
    "session_receive_one",
]


def new_queue_name() -> qr.QueueName:
    """A fresh queue name: ``ct-<8 hex>`` (alphanumerics and hyphens: valid everywhere)."""
    return qr.QueueName(f"ct-{secrets.token_hex(4)}")


def require(client: qr.QueueClient, capability: str) -> None:
    """Skip the test unless the adapter has ``capability``."""
    if capability not in client.capabilities:
        pytest.skip(f"the adapter does not support {capability!r}")


class QueueFactory:
    """Creates uniquely named queues for one test and deletes them when it ends."""

    def __init__(self, client: qr.QueueClient, target: ContractTarget) -> None:
        self._client = client
        self._target = target
        self.created: list[qr.QueueName] = []

    async def create(
        self,
        *,
        requires_session: bool = False,
        short_lock: bool = False,
        max_delivery_count: int = 10,
        lock_duration: float | timedelta | None = None,
        default_message_ttl: float | timedelta | None = None,
        dead_letter_on_expiration: bool = False,
    ) -> qr.QueueName:
        """Create a new queue; ``short_lock`` gives it the target's short lock duration."""
        if requires_session:
            require(self._client, "sessions")
        if lock_duration is None:
            lock_duration = self._target.short_lock if short_lock else timedelta(seconds=30)
        name = new_queue_name()
        await self._client.create_queue(
            name,
            requires_session=requires_session,
            max_delivery_count=max_delivery_count,
            lock_duration=lock_duration,
            default_message_ttl=default_message_ttl,
            dead_letter_on_expiration=dead_letter_on_expiration,
        )
        self.created.append(name)
        return name

    async def create_short_lock(
        self, *, requires_session: bool = False, max_delivery_count: int = 10
    ) -> qr.QueueName:
        """A queue whose lock lasts ``target.short_lock``, for lock-expiry tests."""
        return await self.create(
            requires_session=requires_session,
            short_lock=True,
            max_delivery_count=max_delivery_count,
        )

    async def delete_all(self) -> None:
        for name in reversed(self.created):
            with contextlib.suppress(qr.QueueError):
                await self._client.delete_queue(name)


class ContractFixtures:
    """Base of every contract mixin: the fixtures the tests use.

    The test class (or a conftest) supplies ``contract_target``, a `ContractTarget`.
    """

    pytestmark = pytest.mark.asyncio

    @pytest_asyncio.fixture
    async def client(self, contract_target: ContractTarget) -> AsyncIterator[qr.QueueClient]:
        """An open client of the adapter under test."""
        async with contract_target.make_client() as client:
            yield client

    @pytest_asyncio.fixture
    async def second_client(self, contract_target: ContractTarget) -> AsyncIterator[qr.QueueClient]:
        """Another client on the same broker: plays a second process."""
        async with contract_target.make_client() as client:
            yield client

    @pytest_asyncio.fixture
    async def queues(
        self, client: qr.QueueClient, contract_target: ContractTarget
    ) -> AsyncIterator[QueueFactory]:
        """Makes fresh queues for the test; deletes them afterwards."""
        factory = QueueFactory(client, contract_target)
        yield factory
        await factory.delete_all()

    @pytest_asyncio.fixture
    async def queue(self, queues: QueueFactory) -> qr.QueueName:
        """A fresh queue without sessions."""
        return await queues.create()

    @pytest_asyncio.fixture
    async def session_queue(self, queues: QueueFactory) -> qr.QueueName:
        """A fresh queue that requires sessions (skips where sessions are unsupported)."""
        return await queues.create(requires_session=True)


# -- helpers -------------------------------------------------------------------------------


async def receive_one(
    client: qr.QueueClient, target: ContractTarget, queue: qr.QueueName
) -> qr.ReceivedMessage:
    """The next message of ``queue``, which must come within ``target.receive_timeout``."""
    message = await client.receive_message(queue, timeout=target.receive_timeout)
    assert message is not None, f"expected a message on {queue!r}, got none"
    return message


async def session_receive_one(
    session: qr.SessionClient, target: ContractTarget
) -> qr.ReceivedMessage:
    """The session's next message, which must come within ``target.receive_timeout``."""
    message = await session.receive_message(timeout=target.receive_timeout)
    assert message is not None, f"expected a message in session {session.session_id!r}"
    return message


async def accept_next(
    client: qr.QueueClient, target: ContractTarget, queue: qr.QueueName
) -> qr.SessionClient:
    """The next available session of ``queue``, which must come within the receive timeout."""
    session = await client.accept_session(queue, timeout=target.receive_timeout)
    assert session is not None, f"expected an available session on {queue!r}"
    return session


async def accept(client: qr.QueueClient, queue: qr.QueueName, session_id: str) -> qr.SessionClient:
    """Accept the named session (which a named accept always returns, or raises)."""
    session = await client.accept_session(queue, session_id)
    assert session is not None, f"accept_session({queue!r}, {session_id!r}) returned None"
    return session


async def receive_exactly(
    client: qr.QueueClient, target: ContractTarget, queue: qr.QueueName, count: int
) -> list[qr.ReceivedMessage]:
    """Receive (and lock) exactly ``count`` messages, then make sure no further one comes."""
    received: list[qr.ReceivedMessage] = []
    while len(received) < count:
        batch = await client.receive_messages(
            queue, max_messages=min(10, count - len(received)), timeout=target.receive_timeout
        )
        if not batch:
            break
        received.extend(batch)
    extra = await client.receive_messages(queue, timeout=target.quiet_timeout)
    bodies = [m.body for m in received + extra]
    assert len(received) == count and not extra, (
        f"expected {count} messages on {queue!r}, got {len(bodies)}: {bodies!r}"
    )
    return received


async def session_receive_exactly(
    session: qr.SessionClient, target: ContractTarget, count: int
) -> list[qr.ReceivedMessage]:
    """Receive exactly ``count`` messages of the session in order, then nothing more."""
    received: list[qr.ReceivedMessage] = []
    while len(received) < count:
        batch = await session.receive_messages(
            max_messages=min(10, count - len(received)), timeout=target.receive_timeout
        )
        if not batch:
            break
        received.extend(batch)
    extra = await session.receive_messages(timeout=target.quiet_timeout)
    bodies = [m.body for m in received + extra]
    assert len(received) == count and not extra, (
        f"expected {count} messages in session {session.session_id!r}, got {bodies!r}"
    )
    return received


async def session_complete_exactly(
    session: qr.SessionClient, target: ContractTarget, count: int
) -> list[qr.ReceivedMessage]:
    """Receive and complete exactly ``count`` messages of the session, then see no more.

    Each batch is completed before the next is asked for: where sessions are built on FIFO
    groups (SQS), a message sent after the earlier ones went out waits until they are settled.
    """
    received: list[qr.ReceivedMessage] = []
    while len(received) < count:
        batch = await session.receive_messages(
            max_messages=min(10, count - len(received)), timeout=target.receive_timeout
        )
        if not batch:
            break
        for message in batch:
            await session.complete_message(message)
        received.extend(batch)
    extra = await session.receive_messages(timeout=target.quiet_timeout)
    bodies = [m.body for m in received + extra]
    assert len(received) == count and not extra, (
        f"expected {count} messages in session {session.session_id!r}, got {bodies!r}"
    )
    return received


async def assert_holds(
    client: qr.QueueClient,
    target: ContractTarget,
    queue: qr.QueueName,
    bodies: Sequence[bytes],
) -> list[qr.ReceivedMessage]:
    """Assert the queue (no sessions) holds exactly ``bodies`` (any order); completes them."""
    received = await receive_exactly(client, target, queue, len(bodies))
    assert sorted(m.body for m in received) == sorted(bodies)
    for message in received:
        await client.complete_message(message)
    return received


async def assert_sessions_hold(
    client: qr.QueueClient,
    target: ContractTarget,
    queue: qr.QueueName,
    expected: Mapping[str, Sequence[bytes]],
) -> dict[str, list[qr.ReceivedMessage]]:
    """Assert a session queue holds exactly ``expected`` (session id -> bodies in order).

    Takes every available session, reads it to the end and completes its messages; then no
    further session may be offered.
    """
    found: dict[str, list[qr.ReceivedMessage]] = {}
    for _ in range(len(expected)):
        session = await client.accept_session(queue, timeout=target.receive_timeout)
        if session is None:
            break
        async with session:
            assert session.session_id not in found, "a session was offered twice"
            count = len(expected.get(session.session_id, ()))
            found[session.session_id] = await session_complete_exactly(session, target, count)
    extra = await client.accept_session(queue, timeout=target.quiet_timeout)
    if extra is not None:
        async with extra:
            leftover = await extra.receive_messages(timeout=target.quiet_timeout)
        raise AssertionError(
            f"unexpected session {extra.session_id!r} with {[m.body for m in leftover]!r}"
        )
    assert {sid: [m.body for m in ms] for sid, ms in found.items()} == {
        sid: list(bodies) for sid, bodies in expected.items()
    }
    return found


async def assert_dead_letters(
    client: qr.QueueClient,
    target: ContractTarget,
    queue: qr.QueueName,
    bodies: Sequence[bytes],
) -> list[qr.ReceivedMessage]:
    """Assert the queue's DLQ holds exactly ``bodies`` (any order); completes them."""
    return await assert_holds(client, target, queue.dead_letter, bodies)
