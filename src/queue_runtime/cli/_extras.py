"""``queue-runtime worker``, ``emulator servicebus`` and ``ingress github|webhook``: commands
that run until stopped, each built on an optional part loaded only when it is asked for."""

from __future__ import annotations

import contextlib
import importlib
import inspect
import os
import signal
import sys
from collections.abc import Callable, Iterator
from typing import Any

import click

from queue_runtime import ConfigurationError, QueueName, create_client

from ._common import Settings, open_client, pass_settings, queue_url, run
from ._operations import stop_on_signals
from ._render import say

__all__ = ["COMMANDS", "load_handler"]

_STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


def _optional(module: str, attribute: str | None, what: str, extra: str | None = None) -> Any:
    """``module`` (or its ``attribute``), or a `ConfigurationError` naming what is missing:
    the ``pip install`` of ``extra`` when a third-party module is, as `create_client` says it."""
    try:
        loaded = importlib.import_module(module)
    except ImportError as exc:
        if extra is not None and not (exc.name or "").startswith("queue_runtime"):
            raise ConfigurationError(
                f"{what} needs an extra: pip install 'queue-runtime[{extra}]' "
                f"(missing module {exc.name!r})"
            ) from exc
        raise ConfigurationError(
            f"{what} is not available in this installation (missing module {exc.name!r})"
        ) from exc
    if attribute is None:
        return loaded
    found = getattr(loaded, attribute, None)
    if found is None:
        raise ConfigurationError(
            f"{what} is not available in this version ({module}.{attribute} is missing)"
        )
    return found


def load_handler(spec: str) -> Callable[..., Any]:
    """The callable named ``MODULE:ATTRIBUTE`` (the module found from the current directory)."""
    module_name, sep, attribute = spec.partition(":")
    if not sep or not module_name or not attribute:
        raise click.BadParameter(f"{spec!r} is not MODULE:HANDLER", param_hint="MODULE:HANDLER")
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        target: Any = importlib.import_module(module_name)
    except ImportError as exc:
        raise ConfigurationError(f"cannot import handler module {module_name!r}: {exc}") from exc
    for part in attribute.split("."):
        target = getattr(target, part, None)
        if target is None:
            raise ConfigurationError(f"module {module_name!r} has no {attribute!r}")
    if not callable(target):
        raise ConfigurationError(f"{spec} is not callable")
    return target  # type: ignore[no-any-return]


@click.command()
@click.argument("handler", metavar="MODULE:HANDLER")
@click.option("--queue", "queue_name", required=True, metavar="NAME", help="Queue to process.")
@click.option(
    "--concurrency",
    type=click.IntRange(min=1),
    default=16,
    show_default=True,
    help="Handlers at once on a queue without sessions.",
)
@click.option(
    "--sessions",
    type=click.IntRange(min=1),
    default=8,
    show_default=True,
    help="Sessions at once on a session queue.",
)
@pass_settings
def worker(
    settings: Settings, handler: str, queue_name: str, concurrency: int, sessions: int
) -> None:
    """Process queue NAME with async MODULE:HANDLER(message) until SIGTERM or SIGINT."""
    queue = QueueName(queue_name)
    function = load_handler(handler)
    processor_type = _optional("queue_runtime", "Processor", "the worker (queue_runtime.Processor)")

    async def main() -> None:
        async with open_client(settings, queue=queue) as client:
            processor = processor_type(
                client,
                queue,
                function,
                max_concurrent_sessions=sessions,
                max_concurrency=concurrency,
            )
            await processor.run()

    run(main())


@click.group()
def emulator() -> None:
    """Local emulators of queue providers, to try code against."""


@emulator.command("servicebus")
@click.option("--port", type=click.IntRange(0, 65535), default=5672, show_default=True)
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option(
    "--admin-port",
    type=click.IntRange(-1, 65535),
    default=5300,
    show_default=True,
    help="Port of its management API (0: any free port, -1: none).",
)
def servicebus(port: int, host: str, admin_port: int) -> None:
    """Run the Service Bus emulator and print its connection string, until SIGINT/SIGTERM."""
    emulator_type = _optional(
        "queue_runtime.testing.servicebus_emulator",
        "ServiceBusEmulator",
        "the Service Bus emulator",
        extra="emulator",
    )

    async def main() -> None:
        instance = emulator_type(port, host=host, admin_port=None if admin_port < 0 else admin_port)
        try:
            await _maybe_await(instance.start())
        except OSError as exc:  # a port in use names the flag that changes it
            raise ConfigurationError(f"the emulator cannot listen: {exc}") from exc
        try:
            # the handlers go in before the connection string is printed: whoever reads it may
            # stop the emulator at once
            async with stop_on_signals() as stop:
                click.echo(f"AZURE_SERVICEBUS_CONNECTION_STRING={instance.connection_string}")
                endpoint = getattr(instance, "admin_endpoint", None)
                if endpoint is not None:
                    click.echo(f"management API: http://{endpoint}")
                sys.stdout.flush()
                await stop.wait()
        finally:
            await _maybe_await(instance.stop())

    run(main())


