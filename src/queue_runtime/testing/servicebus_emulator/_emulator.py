"""`ServiceBusEmulator`: the broker on its own reactor thread, started and stopped from Python."""

from __future__ import annotations

import contextlib
import errno
import logging
import threading
import time
from collections.abc import Callable, Iterator
from datetime import timedelta
from types import TracebackType
from typing import Any

from ._broker import Broker
from ._store import BrokerError, QueueOptions, Store

__all__ = ["PortInUse", "ServiceBusEmulator", "running_emulator"]


class PortInUse(OSError):
    """A port the emulator was asked to listen on is taken; says which one and the command-line
    flag that chooses another (both command lines name them alike)."""

    def __init__(self, what: str, option: str, host: str, port: int) -> None:
        super().__init__(errno.EADDRINUSE, f"{what} port {port} on {host} is already in use")
        #: The flag and its special values, e.g. ``--port (0: any free port)``.
        self.option = option

    def __str__(self) -> str:
        return f"{self.strerror}: choose another with {self.option}"


class _QuietResets(logging.Filter):
    """Clients (the SDK among them) often drop the socket right after their close frame;
    proton logs each such reset as an error, which is noise for a test broker."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "Connection reset by peer" not in record.getMessage()


_RESET_FILTER = _QuietResets()
_log = logging.getLogger("queue_runtime.servicebus_emulator")


def _seconds(value: float | timedelta | None) -> float | None:
    if isinstance(value, timedelta):
        return value.total_seconds()
    return value


class ServiceBusEmulator:
    """A local AMQP 1.0 broker that the unmodified ``azure-servicebus`` SDK talks to.

    ``port=0`` binds a free port (read `port` after `start`). With ``sas_key=(name, key)`` every
    ``$cbs`` token must be a SharedAccessSignature signed by that key; otherwise any token is
    accepted. ``admin_port`` (None: no admin server) serves the ATOM management API that
    ``ServiceBusAdministrationClient`` speaks; see specs/servicebus-emulator.md.
    """

    def __init__(
        self,
        port: int = 0,
        *,
        host: str = "127.0.0.1",
        sas_key: tuple[str, str] | None = None,
        admin_port: int | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._host = host
        self._requested_port = port
        self._requested_admin_port = admin_port
        self._sas_key = sas_key
        self._clock = clock
        self._lock = threading.RLock()
        self._store = Store()
        self._broker: Broker | None = None
        self._container: Any = None
        self._thread: threading.Thread | None = None
        self._admin: Any = None
        self._front: Any = None
        self._port: int | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._injector: Any = None

    # -- lifecycle -----------------------------------------------------------------------

    def start(self) -> ServiceBusEmulator:
        """Bind and serve on background threads; returns once the port is listening."""
        if self._thread is not None:
            raise RuntimeError("the emulator is already running")
        from proton.reactor import ApplicationEvent, Container, EventInjector

        from ._admin import AdminServer
        from ._frontdoor import FrontDoor

        self._ready.clear()
        self._error = None
        logging.getLogger("proton").addFilter(_RESET_FILTER)  # idempotent
        broker = Broker(
            self._store,
            self._lock,
            sas_key=self._sas_key,
            clock=self._clock,
            on_listening=self._ready.set,
        )
        container = Container(broker)
        container.container_id = "queue-runtime-servicebus-emulator"
        injector = EventInjector()
        container.selectable(injector)
        self._injector = injector

        def run() -> None:
            try:
                container.run()
            except BaseException as exc:  # surfaced to start(), logged otherwise
                _log.exception("the emulator's reactor stopped on an error")
                self._error = exc
                self._ready.set()

        self._broker, self._container = broker, container
        self._thread = threading.Thread(target=run, name="servicebus-emulator", daemon=True)
        self._thread.start()
        if not self._ready.wait(10) or self._error is not None:
            error = self._error
            self.stop()
            raise RuntimeError(f"the emulator did not start: {error!r}") from error

        def to_reactor(connection: Any, address: tuple[str, int]) -> None:
            broker.adopt(connection, address)
            injector.trigger(ApplicationEvent("emulator_adopt"))

        free = "0: any free port"
        listening = (
            "management API",
            f"--admin-port ({free}, -1: none)",
            self._requested_admin_port,
        )
        try:
            self._admin = AdminServer(self, self._host, self._requested_admin_port)
            self._admin.start()
            listening = ("AMQP", f"--port ({free})", self._requested_port)
            self._front = FrontDoor(
                self._host, self._requested_port, amqp=to_reactor, other=self._admin.handle
            )
        except OSError as exc:
            self.stop()
            what, option, port = listening
            if exc.errno == errno.EADDRINUSE and port is not None:
                raise PortInUse(what, option, self._host, port) from exc
            raise
        self._port = self._front.port
        self._front.start()
        return self

    def stop(self) -> None:
        """Close the listeners and every connection, and join the reactor thread."""
        if self._front is not None:
            self._front.stop()
            self._front = None
        if self._admin is not None:
            self._admin.stop()
            self._admin = None
        broker, container, thread = self._broker, self._container, self._thread
        self._broker = self._container = self._thread = None
        if broker is None or container is None or thread is None:
            return
        from proton.reactor import ApplicationEvent

        self._injector.trigger(ApplicationEvent("emulator_stop"))
        thread.join(10)
        self._injector.close()

    def __enter__(self) -> ServiceBusEmulator:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    # -- where to connect ----------------------------------------------------------------

    @property
    def port(self) -> int:
        if self._port is None:
            raise RuntimeError("the emulator is not started")
        return self._port

    @property
    def admin_port(self) -> int | None:
        """The management API's own port, if one was asked for (the AMQP port serves it too)."""
        return None if self._admin is None else self._admin.port

    @property
    def admin_endpoint(self) -> str:
        """``host:port`` where ``ServiceBusAdministrationClient`` reaches the management API."""
        return f"{self._host}:{self.admin_port or self.port}"

    @property
    def admin_connection_string(self) -> str:
        """A connection string for the management API (plain HTTP: see the spec)."""
        port = self.admin_port
        if port is None:
            return self.connection_string
        return self.connection_string.replace(f":{self.port};", f":{port};", 1)

    def clock(self) -> float:
        """The emulator's time (epoch seconds)."""
        return self._clock()

    @property
    def connection_string(self) -> str:
        """What ``ServiceBusClient.from_connection_string`` takes (no TLS, emulator mode)."""
        name, key = self._sas_key or ("RootManageSharedAccessKey", "emulator")
        return (
            f"Endpoint=sb://{self._host}:{self.port};SharedAccessKeyName={name};"
            f"SharedAccessKey={key};UseDevelopmentEmulator=true"
        )

    # -- entities ------------------------------------------------------------------------

    def create_queue(
        self,
        name: str,
        *,
        requires_session: bool = False,
        max_delivery_count: int = 10,
        lock_duration: float | timedelta = 60.0,
        default_message_time_to_live: float | timedelta | None = None,
        dead_lettering_on_message_expiration: bool = False,
        requires_duplicate_detection: bool = False,
        duplicate_detection_history_time_window: float | timedelta = 600.0,
    ) -> QueueOptions:
        """Create a queue (and its dead-letter queue); ValueError if it exists or is invalid."""
        options = QueueOptions(
            requires_session=requires_session,
            max_delivery_count=max_delivery_count,
            lock_duration=_seconds(lock_duration) or 0.0,
            default_message_time_to_live=_seconds(default_message_time_to_live),
            dead_lettering_on_message_expiration=dead_lettering_on_message_expiration,
            requires_duplicate_detection=requires_duplicate_detection,
            duplicate_detection_history_time_window=_seconds(
                duplicate_detection_history_time_window
            )
            or 0.0,
        )
        self.add_queue(name, options)
        return options

    def add_queue(self, name: str, options: QueueOptions) -> None:
        with self._lock:
            try:
                self._store.create_queue(name, options, self._clock())
            except BrokerError as exc:
                raise ValueError(exc.description) from None

    def delete_queue(self, name: str) -> None:
        """Delete a queue and its messages; ValueError if there is none."""
        with self._lock:
            try:
                self._store.delete_queue(name)
            except BrokerError as exc:
                raise ValueError(exc.description) from None

    def queue_options(self, name: str) -> QueueOptions | None:
        with self._lock:
            queue = self._store.find(name)
            return None if queue is None or queue.is_dead_letter else queue.options

    def queue_names(self) -> list[str]:
        with self._lock:
            return [queue.name for queue in self._store.queues()]

    def message_count(self, name: str) -> int:
        """Messages held by an entity (active, locked, deferred and scheduled)."""
        with self._lock:
            queue = self._store.find(name)
            return 0 if queue is None else len(queue.messages)

    @property
    def store(self) -> Store:
        """The namespace's entities (hold `lock` while touching them from another thread)."""
        return self._store

    @property
    def lock(self) -> threading.RLock:
        return self._lock


@contextlib.contextmanager
def running_emulator(
    *, sas_key: tuple[str, str] | None = None, admin_port: int | None = 0
) -> Iterator[ServiceBusEmulator]:
    """A started emulator on a free port, with its management API on another free port
    (``admin_port=None``: none), stopped on exit (for test fixtures)."""
    emulator = ServiceBusEmulator(0, sas_key=sas_key, admin_port=admin_port)
    with emulator:
        yield emulator
