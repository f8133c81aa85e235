"""Every SQL statement of the adapter, written once and rendered for a `Dialect`.

Statements are written with ``?`` placeholders and ``{t}``-style table names; a dialect turns
them into its own text (``$1`` placeholders and a schema for PostgreSQL, a table prefix for
SQLite) and supplies the few fragments that differ (column types, ``FOR UPDATE SKIP LOCKED``).
"""

from __future__ import annotations

import operator
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Final

__all__ = ["Dialect", "Statements", "MESSAGE_COLUMNS"]


@dataclass(frozen=True, slots=True)
class Dialect:
    """What differs between the databases, as text fragments."""

    name: str
    #: Prepended to every table name: ``qr_`` (SQLite) or ``"schema".`` (PostgreSQL).
    namespace: str
    #: Prepended to index names (which PostgreSQL does not schema-qualify).
    index_prefix: str
    #: ``$1, $2, ...`` instead of ``?``.
    numbered_placeholders: bool
    serial: str
    bigint: str
    double: str
    blob: str
    #: Appended to the row-picking subqueries (lets concurrent consumers pass each other).
    skip_locked: str
    #: ``seq`` is one of a list passed as one parameter (encoded by `list_parameter`).
    seq_in_list: str
    #: Encodes a list of ints as that parameter.
    list_parameter: Callable[[list[int]], Any]
    #: Passes a message body the way the driver binds it fastest.
    blob_parameter: Callable[[bytes], Any] = bytes

    def render(self, sql: str) -> str:
        text = sql.format(
            ns=self.namespace,
            ix=self.index_prefix,
            serial=self.serial,
            bigint=self.bigint,
            double=self.double,
            blob=self.blob,
            skip_locked=self.skip_locked,
            seq_in_list=self.seq_in_list,
        )
        if self.numbered_placeholders:
            counter = iter(range(1, 1_000_000))
            text = re.sub(r"\?", lambda _: f"${next(counter)}", text)
        return " ".join(text.split())


#: The columns a delivered or peeked message is read from, in `codec.received` order.
MESSAGE_COLUMNS: Final = (
    "seq, message_id, body, attributes, correlation_id, session_id, time_to_live_us, "
    "scheduled_at, enqueued_at, delivery_count, locked_until, dead_letter_reason, "
    "dead_letter_description"
)

_QUEUE_COLUMNS: Final = (
    "id, name, dead_letter_id, is_dead_letter, requires_session, max_delivery_count, "
    "lock_duration, default_ttl, dead_letter_on_expiration"
)

# a message is available when visible and not under a live lock
_AVAILABLE: Final = "visible_at <= ? AND (lock_token = 0 OR locked_until <= ?)"
# ... and deliverable when also neither spent nor expired (those wait for `sweep` to move them)
_DELIVERABLE: Final = (
    f"{_AVAILABLE} AND delivery_count < ? AND (expires_at IS NULL OR expires_at > ?)"
)

_LOCK: Final = (
    "UPDATE {ns}messages SET lock_token = ?, locked_until = ?, delivery_count = delivery_count + 1"
)
_NEXT: Final = (
    "SELECT seq FROM {ns}messages"
    f" WHERE queue_id = ? AND partition_key = ? AND {_DELIVERABLE} ORDER BY seq"
)
_LOCKED: Final = f"RETURNING {MESSAGE_COLUMNS}"
# a live lease's expiry (queue id, session id, lease token, now)
_LEASE_UNTIL: Final = (
    "SELECT lease_until FROM {ns}sessions WHERE queue_id = ? AND session_id = ?"
    " AND lease_token = ? AND lease_until > ?"
)

_TO_DEAD_LETTER: Final = (
    "queue_id = ?, partition_key = '', lock_token = 0, locked_until = 0, expires_at = NULL, "
    "dead_lettered = 1"
)

