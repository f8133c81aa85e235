"""What users import in their own tests: the in-memory broker helpers and the contract suite.

- `ContractTarget` tells the contract suite how to reach an adapter and how to let lock time
  pass; `memory_target()` is the one for the in-memory adapter.
- `queue_runtime.testing.contract` holds the suite itself (see its docstring for how to run it
  against any `QueueClient` factory).
"""

from .._clock import ManualClock
from ._target import ContractTarget, memory_target

__all__ = ["ContractTarget", "ManualClock", "memory_target"]
