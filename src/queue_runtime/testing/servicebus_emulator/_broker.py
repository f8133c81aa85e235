"""The AMQP 1.0 side of the emulator: a proton handler speaking the Service Bus dialect.

One instance runs on the emulator's reactor thread. It maps links to entities, claims-based
security (``$cbs``), message delivery and settlement, session receivers and the
``<entity>/$management`` request/response node onto a `Store`. Every store access happens under
``lock`` (the Python API shares the store from other threads).
"""

from __future__ import annotations

import base64
import functools
import hashlib
import hmac
import logging
import queue as queue_module
import socket
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Final
from urllib.parse import parse_qs, quote_plus, urlparse

from proton import (
    Array,
    Condition,
    Data,
    Delivery,
    Endpoint,
    Handler,
    Link,
    Message,
    Transport,
    Url,
    int32,
    symbol,
    timestamp,
    ulong,
)
from proton._handlers import IOHandler

from ._codec import CodecError, ParsedMessage, encode_delivery, parse_message, unpack_batch
from ._store import BrokerError, Queue, Session, State, Store, Stored
from ._store import Condition as Conditions

__all__ = ["MAX_MESSAGE_SIZE", "Broker"]

_log = logging.getLogger("queue_runtime.servicebus_emulator")

#: Standard tier's maximum message size, advertised on every link (the SDK sizes batches by it).
MAX_MESSAGE_SIZE: Final = 262144
_SESSION_FILTER: Final = symbol("com.microsoft:session-filter")
_LOCKED_UNTIL_UTC: Final = symbol("com.microsoft:locked-until-utc")
_OPERATION_TIMEOUT: Final = symbol("com.microsoft:timeout")
_DOTNET_EPOCH_TICKS: Final = 621355968000000000
_TICK: Final = 0.05
#: How long a next-available session receiver waits when the client names no timeout.
_DEFAULT_SESSION_WAIT: Final = 60.0
_CREDIT: Final = 500


def _ticks(seconds: float) -> int:
    return int(seconds * 10_000_000) + _DOTNET_EPOCH_TICKS


def _ms(seconds: float) -> timestamp:
    return timestamp(int(seconds * 1000))


def _entity_path(address: str | None) -> str:
    """``amqps://host:port/queue/$management`` -> ``queue/$management`` (no leading slash)."""
    if not address:
        return ""
    if "://" in address:
        address = urlparse(address).path
    return address.strip("/")


@dataclass(eq=False)
class _Consumer:
    """A client receiver: the broker's sender link on one queue (or its DLQ)."""

    link: Link
    queue: Queue
    peek_lock: bool
    session: Session | None = None
    #: Next-available receiver still waiting for a session (link not yet attached).
    waiting_until: float | None = None
    closed: bool = False
    deliveries: dict[uuid.UUID, Delivery] = field(default_factory=dict)


def _guarded(method: Callable[[Broker, Any], None]) -> Callable[[Broker, Any], None]:
    """Log instead of raising: an exception in a handler would end the reactor thread."""

    @functools.wraps(method)
    def guarded(self: Broker, event: Any) -> None:
        try:
            method(self, event)
        except Exception:
            _log.exception("emulator handler %s failed", method.__name__)

    return guarded