_SQL: Final[dict[str, str]] = {
    # -- queues ---------------------------------------------------------------------------
    "select_queue": f"SELECT {_QUEUE_COLUMNS} FROM {{ns}}queues WHERE name = ?",
    "insert_queue": (
        "INSERT INTO {ns}queues (name, is_dead_letter, requires_session, max_delivery_count,"
        " lock_duration, default_ttl, dead_letter_on_expiration) VALUES (?, ?, ?, ?, ?, ?, ?)"
        " ON CONFLICT (name) DO NOTHING RETURNING id"
    ),
    "link_dead_letter": "UPDATE {ns}queues SET dead_letter_id = ? WHERE id = ?",
    "delete_queues": "DELETE FROM {ns}queues WHERE id = ? OR id = ?",
    # -- sending ----------------------------------------------------------------------------
    "insert_message": (
        "INSERT INTO {ns}messages (queue_id, partition_key, message_id, body, attributes,"
        " correlation_id, session_id, time_to_live_us, scheduled_at, enqueued_at, visible_at,"
        " expires_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
        " ON CONFLICT (queue_id, message_id) WHERE dead_lettered = 0 DO NOTHING"
    ),
    # -- what falls due with time -------------------------------------------------------------
    "dead_letter_spent": (
        f"UPDATE {{ns}}messages SET {_TO_DEAD_LETTER}, dead_letter_reason = ?,"
        " dead_letter_description = 'delivered ' || delivery_count || ' times without being"
        " completed' WHERE seq IN (SELECT seq FROM {ns}messages WHERE queue_id = ?"
        " AND (lock_token = 0 OR locked_until <= ?) AND delivery_count >= ? {skip_locked})"
    ),
    "dead_letter_expired": (
        f"UPDATE {{ns}}messages SET {_TO_DEAD_LETTER}, dead_letter_reason = ?,"
        " dead_letter_description = ? WHERE seq IN (SELECT seq FROM {ns}messages"
        f" WHERE queue_id = ? AND expires_at <= ? AND {_AVAILABLE} {{skip_locked}})"
    ),
    "delete_expired": (
        "DELETE FROM {ns}messages WHERE seq IN (SELECT seq FROM {ns}messages"
        f" WHERE queue_id = ? AND expires_at <= ? AND {_AVAILABLE} {{skip_locked}})"
    ),
    # -- receiving ----------------------------------------------------------------------------
    "lock_next": f"{_LOCK} WHERE seq IN ({_NEXT} LIMIT ? {{skip_locked}}) {_LOCKED}",
    # one message: `=` needs no temporary table for the subquery's rows (cheaper, and
    # SQLite's allocation for one can cost page faults on every call)
    "lock_one": f"{_LOCK} WHERE seq = ({_NEXT} LIMIT 1 {{skip_locked}}) {_LOCKED}",
    # a session's: the same, only while its lease holds, locked until the lease's expiry
    "lock_leased_one": (
        f"UPDATE {{ns}}messages SET lock_token = ?, locked_until = ({_LEASE_UNTIL}),"
        f" delivery_count = delivery_count + 1 WHERE seq = ({_NEXT} LIMIT 1 {{skip_locked}})"
        f" AND EXISTS ({_LEASE_UNTIL}) {_LOCKED}"
    ),
    "lock_leased_next": (
        f"UPDATE {{ns}}messages SET lock_token = ?, locked_until = ({_LEASE_UNTIL}),"
        f" delivery_count = delivery_count + 1 WHERE seq IN ({_NEXT} LIMIT ? {{skip_locked}})"
        f" AND EXISTS ({_LEASE_UNTIL}) {_LOCKED}"
    ),
    "peek": (
        f"SELECT {MESSAGE_COLUMNS} FROM {{ns}}messages WHERE queue_id = ? AND visible_at <= ?"
        " AND seq >= ? ORDER BY seq LIMIT ?"
    ),
    "peek_session": (
        f"SELECT {MESSAGE_COLUMNS} FROM {{ns}}messages WHERE queue_id = ?"
        " AND partition_key = ? AND visible_at <= ? AND seq >= ? ORDER BY seq LIMIT ?"
    ),
    # -- settling -----------------------------------------------------------------------------
    "complete": ("DELETE FROM {ns}messages WHERE seq = ? AND lock_token = ? AND locked_until > ?"),
    # a session message: the same, only while its session's lease holds (one statement)
    "complete_leased": (
        "DELETE FROM {ns}messages WHERE seq = ? AND lock_token = ? AND locked_until > ?"
        " AND EXISTS (SELECT 1 FROM {ns}sessions WHERE queue_id = ? AND session_id = ?"
        " AND lease_token = ? AND lease_until > ?)"
    ),
    "complete_group": (
        "DELETE FROM {ns}messages WHERE lock_token = ? AND locked_until > ? AND {seq_in_list}"
        " RETURNING seq"
    ),
    "unlock": (
        "UPDATE {ns}messages SET lock_token = 0, locked_until = 0"
        " WHERE seq = ? AND lock_token = ? AND locked_until > ? RETURNING delivery_count"
    ),
    "dead_letter_locked": (
        f"UPDATE {{ns}}messages SET {_TO_DEAD_LETTER}, dead_letter_reason = ?,"
        " dead_letter_description = ? WHERE seq = ? AND lock_token = ? AND locked_until > ?"
    ),
    "dead_letter_one": (
        f"UPDATE {{ns}}messages SET {_TO_DEAD_LETTER}, dead_letter_reason = ?,"
        " dead_letter_description = 'delivered ' || delivery_count || ' times without being"
        " completed' WHERE seq = ?"
    ),
    "renew_lock": (
        "UPDATE {ns}messages SET locked_until = ?"
        " WHERE seq = ? AND lock_token = ? AND locked_until > ?"
    ),
    # -- sessions -----------------------------------------------------------------------------
    "lease_session": (
        "INSERT INTO {ns}sessions AS s (queue_id, session_id, lease_token, lease_until)"
        " VALUES (?, ?, ?, ?) ON CONFLICT (queue_id, session_id) DO UPDATE"
        " SET lease_token = excluded.lease_token, lease_until = excluded.lease_until"
        " WHERE s.lease_token = 0 OR s.lease_until <= ? RETURNING lease_until"
    ),
    "next_ready_session": (
        "SELECT m.partition_key FROM {ns}messages m WHERE m.queue_id = ? AND m.partition_key <> ''"
        " AND m.visible_at <= ? AND (m.lock_token = 0 OR m.locked_until <= ?)"
        " AND m.delivery_count < ? AND (m.expires_at IS NULL OR m.expires_at > ?)"
        " AND NOT EXISTS (SELECT 1 FROM {ns}sessions s WHERE s.queue_id = m.queue_id"
        " AND s.session_id = m.partition_key AND s.lease_token <> 0 AND s.lease_until > ?)"
        " ORDER BY m.seq LIMIT 1"
    ),
    "check_lease": (
        "SELECT lease_until FROM {ns}sessions WHERE queue_id = ? AND session_id = ?"
        " AND lease_token = ? AND lease_until > ?"
    ),
    "renew_lease": (
        "UPDATE {ns}sessions SET lease_until = ? WHERE queue_id = ? AND session_id = ?"
        " AND lease_token = ? AND lease_until > ?"
    ),
    "renew_session_messages": (
        "UPDATE {ns}messages SET locked_until = ? WHERE queue_id = ? AND partition_key = ?"
        " AND lock_token <> 0 AND locked_until > ?"
    ),
    "end_lease": (
        "UPDATE {ns}sessions SET lease_token = 0, lease_until = 0 WHERE queue_id = ?"
        " AND session_id = ? AND lease_token = ? AND lease_until > ?"
    ),
    "dead_letter_spent_in_session": (
        f"UPDATE {{ns}}messages SET {_TO_DEAD_LETTER}, dead_letter_reason = ?,"
        " dead_letter_description = 'delivered ' || delivery_count || ' times without being"
        " completed' WHERE queue_id = ? AND partition_key = ? AND lock_token <> 0"
        " AND locked_until > ? AND delivery_count >= ?"
    ),
    "unlock_session_messages": (
        "UPDATE {ns}messages SET lock_token = 0, locked_until = 0 WHERE queue_id = ?"
        " AND partition_key = ? AND lock_token <> 0 AND locked_until > ?"
    ),
    "forget_session": (
        "DELETE FROM {ns}sessions WHERE queue_id = ? AND session_id = ? AND lease_token = 0"
        " AND state IS NULL"
    ),
    # -- introspection ------------------------------------------------------------------------
    "count_messages": (
        "SELECT COALESCE(SUM(CASE WHEN visible_at <= ? AND (lock_token = 0 OR locked_until <= ?)"
        " THEN 1 ELSE 0 END), 0), COALESCE(SUM(CASE WHEN lock_token <> 0 AND locked_until > ?"
        " THEN 1 ELSE 0 END), 0), COALESCE(SUM(CASE WHEN visible_at > ? THEN 1 ELSE 0 END), 0)"
        " FROM {ns}messages WHERE queue_id = ?"
    ),
    "count_queue": "SELECT COUNT(*) FROM {ns}messages WHERE queue_id = ?",
    "count_sessions": (
        "SELECT COUNT(*) FROM (SELECT partition_key FROM {ns}messages WHERE queue_id = ?"
        " AND partition_key <> '' UNION SELECT session_id FROM {ns}sessions WHERE queue_id = ?"
        " AND (state IS NOT NULL OR (lease_token <> 0 AND lease_until > ?))) AS known"
    ),
    "count_leased": (
        "SELECT COUNT(*) FROM {ns}sessions WHERE queue_id = ? AND lease_token <> 0"
        " AND lease_until > ?"
    ),
    "get_state": "SELECT state FROM {ns}sessions WHERE queue_id = ? AND session_id = ?",
    "set_state": "UPDATE {ns}sessions SET state = ? WHERE queue_id = ? AND session_id = ?",
}


