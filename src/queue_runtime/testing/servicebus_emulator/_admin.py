"""The ATOM/HTTP management API (what ``ServiceBusAdministrationClient`` speaks), over plain HTTP.

Queues only: ``PUT /<queue>`` (create, or update with ``If-Match``), ``GET /<queue>``, ``DELETE
/<queue>`` and ``GET /$Resources/queues``. Request and response bodies are Atom entries holding
a ``QueueDescription``, as the service sends them; authorization headers are not checked. The
SDK always builds ``https://`` addresses, so a client must send its requests over plain HTTP
(see specs/servicebus-emulator.md for the transport that does it).
"""

from __future__ import annotations

import re
import socket
import threading
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Final, Protocol
from urllib.parse import unquote, urlparse
from xml.etree import ElementTree
from xml.sax.saxutils import escape

from ._store import BrokerError, Queue, QueueOptions, State, Store


class Namespace(Protocol):
    """What the management API needs of the emulator: its store, lock and clock."""

    @property
    def store(self) -> Store: ...

    @property
    def lock(self) -> threading.RLock: ...

    def clock(self) -> float: ...


__all__ = ["AdminServer", "Namespace", "format_duration", "parse_duration"]

_ATOM: Final = "http://www.w3.org/2005/Atom"
_SB: Final = "http://schemas.microsoft.com/netservices/2010/10/servicebus/connect"
_COUNTS: Final = "http://schemas.microsoft.com/netservices/2011/06/servicebus"
#: TimeSpan.MaxValue, what the service reports for "no time to live".
_FOREVER: Final = "P10675199DT2H48M5.4775807S"
_DURATION: Final = re.compile(
    r"^P(?:(?P<d>\d+(?:\.\d+)?)D)?"
    r"(?:T(?:(?P<h>\d+(?:\.\d+)?)H)?(?:(?P<m>\d+(?:\.\d+)?)M)?(?:(?P<s>\d+(?:\.\d+)?)S)?)?$"
)
_NAME: Final = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._\-/]{0,259}$")


def parse_duration(text: str) -> float:
    """ISO 8601 duration (``PT1M``, ``P14D``, ``PT0.5S``) to seconds."""
    match = _DURATION.match(text.strip())
    if match is None or not any(match.groupdict().values()):
        raise ValueError(f"not an ISO 8601 duration: {text!r}")
    parts = {key: float(value or 0) for key, value in match.groupdict().items()}
    return parts["d"] * 86400 + parts["h"] * 3600 + parts["m"] * 60 + parts["s"]


def format_duration(seconds: float | None) -> str:
    if seconds is None:
        return _FOREVER
    whole = int(seconds)
    if whole == seconds:
        return f"PT{whole}S"
    return f"PT{seconds:.3f}".rstrip("0") + "S"


def _bool(text: str) -> bool:
    return text.strip().lower() == "true"


def _options_from_xml(body: bytes, base: QueueOptions) -> QueueOptions:
    """A QueueDescription's settings over ``base`` (elements it does not name keep theirs)."""
    root = ElementTree.fromstring(body)
    description = next((e for e in root.iter() if e.tag == f"{{{_SB}}}QueueDescription"), None)
    if description is None:
        raise ValueError("the request holds no QueueDescription")
    values: dict[str, str] = {
        child.tag.split("}", 1)[-1]: (child.text or "") for child in description
    }
    fields: dict[str, Any] = {
        "requires_session": base.requires_session,
        "max_delivery_count": base.max_delivery_count,
        "lock_duration": base.lock_duration,
        "default_message_time_to_live": base.default_message_time_to_live,
        "dead_lettering_on_message_expiration": base.dead_lettering_on_message_expiration,
        "requires_duplicate_detection": base.requires_duplicate_detection,
        "duplicate_detection_history_time_window": base.duplicate_detection_history_time_window,
        "user_metadata": base.user_metadata,
    }
    if "RequiresSession" in values:
        fields["requires_session"] = _bool(values["RequiresSession"])
    if "MaxDeliveryCount" in values:
        fields["max_delivery_count"] = int(values["MaxDeliveryCount"])
    if "LockDuration" in values:
        fields["lock_duration"] = parse_duration(values["LockDuration"])
    if "DefaultMessageTimeToLive" in values:
        ttl = values["DefaultMessageTimeToLive"]
        fields["default_message_time_to_live"] = (
            None if ttl == _FOREVER or parse_duration(ttl) >= 10**9 else parse_duration(ttl)
        )
    if "DeadLetteringOnMessageExpiration" in values:
        fields["dead_lettering_on_message_expiration"] = _bool(
            values["DeadLetteringOnMessageExpiration"]
        )
    if "RequiresDuplicateDetection" in values:
        fields["requires_duplicate_detection"] = _bool(values["RequiresDuplicateDetection"])
    if "DuplicateDetectionHistoryTimeWindow" in values:
        fields["duplicate_detection_history_time_window"] = parse_duration(
            values["DuplicateDetectionHistoryTimeWindow"]
        )
    if "UserMetadata" in values:
        fields["user_metadata"] = values["UserMetadata"] or None
    return QueueOptions(**fields)


