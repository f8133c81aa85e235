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


def test_runs_write_nulls_into_the_text_and_keep_the_rows_in_order() -> None:
    rows = [
        (1, "", "a", 0, b"x", None, None, None, None, None, 1.0, 1.0, None),
        (1, "", "b", 0, b"y", None, None, None, None, None, 2.0, 2.0, None),
        (1, "s", "c", 1, b"z", '{"k":1}', "corr", "s", 5, "2026-12-02T00:00Z", 3.0, 3.0, 8.0),
        (1, "", "d", 0, b"w", None, None, None, None, None, 4.0, 4.0, None),
    ]
    for statements in (Statements(sqlite_dialect("qr_")), Statements(postgres_dialect("j"))):
        runs = list(statements.runs("insert_message", rows))
        assert [[row[2] for row in run] for _, run in runs] == [["a", "b"], ["c"], ["d"]]
        (sparse, first), (full, middle), (again, _) = runs
        assert sparse == again and full == statements.insert_message
        assert first[0] == (1, "", "a", 0, b"x", 1.0, 1.0) and middle[0] == rows[2]
        placeholders = sparse.count("?") or len(re.findall(r"\$\d+", sparse))
        assert placeholders == 7 and sparse.count("NULL") >= 6
        numbers = [int(n) for n in re.findall(r"\$(\d+)", sparse)]
        assert numbers in ([], list(range(1, 8)))  # PostgreSQL's still count from 1
