"""The contract suite against every adapter in ``conftest.TARGET_FACTORIES``."""

from queue_runtime.testing import memory_target
from queue_runtime.testing.contract import QueueClientContract


class TestContract(QueueClientContract):
    pass


def test_the_memory_adapter_claims_every_capability() -> None:
    """The reference adapter supports everything, so no contract test skips on it."""
    capabilities = memory_target().make_client().capabilities
    for name in (
        "sessions",
        "session_state",
        "exclusive_sessions_across_processes",
        "scheduled_messages",
        "message_ttl",
        "lock_renewal",
    ):
        assert name in capabilities