class Broker(Handler):
    """Proton event handler: the whole AMQP behaviour of the emulated namespace."""

    def __init__(
        self,
        store: Store,
        lock: threading.RLock,
        *,
        sas_key: tuple[str, str] | None = None,
        clock: Callable[[], float] = time.time,
        on_listening: Callable[[], None] | None = None,
    ) -> None:
        super().__init__()
        self.store = store
        self.lock = lock
        self.sas_key = sas_key
        self.clock = clock
        self.on_listening = on_listening
        self._adoptions: queue_module.SimpleQueue[tuple[socket.socket, tuple[str, int]]] = (
            queue_module.SimpleQueue()
        )
        self.container: Any = None
        self.stopping = False
        self._consumers: dict[Link, _Consumer] = {}
        self._authorized: set[Any] = set()
        #: Replies waiting for credit on a reply link.
        self._pending_replies: dict[Link, list[Message]] = {}

    # -- reactor lifecycle ---------------------------------------------------------------

    @_guarded
    def on_reactor_init(self, event: Any) -> None:
        self.container = event.container
        event.container.schedule(_TICK, self)
        if self.on_listening is not None:
            self.on_listening()

    def adopt(self, connection: socket.socket, address: tuple[str, int]) -> None:
        """Queue an accepted AMQP socket for the reactor (any thread; then inject
        ``emulator_adopt``)."""
        self._adoptions.put((connection, address))

    @_guarded
    def on_emulator_adopt(self, event: Any) -> None:
        """Serve the queued sockets as proton server transports (what proton's own acceptor
        does after ``accept``)."""
        while True:
            try:
                connection, address = self._adoptions.get_nowait()
            except queue_module.Empty:
                return
            if self.stopping:
                connection.close()
                continue
            connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            connection.setblocking(False)
            container = self.container
            amqp = container.connection(self)
            amqp._acceptor = self  # tells proton's IO handler the socket is already connected
            amqp.url = Url(host=address[0], port=address[1])  # type: ignore[no-untyped-call]
            transport = Transport(Transport.SERVER)
            transport.bind(amqp)
            selectable = container.selectable(delegate=connection)
            selectable._transport = transport
            transport._selectable = selectable
            IOHandler.update(transport, selectable, container.now)

    @_guarded
    def on_emulator_stop(self, event: Any) -> None:
        """Injected from `ServiceBusEmulator.stop`: close everything and end the reactor."""
        self.stopping = True
        self.container.stop()

    @_guarded
    def on_timer_task(self, event: Any) -> None:
        if self.stopping:
            return
        try:
            with self.lock:
                self._tick()
        finally:
            event.container.schedule(_TICK, self)

    def _tick(self) -> None:
        now = self.clock()
        for queue, session in self.store.advance(now):
            holder = session.holder
            self.store.unlock_session(queue, session)
            if isinstance(holder, _Consumer):
                self._fail_link(
                    holder,
                    Conditions.SESSION_LOCK_LOST,
                    f"The session lock has expired on the MessageSession. Session id: "
                    f"{session.id}.",
                )
        for consumer in list(self._consumers.values()):
            if consumer.waiting_until is not None:
                self._try_next_session(consumer, now)
        self._pump_all(now)

    # -- connections and sessions ----------------------------------------------------------

    @_guarded
    def on_connection_bound(self, event: Any) -> None:
        sasl = event.transport.sasl()
        sasl.allowed_mechs("ANONYMOUS")
        event.transport.require_auth(False)

    @_guarded
    def on_connection_remote_open(self, event: Any) -> None:
        connection = event.connection
        if connection.state & Endpoint.LOCAL_UNINIT:
            connection.container = "queue-runtime-servicebus-emulator"
            connection.open()

    @_guarded
    def on_session_remote_open(self, event: Any) -> None:
        session = event.session
        if session.state & Endpoint.LOCAL_UNINIT:
            session.open()

    @_guarded
    def on_session_remote_close(self, event: Any) -> None:
        if event.session.state & Endpoint.LOCAL_ACTIVE:
            event.session.close()

    @_guarded
    def on_connection_remote_close(self, event: Any) -> None:
        with self.lock:
            self._drop_connection(event.connection)
        if event.connection.state & Endpoint.LOCAL_ACTIVE:
            event.connection.close()

    @_guarded
    def on_transport_closed(self, event: Any) -> None:
        connection = event.connection
        if connection is not None:
            with self.lock:
                self._drop_connection(connection)

    def _drop_connection(self, connection: Any) -> None:
        self._authorized.discard(connection)
        for key, consumer in list(self._consumers.items()):
            if consumer.link.connection == connection:
                self._forget_consumer(key, consumer)

    # -- links ---------------------------------------------------------------------------

    @_guarded
    def on_link_remote_open(self, event: Any) -> None:
        link = event.link
        if not link.state & Endpoint.LOCAL_UNINIT:
            return
        with self.lock:
            try:
                if link.is_receiver:
                    self._open_incoming(link)
                else:
                    self._open_outgoing(link)
            except BrokerError as exc:
                self._refuse(link, exc.condition, exc.description)

    def _mirror_termini(self, link: Link) -> None:
        link.source.address = link.remote_source.address  # type: ignore[assignment]
        link.target.address = link.remote_target.address  # type: ignore[assignment]
        link.snd_settle_mode = link.remote_snd_settle_mode
        link.rcv_settle_mode = link.remote_rcv_settle_mode
        link.max_message_size = MAX_MESSAGE_SIZE

    def _refuse(self, link: Link, condition: str, description: str) -> None:
        if link.state & Endpoint.LOCAL_UNINIT:
            self._mirror_termini(link)
            link.open()
        link.condition = _condition(condition, description)
        link.close()

    def _check_authorized(self, link: Link) -> None:
        if self.sas_key is not None and link.connection not in self._authorized:
            raise BrokerError(Conditions.UNAUTHORIZED, "Unauthorized access: put a token first.")

    def _open_incoming(self, link: Link) -> None:
        """A client sender: to an entity, to ``$cbs`` or to a management node."""
        path = _entity_path(link.remote_target.address)
        if path.lower() != "$cbs":
            self._check_authorized(link)
            if path.lower().endswith("/$management"):
                self.store.queue(path[: -len("/$management")])
            # a sender to a missing entity is attached and its first transfer refused: the SDK
            # sends right after the attach and reports the transfer's outcome
            # (MessagingEntityNotFoundError), not an error on a detach that races it
        self._mirror_termini(link)
        link.open()
        link.flow(_CREDIT)

    def _open_outgoing(self, link: Link) -> None:
        """A client receiver: of an entity (or its DLQ), or the reply side of a node."""
        path = _entity_path(link.remote_source.address)
        lowered = path.lower()
        if lowered == "$cbs" or lowered.endswith("/$management"):
            if lowered != "$cbs":
                self._check_authorized(link)
            self._mirror_termini(link)
            link.open()
            return
        self._check_authorized(link)
        queue = self.store.queue(path)
        peek_lock = link.remote_snd_settle_mode != Link.SND_SETTLED
        filters = self._remote_filters(link)
        consumer = _Consumer(link, queue, peek_lock)
        self._consumers[link] = consumer
        if _SESSION_FILTER not in filters and not queue.requires_session:
            self._mirror_termini(link)
            link.open()
            return
        if not queue.requires_session or _SESSION_FILTER not in filters:
            del self._consumers[link]
            kind = "does not require" if not queue.requires_session else "requires"
            raise BrokerError(
                Conditions.NOT_ALLOWED,
                f"The entity '{queue.name}' {kind} sessions: open the receiver "
                f"{'without' if not queue.requires_session else 'with'} a session.",
            )
        session_id = filters.get(_SESSION_FILTER)
        now = self.clock()
        if session_id is None:
            timeout_ms = self._remote_properties(link).get(_OPERATION_TIMEOUT)
            wait = _DEFAULT_SESSION_WAIT if not timeout_ms else int(timeout_ms) / 1000
            consumer.waiting_until = now + wait
            self._try_next_session(consumer, now)
            return
        previous = queue.sessions.get(str(session_id))
        if (
            previous is not None
            and isinstance(previous.holder, _Consumer)
            and previous.locked_until <= now  # lapsed, not yet noticed by the tick
        ):
            self._fail_link(previous.holder, Conditions.SESSION_LOCK_LOST, "lock lapsed")
        try:
            session = self.store.lock_session(queue, str(session_id), consumer, now)
        except BrokerError:
            del self._consumers[link]
            raise
        assert session is not None
        self._attach_session(consumer, session)

    def _try_next_session(self, consumer: _Consumer, now: float) -> None:
        session = self.store.lock_session(consumer.queue, None, consumer, now)
        if session is not None:
            consumer.waiting_until = None
            self._attach_session(consumer, session)
        elif consumer.waiting_until is not None and consumer.waiting_until <= now:
            consumer.waiting_until = None
            self._consumers.pop(consumer.link, None)
            self._refuse(
                consumer.link,
                Conditions.TIMEOUT,
                "The operation did not complete within the allocated time: no unlocked "
                "session with messages is available.",
            )

    def _attach_session(self, consumer: _Consumer, session: Session) -> None:
        consumer.session = session
        link = consumer.link
        self._mirror_termini(link)
        link.source.filter.put_dict({_SESSION_FILTER: session.id})
        link.properties = {_LOCKED_UNTIL_UTC: ulong(_ticks(session.locked_until))}
        link.open()

    @staticmethod
    def _remote_filters(link: Link) -> dict[Any, Any]:
        data = link.remote_source.filter
        data.rewind()
        if data.next() is None:
            return {}
        value = data.get_object()
        return dict(value) if isinstance(value, dict) else {}

    @staticmethod
    def _remote_properties(link: Link) -> dict[Any, Any]:
        properties = link.remote_properties
        return dict(properties) if properties else {}

    @_guarded
    def on_link_remote_close(self, event: Any) -> None:
        link = event.link
        with self.lock:
            consumer = self._consumers.get(link)
            if consumer is not None:
                self._forget_consumer(link, consumer)
        if link.state & Endpoint.LOCAL_ACTIVE:
            link.close()
        elif link.state & Endpoint.LOCAL_UNINIT:
            self._mirror_termini(link)
            link.open()
            link.close()

    @_guarded
    def on_link_remote_detach(self, event: Any) -> None:
        self.on_link_remote_close(event)

    def _forget_consumer(self, key: Link, consumer: _Consumer) -> None:
        consumer.closed = True
        self._consumers.pop(key, None)
        self._pending_replies.pop(key, None)
        session = consumer.session
        if session is not None and session.holder is consumer:
            self.store.unlock_session(consumer.queue, session)
            self._pump_all(self.clock())

    def _fail_link(self, consumer: _Consumer, condition: str, description: str) -> None:
        self._consumers.pop(consumer.link, None)
        consumer.closed = True
        link = consumer.link
        if link.state & Endpoint.LOCAL_ACTIVE:
            link.condition = _condition(condition, description)
            link.close()

    @_guarded
    def on_link_flow(self, event: Any) -> None:
        link = event.link
        if link.is_sender:
            with self.lock:
                self._flush_replies(link)
                consumer = self._consumers.get(link)
                if consumer is not None:
                    self._pump(consumer, self.clock())

    # -- delivering ----------------------------------------------------------------------

    def _pump_all(self, now: float) -> None:
        for consumer in list(self._consumers.values()):
            self._pump(consumer, now)

    def _pump(self, consumer: _Consumer, now: float) -> None:
        link = consumer.link
        if consumer.closed or consumer.waiting_until is not None:
            return
        if not link.state & Endpoint.LOCAL_ACTIVE:
            return
        session = consumer.session
        if session is not None and session.holder is not consumer:
            return
        while link.credit > 0:
            stored = self.store.take(consumer.queue, now, session)
            if stored is None:
                break
            self._deliver(consumer, stored, now)
        if link.drain_mode and link.credit > 0:
            link.drained()

    def _deliver(self, consumer: _Consumer, stored: Stored, now: float) -> None:
        queue = consumer.queue
        link = consumer.link
        if consumer.peek_lock:
            token = self.store.lock(queue, stored, now, consumer.session)
        else:
            token = uuid.uuid4()
            self.store.remove(queue, stored)
        payload = self._encode(stored, locked=consumer.peek_lock)
        # the tag is the lock token's bytes_le (what the SDK reads); proton accepts bytes
        delivery = link.delivery(token.bytes_le)  # type: ignore[arg-type]
        delivery.lock_token = token  # proton reads tags back as text: keep the token itself
        link.send(payload)
        link.advance()
        if consumer.peek_lock:
            consumer.deliveries[token] = delivery
        else:
            delivery.settle()

    def _encode(self, stored: Stored, *, locked: bool) -> bytes:
        annotations: dict[str, Any] = {
            "x-opt-sequence-number": stored.sequence_number,
            "x-opt-enqueued-time": _ms(stored.enqueued_at),
            "x-opt-message-state": int32(int(stored.state)),
        }
        if locked and stored.lock_token is not None:
            annotations["x-opt-locked-until"] = _ms(stored.locked_until)
        if stored.state is State.SCHEDULED and stored.scheduled_at is not None:
            annotations["x-opt-scheduled-enqueue-time"] = _ms(stored.scheduled_at)
        application_properties = None
        if stored.dead_letter_source is not None:
            annotations["x-opt-deadletter-source"] = stored.dead_letter_source
            application_properties = dict(stored.parsed.application_properties or {})
            if stored.dead_letter_reason is not None:
                application_properties["DeadLetterReason"] = stored.dead_letter_reason
            if stored.dead_letter_description is not None:
                application_properties["DeadLetterErrorDescription"] = (
                    stored.dead_letter_description
                )
        return encode_delivery(
            stored.parsed,
            delivery_count=stored.delivery_count,
            annotations=annotations,
            application_properties=application_properties,
        )

    # -- incoming transfers and dispositions ---------------------------------------------

    @_guarded
    def on_delivery(self, event: Any) -> None:
        delivery = event.delivery
        link = event.link
        with self.lock:
            if link.is_receiver:
                if delivery.partial or delivery.aborted:
                    if delivery.aborted:
                        delivery.settle()
                    return
                payload = link.recv(delivery.pending)
                link.advance()
                self._on_transfer(link, delivery, payload or b"")
                if link.credit < _CREDIT // 2:
                    link.flow(_CREDIT - link.credit)
            else:
                self._on_disposition(link, delivery)

    def _on_transfer(self, link: Link, delivery: Delivery, payload: bytes) -> None:
        path = _entity_path(link.remote_target.address)
        try:
            if path.lower() == "$cbs":
                self._settle_incoming(delivery)
                self._on_cbs(link, payload)
            elif path.lower().endswith("/$management"):
                self._settle_incoming(delivery)
                self._on_management(link, path[: -len("/$management")], payload)
            else:
                self._on_send(path, payload)
                self._settle_incoming(delivery)
        except BrokerError as exc:
            self._settle_incoming(delivery, exc)
            if exc.condition == Conditions.NOT_FOUND and link.state & Endpoint.LOCAL_ACTIVE:
                link.condition = _condition(exc.condition, exc.description)
                link.close()
        except CodecError as exc:
            self._settle_incoming(delivery, BrokerError("amqp:decode-error", str(exc)))

    @staticmethod
    def _settle_incoming(delivery: Delivery, error: BrokerError | None = None) -> None:
        if delivery.settled or delivery.local_state:
            return
        if error is None:
            delivery.update(Delivery.ACCEPTED)
        else:
            delivery.local.condition = _condition(error.condition, error.description)
            delivery.update(Delivery.REJECTED)
        delivery.settle()

    def _on_send(self, path: str, payload: bytes) -> None:
        queue = self.store.queue(path)
        if len(payload) > MAX_MESSAGE_SIZE:
            raise BrokerError(
                Conditions.MESSAGE_SIZE_EXCEEDED,
                f"The received message (size {len(payload)} bytes) exceeds the limit "
                f"({MAX_MESSAGE_SIZE} bytes) currently allowed on the link.",
            )
        parsed = parse_message(payload)
        inner = unpack_batch(parsed)
        messages = [parse_message(raw) for raw in inner] if inner is not None else [parsed]
        now = self.clock()
        # all or none: validate every message of a batch before storing any
        for message in messages:
            if queue.requires_session and not message.session_id:
                self.store.send(queue, message, now)  # raises the service's refusal
        for message in messages:
            self.store.send(queue, message, now)
        self._pump_queue(queue, now)

    def _pump_queue(self, queue: Queue, now: float) -> None:
        for consumer in list(self._consumers.values()):
            if consumer.queue is queue:
                if consumer.waiting_until is not None:
                    self._try_next_session(consumer, now)  # a waiting receiver takes it now
                self._pump(consumer, now)

    def _on_disposition(self, link: Link, delivery: Delivery) -> None:
        consumer = self._consumers.get(link)
        if consumer is None:
            # a management reply or a delivery of a closed receiver: nothing to apply
            if not delivery.settled and delivery.remote_state:
                delivery.settle()
            return
        state = delivery.remote_state
        if not state or delivery.local_state:
            if delivery.remote_settled and not delivery.settled:
                delivery.settle()
            return
        token: uuid.UUID | None = getattr(delivery, "lock_token", None)
        if token is not None:
            consumer.deliveries.pop(token, None)
        try:
            if token is None:
                raise BrokerError(Conditions.MESSAGE_LOCK_LOST, "unknown delivery")
            remote = delivery.remote
            info = remote.condition.info if remote.condition is not None else None
            self._settle(
                consumer.queue,
                token,
                _outcome(state, remote.failed, remote.undeliverable),
                _info_text(info, "DeadLetterReason"),
                _info_text(info, "DeadLetterErrorDescription"),
            )
        except BrokerError as exc:
            delivery.local.condition = _condition(exc.condition, exc.description)
            delivery.update(Delivery.REJECTED)
        else:
            if state == Delivery.MODIFIED:
                delivery.local.failed = delivery.remote.failed
                delivery.local.undeliverable = delivery.remote.undeliverable
            delivery.update(state)
        delivery.settle()
        self._pump_queue(consumer.queue, self.clock())

    def _settle(
        self,
        queue: Queue,
        token: uuid.UUID,
        outcome: str,
        reason: str | None = None,
        description: str | None = None,
    ) -> None:
        now = self.clock()
        stored = self.store.locked_message(queue, token, now)
        if outcome == "completed":
            self.store.complete(queue, stored)
        elif outcome == "abandoned":
            self.store.abandon(queue, stored)
        elif outcome == "defered":
            self.store.defer(queue, stored)
        elif outcome == "suspended":
            self.store.dead_letter(queue, stored, reason, description)
        elif outcome == "released":
            self.store.release(queue, stored)
        else:
            raise BrokerError(Conditions.ARGUMENT_ERROR, f"unknown disposition {outcome!r}")

    # -- claims-based security -----------------------------------------------------------

    def _on_cbs(self, link: Link, payload: bytes) -> None:
        request = Message()
        request.decode(payload)
        properties: dict[Any, Any] = request.properties or {}
        status, text = 200, "OK"
        if properties.get("operation") != "put-token":
            status, text = 400, f"unsupported $cbs operation {properties.get('operation')!r}"
        elif not self._token_valid(request.body):
            status, text = 401, "InvalidSignature: The token has an invalid signature."
        else:
            self._authorized.add(link.connection)
        reply = Message(
            correlation_id=request.id,
            properties={"status-code": int32(status), "status-description": text},
        )
        self._reply(link, "$cbs", request.reply_to, reply)

    def _token_valid(self, token: Any) -> bool:
        if self.sas_key is None:
            return True
        if isinstance(token, bytes):
            token = token.decode("utf-8", "replace")
        if not isinstance(token, str) or not token.startswith("SharedAccessSignature "):
            return False
        fields = {k: v[0] for k, v in parse_qs(token[len("SharedAccessSignature ") :]).items()}
        name, key = self.sas_key
        try:
            expiry = int(fields["se"])
            audience = fields["sr"]
            signature = fields["sig"]
        except (KeyError, ValueError):
            return False
        if fields.get("skn") != name or expiry < self.clock():
            return False
        expected = base64.b64encode(
            hmac.new(
                key.encode(), f"{quote_plus(audience)}\n{expiry}".encode(), hashlib.sha256
            ).digest()
        ).decode()
        return hmac.compare_digest(expected, signature)

    # -- management ----------------------------------------------------------------------

    def _reply(self, request_link: Link, node: str, reply_to: str | None, reply: Message) -> None:
        """Send ``reply`` on the client's receiver of ``node`` in the same connection."""
        target = None
        fallback = None
        connection = request_link.connection
        link = connection.link_head(Endpoint.LOCAL_ACTIVE)
        while link is not None:
            if link.is_sender and _entity_path(link.source.address).lower() == node.lower():
                if reply_to and link.remote_target.address == reply_to:
                    target = link
                    break
                if fallback is None or link.session == request_link.session:
                    fallback = link
            link = link.next(Endpoint.LOCAL_ACTIVE)
        target = target or fallback
        if target is None:
            _log.debug("no reply link for %s", node)
            return
        self._pending_replies.setdefault(target, []).append(reply)
        self._flush_replies(target)

    def _flush_replies(self, link: Link) -> None:
        pending = self._pending_replies.get(link)
        while pending and link.credit > 0:
            reply = pending.pop(0)
            delivery = link.delivery(uuid.uuid4().bytes)  # type: ignore[arg-type]
            link.send(reply.encode())
            link.advance()
            if link.snd_settle_mode == Link.SND_SETTLED:
                delivery.settle()

    def _on_management(self, link: Link, entity: str, payload: bytes) -> None:
        request = Message()
        request.decode(payload)
        properties: dict[Any, Any] = request.properties or {}
        operation = str(properties.get("operation", ""))
        body = request.body if isinstance(request.body, dict) else {}
        status, text, condition, value = 200, "OK", None, None
        try:
            queue = self.store.queue(entity)
            handler = _OPERATIONS.get(operation)
            if handler is None:
                raise BrokerError(
                    Conditions.NOT_IMPLEMENTED, f"operation {operation!r} is not supported"
                )
            with_link = properties.get("associated-link-name")
            status, value = handler(self, queue, body, link, with_link)
        except BrokerError as exc:
            status, text, condition = exc.status_code, exc.description, exc.condition
        reply_properties: dict[str, Any] = {
            "statusCode": int32(status),
            "statusDescription": text,
        }
        if condition is not None:
            reply_properties["errorCondition"] = symbol(condition)
        reply = Message(correlation_id=request.id, properties=reply_properties, body=value)
        self._reply(link, entity + "/$management", request.reply_to, reply)

    def _session_for(
        self, queue: Queue, body: dict[Any, Any], link: Link, link_name: Any
    ) -> Session | None:
        session_id = body.get("session-id")
        if session_id is None or not queue.requires_session:
            return None
        return self.store.held_session(
            queue, str(session_id), self.clock(), self._holder(link, link_name)
        )

    def _holder(self, link: Link, link_name: Any) -> _Consumer | None:
        if not link_name:
            return None
        for consumer in self._consumers.values():
            if consumer.link.connection == link.connection and consumer.link.name == link_name:
                return consumer
        return None

    def _op_renew_lock(self, queue: Queue, body: dict[Any, Any], *_: Any) -> tuple[int, Any]:
        now = self.clock()
        expirations = [self.store.renew_lock(queue, t, now) for t in _array(body, "lock-tokens")]
        return 200, {"expirations": Array(Data.NULL, Data.TIMESTAMP, *map(_ms, expirations))}

    def _op_update_disposition(
        self, queue: Queue, body: dict[Any, Any], link: Link, link_name: Any
    ) -> tuple[int, Any]:
        self._session_for(queue, body, link, link_name)
        status = str(body.get("disposition-status"))
        for token in _array(body, "lock-tokens"):
            self._settle(
                queue,
                token,
                status,
                _text(body.get("deadletter-reason")),
                _text(body.get("deadletter-description")),
            )
            self._forget_delivery(token)
        self._pump_queue(queue, self.clock())
        return 200, {}

    def _forget_delivery(self, token: uuid.UUID) -> None:
        """A message settled through $management: settle its transfer on the receiver link too."""
        for consumer in self._consumers.values():
            delivery = consumer.deliveries.pop(token, None)
            if delivery is not None:
                delivery.settle()
                return

    def _op_renew_session_lock(
        self, queue: Queue, body: dict[Any, Any], link: Link, link_name: Any
    ) -> tuple[int, Any]:
        session = self._require_session(queue, body, link, link_name)
        until = self.store.renew_session(queue, session, self.clock())
        return 200, {"expiration": _ms(until)}

    def _require_session(
        self, queue: Queue, body: dict[Any, Any], link: Link, link_name: Any
    ) -> Session:
        session = self._session_for(queue, body, link, link_name)
        if session is None:
            raise BrokerError(Conditions.ARGUMENT_ERROR, "a session id is required")
        return session

    def _op_get_session_state(
        self, queue: Queue, body: dict[Any, Any], link: Link, link_name: Any
    ) -> tuple[int, Any]:
        session = self._require_session(queue, body, link, link_name)
        return 200, {"session-state": session.state}

    def _op_set_session_state(
        self, queue: Queue, body: dict[Any, Any], link: Link, link_name: Any
    ) -> tuple[int, Any]:
        session = self._require_session(queue, body, link, link_name)
        state = body.get("session-state")
        session.state = None if state is None else bytes(state)
        return 200, {}

    def _op_peek(
        self, queue: Queue, body: dict[Any, Any], link: Link, link_name: Any
    ) -> tuple[int, Any]:
        session_id = body.get("session-id")
        found = self.store.peek(
            queue,
            int(body.get("from-sequence-number") or 1),
            int(body.get("message-count") or 1),
            self.clock(),
            None if session_id is None else str(session_id),
        )
        if not found:
            return 204, None
        return 200, {"messages": [{"message": self._encode(s, locked=False)} for s in found]}

    def _op_schedule(self, queue: Queue, body: dict[Any, Any], *_: Any) -> tuple[int, Any]:
        now = self.clock()
        parsed: list[ParsedMessage] = [
            parse_message(bytes(entry["message"])) for entry in body.get("messages") or []
        ]
        numbers = []
        for message in parsed:
            when = message.annotations.get("x-opt-scheduled-enqueue-time")
            scheduled_at = max(now, int(when) / 1000) if when is not None else now
            numbers.append(self.store.send(queue, message, now, scheduled_at=scheduled_at))
        return 200, {"sequence-numbers": Array(Data.NULL, Data.LONG, *numbers)}

    def _op_cancel_scheduled(self, queue: Queue, body: dict[Any, Any], *_: Any) -> tuple[int, Any]:
        self.store.cancel_scheduled(queue, [int(n) for n in _array(body, "sequence-numbers")])
        return 200, {}

    def _op_receive_by_sequence(
        self, queue: Queue, body: dict[Any, Any], link: Link, link_name: Any
    ) -> tuple[int, Any]:
        session = self._session_for(queue, body, link, link_name)
        delete = int(body.get("receiver-settle-mode") or 0) == 0
        found = self.store.receive_deferred(
            queue,
            [int(n) for n in _array(body, "sequence-numbers")],
            self.clock(),
            session,
            delete=delete,
        )
        messages = []
        for stored in found:
            entry: dict[str, Any] = {"message": self._encode(stored, locked=not delete)}
            if not delete and stored.lock_token is not None:
                entry["lock-token"] = stored.lock_token
            messages.append(entry)
        return 200, {"messages": messages}

    def _op_get_message_sessions(
        self, queue: Queue, body: dict[Any, Any], *_: Any
    ) -> tuple[int, Any]:
        ids = self.store.session_ids(queue)
        skip = int(body.get("skip") or 0)
        top = int(body.get("top") or len(ids))
        page = ids[skip : skip + top]
        if not page:
            return 204, None
        return 200, {"sessions-ids": page, "skip": int32(skip + len(page))}


