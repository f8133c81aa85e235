"""The statements are written once and rendered per dialect: every one renders for both, with
PostgreSQL's numbered placeholders in order and each dialect's own fragments."""

from __future__ import annotations

import re

import pytest

from queue_runtime.adapters.sql._schema import SCHEMA_VERSION, SchemaVersionError, migration_plan
from queue_runtime.adapters.sql._statements import _SQL, Statements
from queue_runtime.adapters.sql.postgres import postgres_dialect
from queue_runtime.adapters.sql.sqlite import sqlite_dialect


def test_every_statement_renders_for_both_dialects() -> None:
    sqlite, postgres = Statements(sqlite_dialect("qr_")), Statements(postgres_dialect("jobs"))
    for name, template in _SQL.items():
        lite, pg = getattr(sqlite, name), getattr(postgres, name)
        assert "{" not in lite and "{" not in pg, name
        assert lite.count("?") == template.count("?") + ("{seq_in_list}" in template), name
        numbers = [int(n) for n in re.findall(r"\$(\d+)", pg)]
        assert numbers == list(range(1, len(numbers) + 1)) and "?" not in pg, name
        assert "qr_" in lite and '"jobs".' in pg
    assert "SKIP LOCKED" in postgres.lock_next and "SKIP LOCKED" not in sqlite.lock_next


def test_migrations_run_from_any_older_version_and_refuse_newer_ones() -> None:
    dialect = sqlite_dialect("qr_")
    fresh = migration_plan(dialect, None, "test")
    assert fresh[-1].startswith("INSERT INTO qr_schema_version")
    assert migration_plan(dialect, SCHEMA_VERSION, "test") == []
    with pytest.raises(SchemaVersionError, match="upgrade queue-runtime"):
        migration_plan(dialect, SCHEMA_VERSION + 1, "test")
