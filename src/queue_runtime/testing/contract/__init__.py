"""The contract suite: the behaviour every `QueueClient` adapter must show (``contract.md``).

`QueueClientContract` is a pytest test class made of one mixin per behaviour (round trip,
session order, exclusivity, parallel sessions, settlement, lock expiry, dead-lettering,
at-least-once delivery, bad input, session state, lifecycle, scheduled messages, time to
live, batch settlement, holder-only settlement, peek, iteration, release). The tests use only the
public port (``queue_runtime.*``, `QueueClient` and `SessionClient` methods), so they run
unchanged against any adapter.

Running it against your adapter
-------------------------------
Install the testing extra (``pip install "queue-runtime[testing]"``: pytest and
pytest-asyncio; the suite works in pytest-asyncio's strict mode), then in a test module::

    import pytest
    from queue_runtime.testing import ContractTarget
    from queue_runtime.testing.contract import QueueClientContract

    from my_adapter import MyQueueClient


    class TestMyAdapter(QueueClientContract):
        @pytest.fixture
        def contract_target(self) -> ContractTarget:
            return ContractTarget(
                name="my-adapter",
                # a new, unopened client per call, every one on the same broker
                make_client=lambda: MyQueueClient(...),
                # how lock time passes: asyncio.sleep for a real server (the default)
                advance=asyncio.sleep,
            )

``contract_target`` may also come from a ``conftest.py`` (parametrize it to run the suite
against several adapters). For the in-memory adapter use `queue_runtime.testing.memory_target`,
whose manual clock makes lock expiry instant.

How the suite treats the target
-------------------------------
- Each test creates fresh queues named ``ct-<8 hex>`` and deletes them at the end.
- Time passes only through ``await target.advance(seconds)``; lock-expiry tests create queues
  with ``lock_duration=target.short_lock`` and advance past it.
- A message the test expects is waited for up to ``target.receive_timeout``; where it expects
  nothing it waits ``target.quiet_timeout``.
- A test that needs a capability (``sessions``, ``session_state``, ``scheduled_messages``,
  ``message_ttl``, ``lock_renewal``, ``exclusive_sessions_across_processes``, ``release``)
  skips without it, or checks that the operation raises `UnsupportedOperation` instead.
"""

from __future__ import annotations

from ._at_least_once import AtLeastOnceContract
from ._bad_input import BadInputContract
from ._batch_settlement import BatchSettlementContract
from ._dead_letter import DeadLetterContract
from ._exclusivity import SessionExclusivityContract
from ._fixtures import ContractFixtures, QueueFactory
from ._holder import HolderOnlySettlementContract
from ._iteration import IterationContract
from ._lifecycle import LifecycleContract
from ._lock_expiry import LockExpiryContract
from ._parallel import ParallelSessionsContract
from ._peek import PeekContract
from ._release import ReleaseContract
from ._round_trip import RoundTripContract
from ._scheduled import ScheduledMessagesContract
from ._session_order import SessionOrderContract
from ._session_state import SessionStateContract
from ._settlement import SettlementContract
from ._time_to_live import TimeToLiveContract

__all__ = [
    "AtLeastOnceContract",
    "BadInputContract",
    "BatchSettlementContract",
    "ContractFixtures",
    "DeadLetterContract",
    "HolderOnlySettlementContract",
    "IterationContract",
    "LifecycleContract",
    "LockExpiryContract",
    "ParallelSessionsContract",
    "PeekContract",
    "QueueClientContract",
    "QueueFactory",
    "ReleaseContract",
    "RoundTripContract",
    "ScheduledMessagesContract",
    "SessionExclusivityContract",
    "SessionOrderContract",
    "SessionStateContract",
    "SettlementContract",
    "TimeToLiveContract",
]


class QueueClientContract(
    RoundTripContract,  # 1
    SessionOrderContract,  # 2
    SessionExclusivityContract,  # 3
    ParallelSessionsContract,  # 4
    SettlementContract,  # 5
    LockExpiryContract,  # 6
    DeadLetterContract,  # 7
    AtLeastOnceContract,  # 8
    BadInputContract,  # 9
    SessionStateContract,  # 10
    LifecycleContract,
    ScheduledMessagesContract,
    TimeToLiveContract,
    BatchSettlementContract,
    HolderOnlySettlementContract,
    PeekContract,
    IterationContract,
    ReleaseContract,
):
    """Every behaviour of the contract. Subclass it as ``Test...`` and provide a
    ``contract_target`` fixture returning a `queue_runtime.testing.ContractTarget`."""