def _same(row: tuple[Any, ...]) -> tuple[Any, ...]:
    return row


def _one(index: int) -> Callable[[tuple[Any, ...]], tuple[Any, ...]]:
    return lambda row: (row[index],)


class Statements:
    """The statements above rendered for one dialect, as attributes (``st.lock_next``)."""

    def __init__(self, dialect: Dialect) -> None:
        self.dialect = dialect
        for name, sql in _SQL.items():
            setattr(self, name, dialect.render(sql))
        self._bindings: dict[
            tuple[str, tuple[type, ...]], tuple[str, Callable[[tuple[Any, ...]], tuple[Any, ...]]]
        ] = {}

    def runs(
        self, name: str, rows: Sequence[tuple[Any, ...]]
    ) -> list[tuple[str, list[tuple[Any, ...]]]]:
        """Statement ``name`` over ``rows``, in order, as runs of rows with NULLs in the same
        places: each run's statement has ``NULL`` written where those parameters were, and its
        rows leave them out. (Binding ``None`` costs Python 3.11's sqlite3 a failed adapter
        lookup per value, several times the cost of the rest of a small row.)"""
        if len(rows) == 1:  # most sends
            row = rows[0]
            sql, keep = self._binding((name, tuple(map(type, row))))
            return [(sql, [keep(row)])]
        runs: list[tuple[str, list[tuple[Any, ...]]]] = []
        shape: tuple[str, tuple[type, ...]] | None = None
        run: list[tuple[Any, ...]] = []
        for row in rows:
            found = (name, tuple(map(type, row)))
            if found != shape:
                shape = found
                sql, keep = self._binding(found)
                run = []
                runs.append((sql, run))
            run.append(keep(row))
        return runs

    def _binding(
        self, shape: tuple[str, tuple[type, ...]]
    ) -> tuple[str, Callable[[tuple[Any, ...]], tuple[Any, ...]]]:
        """The statement for rows of ``shape`` (name, parameter types), and what of a row it
        binds."""
        if (binding := self._bindings.get(shape)) is None:
            name, types = shape
            nulls = {i for i, kind in enumerate(types) if kind is type(None)}
            pieces = _SQL[name].split("?")
            text = pieces[0]
            for index, piece in enumerate(pieces[1:]):
                text += ("NULL" if index in nulls else "?") + piece
            kept = [i for i in range(len(types)) if i not in nulls]
            keep: Callable[[tuple[Any, ...]], tuple[Any, ...]]
            if not nulls:
                keep = _same
            elif len(kept) == 1:
                keep = _one(kept[0])
            else:
                keep = operator.itemgetter(*kept)
            binding = self._bindings[shape] = (self.dialect.render(text), keep)
        return binding

    # declared for type checkers; filled in by __init__
    select_queue: str
    insert_queue: str
    link_dead_letter: str
    delete_queues: str
    insert_message: str
    dead_letter_spent: str
    dead_letter_expired: str
    delete_expired: str
    lock_next: str
    lock_one: str
    peek: str
    peek_session: str
    complete: str
    complete_leased: str
    lock_leased_one: str
    lock_leased_next: str
    complete_group: str
    unlock: str
    dead_letter_locked: str
    dead_letter_one: str
    renew_lock: str
    lease_session: str
    next_ready_session: str
    check_lease: str
    renew_lease: str
    renew_session_messages: str
    end_lease: str
    dead_letter_spent_in_session: str
    unlock_session_messages: str
    forget_session: str
    count_messages: str
    count_queue: str
    count_sessions: str
    count_leased: str
    get_state: str
    set_state: str