_OPERATIONS: Final[dict[str, Callable[..., tuple[int, Any]]]] = {
    "com.microsoft:renew-lock": Broker._op_renew_lock,
    "com.microsoft:update-disposition": Broker._op_update_disposition,
    "com.microsoft:renew-session-lock": Broker._op_renew_session_lock,
    "com.microsoft:get-session-state": Broker._op_get_session_state,
    "com.microsoft:set-session-state": Broker._op_set_session_state,
    "com.microsoft:peek-message": Broker._op_peek,
    "com.microsoft:schedule-message": Broker._op_schedule,
    "com.microsoft:cancel-scheduled-message": Broker._op_cancel_scheduled,
    "com.microsoft:receive-by-sequence-number": Broker._op_receive_by_sequence,
    "com.microsoft:get-message-sessions": Broker._op_get_message_sessions,
}


def _condition(name: str, description: str) -> Condition:
    """An AMQP error with all three fields present (an empty info map, not an omitted one):
    the SDK's send path indexes ``[condition, description, info]`` without length checks."""
    return Condition(name, description, {symbol("com.microsoft:tracking-id"): str(uuid.uuid4())})


def _outcome(state: int, failed: bool, undeliverable: bool) -> str:
    if state == Delivery.ACCEPTED:
        return "completed"
    if state == Delivery.REJECTED:
        return "suspended"
    if state == Delivery.RELEASED:
        return "released"
    if state == Delivery.MODIFIED:
        return "defered" if undeliverable else "abandoned" if failed else "released"
    raise BrokerError(Conditions.ARGUMENT_ERROR, f"unsupported outcome {state}")


def _info_text(info: Any, key: str) -> str | None:
    if not isinstance(info, dict):
        return None
    for candidate in (key, symbol(key)):
        if candidate in info:
            return _text(info[candidate])
    return None


def _text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return str(value)


def _array(body: dict[Any, Any], key: str) -> list[Any]:
    value = body.get(key)
    if value is None:
        return []
    if isinstance(value, Array):
        return list(value.elements)
    return list(value)