def _timestamp(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _entry_xml(base_url: str, queue: Queue, now: float) -> str:
    options = queue.options
    dead_letter = queue.dead_letter
    locked = sum(1 for s in queue.messages.values() if s.locked)
    scheduled = sum(1 for s in queue.messages.values() if s.state is State.SCHEDULED)
    active = len(queue.messages) - scheduled
    dead = len(dead_letter.messages) if dead_letter is not None else 0
    created = _timestamp(queue.created_at)
    name = escape(queue.name)
    return (
        f'<entry xmlns="{_ATOM}" xml:base="{escape(base_url)}/{name}?api-version=2021-05">'
        f"<id>{escape(base_url)}/{name}?api-version=2021-05</id>"
        f'<title type="text">{name}</title>'
        f"<published>{created}</published><updated>{created}</updated>"
        f"<author><name>emulator</name></author>"
        f'<link rel="self" href="{name}?api-version=2021-05"/>'
        f'<content type="application/xml">'
        f'<QueueDescription xmlns="{_SB}" xmlns:i="http://www.w3.org/2001/XMLSchema-instance">'
        f"<LockDuration>{format_duration(options.lock_duration)}</LockDuration>"
        f"<MaxSizeInMegabytes>1024</MaxSizeInMegabytes>"
        f"<RequiresDuplicateDetection>{str(options.requires_duplicate_detection).lower()}"
        f"</RequiresDuplicateDetection>"
        f"<RequiresSession>{str(options.requires_session).lower()}</RequiresSession>"
        f"<DefaultMessageTimeToLive>{format_duration(options.default_message_time_to_live)}"
        f"</DefaultMessageTimeToLive>"
        f"<DeadLetteringOnMessageExpiration>"
        f"{str(options.dead_lettering_on_message_expiration).lower()}"
        f"</DeadLetteringOnMessageExpiration>"
        f"<DuplicateDetectionHistoryTimeWindow>"
        f"{format_duration(options.duplicate_detection_history_time_window)}"
        f"</DuplicateDetectionHistoryTimeWindow>"
        f"<MaxDeliveryCount>{options.max_delivery_count}</MaxDeliveryCount>"
        f"<EnableBatchedOperations>true</EnableBatchedOperations>"
        f"<SizeInBytes>{sum(s.parsed.size for s in queue.messages.values())}</SizeInBytes>"
        f"<MessageCount>{len(queue.messages) + dead}</MessageCount>"
        f"<IsAnonymousAccessible>false</IsAnonymousAccessible>"
        f"<AuthorizationRules/>"
        f"<Status>Active</Status>"
        + (
            ""
            if options.user_metadata is None
            else f"<UserMetadata>{escape(options.user_metadata)}</UserMetadata>"
        )
        + f"<CreatedAt>{created}</CreatedAt><UpdatedAt>{created}</UpdatedAt>"
        f"<AccessedAt>{_timestamp(now)}</AccessedAt>"
        f"<SupportOrdering>true</SupportOrdering>"
        f'<CountDetails xmlns:d2p1="{_COUNTS}">'
        f"<d2p1:ActiveMessageCount>{active - locked}</d2p1:ActiveMessageCount>"
        f"<d2p1:DeadLetterMessageCount>{dead}</d2p1:DeadLetterMessageCount>"
        f"<d2p1:ScheduledMessageCount>{scheduled}</d2p1:ScheduledMessageCount>"
        f"<d2p1:TransferMessageCount>0</d2p1:TransferMessageCount>"
        f"<d2p1:TransferDeadLetterMessageCount>0</d2p1:TransferDeadLetterMessageCount>"
        f"</CountDetails>"
        f"<AutoDeleteOnIdle>{_FOREVER}</AutoDeleteOnIdle>"
        f"<EnablePartitioning>false</EnablePartitioning>"
        f"<EntityAvailabilityStatus>Available</EntityAvailabilityStatus>"
        f"<EnableExpress>false</EnableExpress>"
        f"<MaxMessageSizeInKilobytes>256</MaxMessageSizeInKilobytes>"
        f"</QueueDescription></content></entry>"
    )


def _feed_xml(base_url: str, entries: list[str], title: str) -> str:
    return (
        f'<feed xmlns="{_ATOM}"><title type="text">{escape(title)}</title>'
        f"<id>{escape(base_url)}</id><updated>{_timestamp(0)}</updated>"
        + "".join(entries)
        + "</feed>"
    )


def _error_xml(code: int, detail: str) -> str:
    return f"<Error><Code>{code}</Code><Detail>{escape(detail)}</Detail></Error>"


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        pass  # one line per request on stderr otherwise

    def _send(self, status: int, body: str) -> None:
        data = body.encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", "application/atom+xml;type=entry;charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _name(self) -> str:
        return unquote(urlparse(self.path).path).strip("/")

    def _base_url(self) -> str:
        return f"https://{self.headers.get('Host', 'localhost')}"

    def do_GET(self) -> None:
        emulator = self.server.emulator
        name = self._name()
        now = emulator.clock()
        with emulator.lock:
            if name.lower() == "$resources/queues":
                entries = [_entry_xml(self._base_url(), q, now) for q in emulator.store.queues()]
                self._send(
                    200, _feed_xml(self._base_url() + "/$Resources/queues", entries, "Queues")
                )
                return
            queue = emulator.store.find(name)
            if queue is None or queue.is_dead_letter:
                # the service answers an unknown entity with an empty feed, not a 404
                self._send(
                    200, _feed_xml(self._base_url() + "/" + name, [], "Publicly Listed Services")
                )
                return
            self._send(200, _entry_xml(self._base_url(), queue, now))

    def do_PUT(self) -> None:
        emulator = self.server.emulator
        name = self._name()
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        update = self.headers.get("If-Match") is not None
        now = emulator.clock()
        with emulator.lock:
            existing = emulator.store.find(name)
            if not _NAME.match(name) or name.lower().endswith("$deadletterqueue"):
                self._send(400, _error_xml(400, f"invalid entity name {name!r}"))
                return
            try:
                base = existing.options if existing is not None else QueueOptions()
                options = _options_from_xml(body, base)
            except (ValueError, ElementTree.ParseError) as exc:
                self._send(400, _error_xml(400, str(exc)))
                return
            if existing is not None and not update:
                self._send(409, _error_xml(409, f"The messaging entity '{name}' already exists."))
                return
            if existing is None and update:
                self._send(404, _error_xml(404, f"The messaging entity '{name}' was not found."))
                return
            if existing is not None:
                existing.options = options
                if existing.dead_letter is not None:
                    existing.dead_letter.options = options
                queue = existing
            else:
                try:
                    queue = emulator.store.create_queue(name, options, now)
                except BrokerError as exc:
                    self._send(exc.status_code, _error_xml(exc.status_code, exc.description))
                    return
            self._send(200 if update else 201, _entry_xml(self._base_url(), queue, now))

    def do_DELETE(self) -> None:
        emulator = self.server.emulator
        name = self._name()
        with emulator.lock:
            try:
                emulator.store.delete_queue(name)
            except BrokerError:
                self._send(404, _error_xml(404, f"The messaging entity '{name}' was not found."))
                return
        self._send(200, "")


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int], emulator: Namespace, *, listen: bool) -> None:
        super().__init__(address, _Handler, bind_and_activate=listen)
        self.emulator = emulator


class AdminServer:
    """The management API: on connections handed over by the front door, and on a port of
    its own when ``port`` is given (plain HTTP, loopback by default)."""

    def __init__(self, emulator: Namespace, host: str, port: int | None) -> None:
        listening = port is not None
        self._server = _Server((host, port or 0), emulator, listen=listening)
        self._thread: threading.Thread | None = None
        if listening:
            self._thread = threading.Thread(
                target=self._server.serve_forever,
                kwargs={"poll_interval": 0.1},
                name="servicebus-emulator-admin",
                daemon=True,
            )

    @property
    def port(self) -> int | None:
        return None if self._thread is None else int(self._server.server_address[1])

    def handle(self, connection: socket.socket, address: tuple[str, int]) -> None:
        """Serve one HTTP connection accepted elsewhere (on its own thread)."""
        self._server.process_request(connection, address)

    def start(self) -> None:
        if self._thread is not None:
            self._thread.start()

    def stop(self) -> None:
        if self._thread is not None:
            self._server.shutdown()
            self._thread.join(5)
        self._server.server_close()
