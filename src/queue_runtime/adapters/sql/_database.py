"""What the SQL client needs from a database driver: run an operation in one transaction,
and report wake-ups (from this process or others) for queues that may have messages."""

from __future__ import annotations

import abc
import logging
from collections.abc import Callable
from typing import Final, TypeVar

from ..._errors import QueueNotFound
from ..._logging import get_logger
from ._rules import Op
from ._statements import Statements

__all__ = ["Database", "QueueGone", "WakeListener", "log"]

T = TypeVar("T")
#: Called with a queue name when its waiters should look again (``""``: every waiter).
WakeListener = Callable[[str], None]

#: One DEBUG record per transaction (operation and ids), never bodies or secrets.
log: Final[logging.Logger] = get_logger("adapters.sql")


class QueueGone(QueueNotFound):
    """A statement named a queue whose row no longer exists (deleted, perhaps created again
    with a new id): the transaction rolled back, and the client reads the queue again."""


class Database(abc.ABC):
    """One connection (or pool) to one store, for one client."""

    #: Identifies the store: receipts of one store settle on any client of it.
    key: str
    statements: Statements
    #: First and longest pause between looks while waiting, in seconds: covers what no
    #: wake-up announces (another process's sends on SQLite, locks and schedules falling due).
    poll_interval: tuple[float, float] = (0.01, 0.25)

    @abc.abstractmethod
    async def open(self, on_wake: WakeListener) -> None:
        """Connect, create or migrate the schema, and start reporting wake-ups."""

    @abc.abstractmethod
    async def close(self) -> None:
        """Release every connection. Idempotent."""

    @abc.abstractmethod
    async def run(self, op: Op[T], label: str, *, relaxed: bool = False, size: int = 0) -> T:
        """Run ``op`` in one transaction (committed when it returns, rolled back if it
        raises) and announce its `Wake` steps after commit.

        ``relaxed`` (receives and settlements): the commit need not wait for the disk where
        the database can tell; losing such a commit in a crash of the database server only
        means a message is delivered again (its lock or settlement is forgotten). ``size``:
        about how many bytes the transaction writes, where the caller knows (message bodies).
        """
