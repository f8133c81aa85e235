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
from typing import Final

from ..._names import generated_number

__all__ = ["FRESH", "SENT", "SentIds"]

#: `SentIds.note`: the id was generated here and never sent to that database before.
FRESH: Final = -1
#: How many ids are remembered (about 100 bytes each); older ones are looked for everywhere.
CAPACITY: Final = 65_536


class SentIds:
    """Generated ids sent from this process, per database, with a sequence number below any
    row a send of them could have stored (bounded: the oldest are forgotten, and an id no
    newer than the newest forgotten one is then looked for in the whole queue)."""

    def __init__(self, capacity: int = CAPACITY) -> None:
        self._capacity = capacity
        self._floors: dict[tuple[str, str], int] = {}
        #: per database: a sequence number that every later insert exceeds
        self._marks: dict[str, int] = {}
        self._forgotten = 0  # the highest number of a forgotten id
        self._lock = threading.Lock()  # clients on event loops in several threads share it

    def note(self, database: str, message_id: object) -> int | None:
        """Record that ``message_id`` is about to be sent to ``database``.

        None: the id was not generated here (the database's unique index deduplicates it).
        `FRESH`: generated here and never sent there; store it without looking. Otherwise the
        sequence number after which an earlier send of it may have stored it.
        """
        number = generated_number(message_id)
        if number is None:
            return None
        assert isinstance(message_id, str)  # generated_number says so
        key = (database, message_id)
        with self._lock:
            floor = self._floors.get(key)
            if floor is not None:
                return floor
            if number <= self._forgotten:  # perhaps sent before it was forgotten
                self._floors[key] = 0
            else:
                self._floors[key] = self._marks.get(database, 0)
            if len(self._floors) > self._capacity:
                self._forget_oldest()
            return 0 if number <= self._forgotten else FRESH

    def saw(self, database: str, seq: int) -> None:
        """``seq`` was stored in ``database``: later inserts there get higher numbers."""
        if seq > self._marks.get(database, 0):
            self._marks[database] = seq

    def clear(self) -> None:
        with self._lock:
            self._floors.clear()
            self._marks.clear()
            self._forgotten = 0

    def _forget_oldest(self) -> None:
        (_, message_id) = oldest = next(iter(self._floors))
        del self._floors[oldest]
        number = generated_number(message_id)
        if number is not None and number > self._forgotten:
            self._forgotten = number


#: This process's record, shared by its clients (a new client re-sending a message another
#: client sent still finds it); a forked child makes ids of its own and starts empty.
SENT: Final = SentIds()
os.register_at_fork(after_in_child=SENT.clear)
