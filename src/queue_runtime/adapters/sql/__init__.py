"""Durable SQL adapters: one core of rules and statements, two dialects.

- `sqlite` (``sqlite:///path/to/queues.db``): the standard library's ``sqlite3`` in a worker
  thread, WAL journal; the processes of one host share a file.
- `postgres` (``postgresql://user@host/db``): asyncpg with a pool, ``FOR UPDATE SKIP LOCKED``
  and ``LISTEN/NOTIFY``; many hosts share a database.

Sessions are leased in the database, so their exclusivity holds across processes and hosts.
Import the dialect module you need; this package imports neither driver.
"""

from ._schema import SCHEMA_VERSION, SchemaVersionError

__all__ = ["SCHEMA_VERSION", "SchemaVersionError"]