async def _maybe_await(value: object) -> None:
    if inspect.isawaitable(value):
        await value


@click.group()
def ingress() -> None:
    """Serve a webhook endpoint that verifies signatures and enqueues each event."""


_serve_options = [
    click.option("--queue", "queue_name", required=True, metavar="NAME", help="Target queue."),
    click.option("--host", default="127.0.0.1", show_default=True),
    click.option("--port", type=click.IntRange(0, 65535), default=8000, show_default=True),
    click.option("--path", default="/webhook", show_default=True, help="Path of the endpoint."),
    click.option(
        "--max-body-size",
        type=click.IntRange(min=1),
        help="Largest body accepted, in bytes (default: the adapter's message size).",
    ),
]


def _serve_command(function: Callable[..., None]) -> Callable[..., None]:
    for option in reversed(_serve_options):
        function = option(function)
    return function


def _secret(variable: str) -> str:
    secret = os.environ.get(variable)
    if not secret:
        raise click.UsageError(f"set the webhook secret in ${variable}")
    return secret


@ingress.command("github")
@_serve_command
@pass_settings
def github(
    settings: Settings,
    queue_name: str,
    host: str,
    port: int,
    path: str,
    max_body_size: int | None,
) -> None:
    """GitHub webhooks (secret from $GITHUB_WEBHOOK_SECRET), ordered per PR, issue or ref."""
    _serve(
        settings,
        "github_app",
        host,
        port,
        queue=QueueName(queue_name),
        secret=_secret("GITHUB_WEBHOOK_SECRET"),
        path=path,
        max_body_size=max_body_size,
    )


@ingress.command("webhook")
@_serve_command
@click.option(
    "--secret-env",
    default="WEBHOOK_SECRET",
    show_default=True,
    help="Environment variable holding the HMAC secret.",
)
@click.option(
    "--signature-header",
    default="X-Signature-256",
    show_default=True,
    help="Header with the hex HMAC-SHA256 of the body.",
)
@click.option(
    "--signature-prefix", default="sha256=", show_default=True, help="Prefix of the signature."
)
@click.option("--session-pointer", metavar="POINTER", help="JSON pointer to the session id.")
@click.option("--session-header", metavar="HEADER", help="Header with the session id.")
@click.option("--message-id-header", metavar="HEADER", help="Header with the message id.")
@pass_settings
def webhook(
    settings: Settings,
    queue_name: str,
    host: str,
    port: int,
    path: str,
    max_body_size: int | None,
    secret_env: str,
    signature_header: str,
    signature_prefix: str,
    session_pointer: str | None,
    session_header: str | None,
    message_id_header: str | None,
) -> None:
    """Any JSON webhook signed with HMAC-SHA256 in a header; session from a pointer or header."""
    if session_pointer is not None and session_header is not None:
        raise click.UsageError("--session-pointer and --session-header exclude each other")
    _serve(
        settings,
        "webhook_app",
        host,
        port,
        queue=QueueName(queue_name),
        secret=_secret(secret_env),
        signature_header=signature_header,
        signature_prefix=signature_prefix,
        session_pointer=session_pointer,
        session_header=session_header,
        message_id_header=message_id_header,
        path=path,
        max_body_size=max_body_size,
    )


def _serve(settings: Settings, factory: str, host: str, port: int, **options: Any) -> None:
    """Serve ``queue_runtime.ingress.<factory>(client, **options)`` under uvicorn until
    SIGINT/SIGTERM; the app opens and closes the client."""
    url = queue_url(settings)
    build = _optional("queue_runtime.ingress", factory, "the ingress", extra="ingress")
    _optional("uvicorn", None, "the ingress server", extra="ingress")
    import uvicorn

    app = build(create_client(url), close_client=True, **options)
    config = uvicorn.Config(app, host=host, port=port, log_level="warning", lifespan="on")

    class Server(uvicorn.Server):
        """Stops gracefully on SIGINT/SIGTERM and exits 0 (uvicorn re-raises the signal)."""

        @contextlib.contextmanager
        def capture_signals(self) -> Iterator[None]:
            previous = {s: signal.signal(s, self.handle_exit) for s in _STOP_SIGNALS}
            try:
                yield
            finally:
                for signum, handler in previous.items():
                    signal.signal(signum, handler)

    say(f"listening on http://{host}:{port}")
    Server(config).run()


COMMANDS = [worker, emulator, ingress]
