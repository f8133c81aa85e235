"""The adapter's tables, their version, and the migrations between versions.

The schema lives in its own namespace (a table prefix on SQLite, a schema on PostgreSQL) and
records its version in ``schema_version``. `migration_plan` says what to run to bring a
database at version ``found`` to `SCHEMA_VERSION`; a database from a newer release is refused
with `SchemaVersionError` rather than written to by code that does not know its rules.
"""

from __future__ import annotations

from typing import Final

from ..._errors import ConfigurationError
from ._statements import Dialect

__all__ = ["SCHEMA_VERSION", "SchemaVersionError", "migration_plan", "version_statements"]

#: The version this code writes and understands.
SCHEMA_VERSION: Final = 2


class SchemaVersionError(ConfigurationError):
    """The database was created or migrated by a newer queue-runtime; upgrade to use it."""


# migrations[n] brings version n to n + 1; version 0 is an empty namespace
_MIGRATIONS: Final[tuple[tuple[str, ...], ...]] = (
    (
        """CREATE TABLE {ns}queues (
            id {serial},
            name TEXT NOT NULL UNIQUE,
            dead_letter_id {bigint},
            is_dead_letter INTEGER NOT NULL,
            requires_session INTEGER NOT NULL,
            max_delivery_count INTEGER NOT NULL,
            lock_duration {double} NOT NULL,
            default_ttl {double},
            dead_letter_on_expiration INTEGER NOT NULL)""",
        """CREATE TABLE {ns}messages (
            seq {serial},
            queue_id {bigint} NOT NULL REFERENCES {ns}queues (id) ON DELETE CASCADE,
            partition_key TEXT NOT NULL,
            message_id TEXT NOT NULL,
            body {blob} NOT NULL,
            attributes TEXT,
            correlation_id TEXT,
            session_id TEXT,
            time_to_live_us {bigint},
            scheduled_at TEXT,
            enqueued_at {double} NOT NULL,
            visible_at {double} NOT NULL,
            expires_at {double},
            delivery_count INTEGER NOT NULL DEFAULT 0,
            lock_token {bigint} NOT NULL DEFAULT 0,
            locked_until {double} NOT NULL DEFAULT 0,
            dead_lettered INTEGER NOT NULL DEFAULT 0,
            dead_letter_reason TEXT,
            dead_letter_description TEXT)""",
        "CREATE INDEX {ix}messages_order ON {ns}messages (queue_id, partition_key, seq)",
        "CREATE UNIQUE INDEX {ix}messages_dedup ON {ns}messages (queue_id, message_id)"
        " WHERE dead_lettered = 0",
        "CREATE INDEX {ix}messages_expiring ON {ns}messages (queue_id, expires_at)"
        " WHERE expires_at IS NOT NULL",
        """CREATE TABLE {ns}sessions (
            queue_id {bigint} NOT NULL REFERENCES {ns}queues (id) ON DELETE CASCADE,
            session_id TEXT NOT NULL,
            lease_token {bigint} NOT NULL DEFAULT 0,
            lease_until {double} NOT NULL DEFAULT 0,
            state {blob},
            PRIMARY KEY (queue_id, session_id))""",
    ),
    # 2: session messages of every session in sequence order, so the next ready session is
    # found without sorting the queue
    (
        "CREATE INDEX {ix}messages_sessions_order ON {ns}messages (queue_id, seq)"
        " WHERE partition_key <> ''",
    ),
)


def version_statements(dialect: Dialect) -> tuple[str, str]:
    """(create the version table if absent, read the version)."""
    return (
        dialect.render("CREATE TABLE IF NOT EXISTS {ns}schema_version (version INTEGER NOT NULL)"),
        dialect.render("SELECT version FROM {ns}schema_version"),
    )


def migration_plan(dialect: Dialect, found: int | None, where: str) -> list[str]:
    """The statements that take the schema from version ``found`` (None: new) to the current.

    Raises `SchemaVersionError` when ``found`` is newer than this code.
    """
    version = found or 0
    if version > SCHEMA_VERSION:
        raise SchemaVersionError(
            f"{where} has queue-runtime schema version {version}; this release understands "
            f"up to {SCHEMA_VERSION}: upgrade queue-runtime"
        )
    plan = [dialect.render(sql) for step in _MIGRATIONS[version:] for sql in step]
    if plan:
        if found is None:
            plan.append(
                dialect.render(f"INSERT INTO {{ns}}schema_version VALUES ({SCHEMA_VERSION})")
            )
        else:
            plan.append(
                dialect.render(f"UPDATE {{ns}}schema_version SET version = {SCHEMA_VERSION}")
            )
    return plan
