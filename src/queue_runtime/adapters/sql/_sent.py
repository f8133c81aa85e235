"""The message ids this process generated and has sent, so that a re-send is recognised
without a database index.

An id that `Message` generated is unique by construction: the only way it reaches a queue
twice is a re-send of the same message by this process (a retry after an unknown outcome, or
of a copy made with ``_replace``). So the database keeps no unique-index entry for it, which
saves two page writes a message (its insert and its delete), and this record says, for each
such id, whether it may already be stored, and from which sequence number on to look for it.
Ids given by the user are deduplicated by the database's unique index, across processes.
"""

from __future__ import annotations

import os
import threading
from collections import deque
from collections.abc import Iterable
from typing import Final

from ..._names import id_prefix

__all__ = ["FRESH", "SENT", "SentIds"]

#: `SentIds.note`: the id was generated here and never sent to that database before.
FRESH: Final = -1
#: How many ids are remembered per database (about 70 bytes each); older ones are looked
#: for in the whole queue.
CAPACITY: Final = 32_768


class _Record:
    """The record for one database: ids by their number (after `id_prefix`)."""

    __slots__ = ("floors", "forgotten", "mark", "order")

    def __init__(self) -> None:
        self.floors: dict[int, int] = {}
        self.order: deque[int] = deque()  # the numbers in ``floors``, oldest first
        self.mark = 0  # a sequence number that every later insert exceeds
        self.forgotten = 0  # the highest number of a forgotten id


class SentIds:
    """Generated ids sent from this process, per database, each with a sequence number below
    any row a send of it could have stored (bounded: the oldest are forgotten, and an id no
    newer than the newest forgotten one is then looked for in the whole queue)."""

    def __init__(self, capacity: int = CAPACITY) -> None:
        self._capacity = capacity
        self._databases: dict[str, _Record] = {}
        self._lock = threading.Lock()  # clients on event loops in several threads share it

    def note(self, database: str, messages: Iterable[object]) -> list[int | None]:
        """Record that ``messages`` are about to be sent to ``database``; for each, how its id
        is to be deduplicated.

        None: the id was not generated here (the database's unique index deduplicates it).
        `FRESH`: generated here and never sent there; store it without looking. Otherwise the
        sequence number after which an earlier send of it may have stored it.
        """
        looks: list[int | None] = []
        prefix = id_prefix()
        start = len(prefix)
        with self._lock:
            record = self._databases.get(database)
            if record is None:
                record = self._databases[database] = _Record()
            floors, order, capacity = record.floors, record.order, self._capacity
            for message in messages:
                message_id = getattr(message, "message_id", None)
                if (
                    type(message_id) is not str
                    or not message_id.startswith(prefix)
                    or not (digits := message_id[start:]).isdigit()
                    or not digits.isascii()
                ):
                    looks.append(None)  # not generated here
                    continue
                number = int(digits)
                floor = floors.get(number)
                if floor is None:
                    if number <= record.forgotten:  # perhaps sent before it was forgotten
                        floors[number] = floor = 0
                    else:
                        floors[number] = record.mark
                        floor = FRESH
                    order.append(number)
                    if len(order) > capacity:
                        oldest = order.popleft()
                        del floors[oldest]
                        record.forgotten = max(record.forgotten, oldest)
                looks.append(floor)
        return looks

    def saw(self, database: str, seq: int) -> None:
        """``seq`` was stored in ``database``: later inserts there get higher numbers.

        Without the lock: a race can only leave the mark lower, and a lower floor is still
        below every later row (a look then scans a little more)."""
        record = self._databases.get(database)
        if record is not None and seq > record.mark:
            record.mark = seq

    def clear(self) -> None:
        with self._lock:
            self._databases.clear()


#: This process's record, shared by its clients (a new client re-sending a message another
#: client sent still finds it); a forked child makes ids of its own and starts empty.
SENT: Final = SentIds()
os.register_at_fork(after_in_child=SENT.clear)
