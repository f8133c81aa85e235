"""``queue-runtime queues create|delete|stats``."""

from __future__ import annotations

import dataclasses

import click

from queue_runtime import QueueName, UnsupportedOperation

from ._common import Settings, open_client, pass_settings, run
from ._render import echo_json, print_fields, say

__all__ = ["COMMANDS"]

_SECONDS = click.FloatRange(min=0, min_open=True)


@click.group()
def queues() -> None:
    """Create, delete and count queues."""


@queues.command()
@click.argument("name")
@click.option("--sessions", is_flag=True, help="Messages are ordered per session id.")
@click.option(
    "--max-delivery-count",
    type=click.IntRange(min=1),
    default=10,
    show_default=True,
    help="Deliveries before a message is dead-lettered.",
)
@click.option(
    "--lock-duration", type=_SECONDS, default=30.0, show_default=True, help="Lock, in seconds."
)
@click.option("--ttl", type=_SECONDS, default=None, help="Default message time to live, seconds.")
@click.option(
    "--dead-letter-on-expiration", is_flag=True, help="Expired messages go to the dead letters."
)
@pass_settings
def create(
    settings: Settings,
    name: str,
    sessions: bool,
    max_delivery_count: int,
    lock_duration: float,
    ttl: float | None,
    dead_letter_on_expiration: bool,
) -> None:
    """Create queue NAME and its dead-letter queue (nothing changes if it exists alike)."""

    async def main() -> None:
        async with open_client(settings) as client:
            await client.create_queue(
                QueueName(name),
                requires_session=sessions,
                max_delivery_count=max_delivery_count,
                lock_duration=lock_duration,
                default_message_ttl=ttl,
                dead_letter_on_expiration=dead_letter_on_expiration,
            )

    run(main())
    say(f"queue {name} is ready")


@queues.command()
@click.argument("name")
@pass_settings
def delete(settings: Settings, name: str) -> None:
    """Delete queue NAME, its dead-letter queue and every message in them."""

    async def main() -> None:
        async with open_client(settings) as client:
            await client.delete_queue(QueueName(name))

    run(main())
    say(f"queue {name} deleted")


@queues.command()
@click.argument("name")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@pass_settings
def stats(settings: Settings, name: str, as_json: bool) -> None:
    """Active, locked, scheduled and dead-lettered messages of NAME, where the adapter counts
    (``get_queue_statistics``; where it cannot, this says so and exits 1)."""

    async def main() -> dict[str, object]:
        async with open_client(settings, queue=name) as client:
            if "statistics" not in client.capabilities:
                raise UnsupportedOperation(
                    f"{type(client).__name__} cannot count the messages of a queue "
                    "(its capabilities lack 'statistics')"
                )
            counts = await client.get_queue_statistics(QueueName(name))
            return {**dataclasses.asdict(counts), "total": counts.total}

    values = run(main())
    if as_json:
        echo_json({"queue": name, **values})
    else:
        print_fields(
            [("queue", name), *((k, "unknown" if v is None else v) for k, v in values.items())]
        )


COMMANDS = [queues]
