"""Pure decisions of the runtime, tested without sleeping: backoff, verdicts, the breaker's
transitions (on a fake clock), the token bucket, and lane scheduling."""

from __future__ import annotations

import pydantic
import pytest

import queue_runtime as qr
from queue_runtime.runtime import (
    BreakerState,
    backoff_delay,
    breaker_admit,
    breaker_ready_at,
    breaker_record,
    lane_order,
    take_token,
    verdict,
)
from queue_runtime.testing import ManualClock


def test_backoff_is_exponential_capped_and_fully_jittered() -> None:
    policy = qr.RetryPolicy(max_attempts=10, initial_delay=0.5, max_delay=3)
    assert [backoff_delay(policy, n, 0.999999) for n in (1, 2, 3, 4)] == pytest.approx(
        [0.5, 1.0, 2.0, 3.0], rel=1e-5
    )
    assert backoff_delay(policy, 3, 0.0) == 0.0
    assert backoff_delay(policy, 3, 0.5) == pytest.approx(1.0)
    fixed = qr.RetryPolicy(initial_delay=1, jitter=False)
    assert backoff_delay(fixed, 3, 0.1) == 4.0


def test_retry_policy_refuses_bad_settings() -> None:
    with pytest.raises(pydantic.ValidationError):
        qr.RetryPolicy(max_attempts=0)
    with pytest.raises(pydantic.ValidationError):
        qr.RetryPolicy(max_retries=3)  # type: ignore[call-arg]


def test_verdict_retries_transient_errors_until_max_attempts_then_dead_letters() -> None:
    policy = qr.RetryPolicy(max_attempts=3, initial_delay=1, max_delay=10)
    first = verdict(policy, ConnectionResetError("peer gone"), 1, rand=0.5)
    assert (first.action, first.delay) == ("retry", 0.5)
    last = verdict(policy, ConnectionResetError("peer gone"), 3, rand=0.5)
    assert last.action == "dead_letter"
    assert last.reason == "max-attempts-exceeded"
    assert last.description == "after 3 attempts: ConnectionResetError: peer gone"


def test_verdict_dead_letters_permanent_and_payload_errors_at_once() -> None:
    policy = qr.RetryPolicy(max_attempts=5)
    permanent = verdict(policy, qr.PermanentError("card declined"), 1)
    assert (permanent.action, permanent.reason) == ("dead_letter", "permanent-error")
    assert permanent.description == "PermanentError: card declined"
    payload = verdict(policy, qr.PayloadError("body is not a valid Event"), 1)
    assert payload.reason == "invalid-payload"
    assert not payload.transient


def test_breaker_opens_after_consecutive_failures_only() -> None:
    config = qr.CircuitBreaker(failure_threshold=3, recovery_timeout=10)
    state = BreakerState()
    for _ in range(2):
        state = breaker_record(config, state, 0, failed=True)
    state = breaker_record(config, state, 0, failed=False)  # a success resets the count
    assert state.consecutive_failures == 0
    for _ in range(3):
        state = breaker_record(config, state, 100, failed=True)
    assert state.state == "open"
    assert breaker_ready_at(config, state) == 110


def test_breaker_open_half_open_probe_and_close_on_a_fake_clock() -> None:
    clock = ManualClock(1000)
    config = qr.CircuitBreaker(failure_threshold=1, recovery_timeout=30, half_open_max_calls=2)
    state = breaker_record(config, BreakerState(), clock.now(), failed=True)
    assert state.state == "open"
    assert breaker_admit(config, state, clock.now())[0] is False
    clock.advance(29.9)
    assert breaker_admit(config, state, clock.now())[0] is False
    clock.advance(0.1)
    admitted, state = breaker_admit(config, state, clock.now())
    assert admitted
    assert state.state == "half_open"
    admitted, state = breaker_admit(config, state, clock.now())
    assert admitted  # the second probe slot
    assert breaker_admit(config, state, clock.now())[0] is False  # no third
    state = breaker_record(config, state, clock.now(), failed=False)
    assert state.state == "closed"


