"""The group-commit helper of the SQL adapter: the first caller alone, the rest together."""

from __future__ import annotations

import asyncio

import pytest

from queue_runtime.adapters.sql._coalesce import Coalescer

pytestmark = pytest.mark.asyncio


class Recorder:
    """Stand-in statements: each records what it was called with and takes a moment."""

    def __init__(self) -> None:
        self.calls: list[list[int]] = []

    async def one(self, item: int) -> None:
        self.calls.append([item])
        await asyncio.sleep(0.01)
        if item < 0:
            raise LookupError(item)

    async def many(self, items: list[int]) -> list[BaseException | None]:
        self.calls.append(list(items))
        await asyncio.sleep(0.01)
        return [LookupError(i) if i < 0 else None for i in items]


async def test_callers_ready_together_go_together_and_later_ones_gather_behind() -> None:
    recorder = Recorder()
    settle = Coalescer(recorder.one, recorder.many)
    outcomes = await asyncio.gather(*(settle(i) for i in (1, 2, -3, 4)), return_exceptions=True)
    assert recorder.calls == [[1, 2, -3, 4]]  # all ready in the same turn of the loop
    assert [type(o) for o in outcomes] == [type(None), type(None), LookupError, type(None)]
    await settle(5)  # nothing in flight: alone
    assert recorder.calls[-1] == [5]
    first = asyncio.ensure_future(settle(6))
    await asyncio.sleep(0.001)  # its statement is under way
    await asyncio.gather(first, settle(7), settle(8))
    assert recorder.calls[-2:] == [[6], [7, 8]]  # those that came meanwhile: together next


async def test_a_failed_statement_fails_each_caller_of_it() -> None:
    async def one(item: int) -> None:
        await asyncio.sleep(0.01)

    async def many(items: list[int]) -> list[BaseException | None]:
        raise ConnectionError("gone")

    settle = Coalescer(one, many)
    outcomes = await asyncio.gather(*(settle(i) for i in range(3)), return_exceptions=True)
    assert all(isinstance(o, ConnectionError) for o in outcomes)
    assert outcomes[1] is not outcomes[2]  # each caller its own copy


async def test_a_caller_cancelled_before_its_turn_is_not_made() -> None:
    recorder = Recorder()
    settle = Coalescer(recorder.one, recorder.many)
    under_way = []
    for item in (1, 2):  # two statements under way: the most at once
        under_way.append(asyncio.ensure_future(settle(item)))
        await asyncio.sleep(0.001)
    waiting = asyncio.ensure_future(settle(3))
    kept = asyncio.ensure_future(settle(4))
    await asyncio.sleep(0)
    waiting.cancel()
    await asyncio.gather(*under_way, waiting, kept, return_exceptions=True)
    assert recorder.calls == [[1], [2], [4]]