def test_breaker_failed_probe_opens_again_for_a_full_recovery_timeout() -> None:
    clock = ManualClock(0)
    config = qr.CircuitBreaker(failure_threshold=1, recovery_timeout=5)
    state = breaker_record(config, BreakerState(), clock.now(), failed=True)
    clock.advance(5)
    _, state = breaker_admit(config, state, clock.now())
    state = breaker_record(config, state, clock.now(), failed=True)
    assert state.state == "open"
    assert breaker_ready_at(config, state) == 10


def test_breaker_needs_success_threshold_probes_to_close() -> None:
    config = qr.CircuitBreaker(failure_threshold=1, recovery_timeout=0, success_threshold=2)
    state = breaker_record(config, BreakerState(), 0, failed=True)
    _, state = breaker_admit(config, state, 0)
    state = breaker_record(config, state, 0, failed=False)
    assert state.state == "half_open"
    _, state = breaker_admit(config, state, 0)
    assert breaker_record(config, state, 0, failed=False).state == "closed"


def test_breaker_opens_on_failure_rate_over_the_window() -> None:
    config = qr.CircuitBreaker(
        failure_threshold=100, failure_rate_threshold=0.5, window_size=10, minimum_calls=10
    )
    state = BreakerState()
    for index in range(9):  # alternating: 50% but fewer than minimum_calls
        state = breaker_record(config, state, 0, failed=index % 2 == 0)
    assert state.state == "closed"
    state = breaker_record(config, state, 0, failed=True)
    assert state.state == "open"


def test_breaker_opens_on_slow_call_rate() -> None:
    config = qr.CircuitBreaker(
        slow_call_duration=1.0, slow_call_rate_threshold=0.8, window_size=5, minimum_calls=5
    )
    state = BreakerState()
    for duration in (2.0, 2.0, 2.0, 0.1):
        state = breaker_record(config, state, 0, failed=False, duration=duration)
    assert state.state == "closed"
    state = breaker_record(config, state, 0, failed=False, duration=3.0)
    assert state.state == "open"
    with pytest.raises(pydantic.ValidationError):
        qr.CircuitBreaker(slow_call_rate_threshold=0.5)  # needs slow_call_duration


def test_token_bucket_allows_a_burst_then_spaces_calls_by_the_rate() -> None:
    limit = qr.RateLimit(rate=10, burst=2)
    tokens, updated = 2.0, 0.0
    waits = []
    for _ in range(4):
        wait, tokens, updated = take_token(limit, tokens, updated, 0.0)
        waits.append(wait)
    assert waits == pytest.approx([0.0, 0.0, 0.1, 0.2])
    wait, tokens, updated = take_token(limit, tokens, updated, 10.0)  # refilled to the burst
    assert (wait, tokens) == (0.0, 1.0)


def test_lanes_share_work_by_weight_and_no_lane_starves() -> None:
    weights = [4, 1]
    credit = [0, 0]
    firsts = [lane_order(weights, credit)[0] for _ in range(50)]
    assert firsts.count(0) == 40
    assert firsts.count(1) == 10
    assert max(len(run) for run in "".join(map(str, firsts)).split("1")) <= 4  # spread out
    assert lane_order([1, 1, 1], [0, 0, 0]) == [0, 1, 2]


def test_lanes_of_plain_names_weigh_higher_lanes_more() -> None:
    from queue_runtime.runtime._limits import lanes_of

    lanes = lanes_of(["high", "mid", "low"])
    assert [lane.weight for lane in lanes] == [16, 4, 1]
    assert lanes_of(qr.Lane("x", weight=3))[0].weight == 3
    with pytest.raises(qr.ValidationError):
        qr.Lane("x", weight=0)
    with pytest.raises(qr.ValidationError):
        lanes_of([])
