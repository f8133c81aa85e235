"""Retry decisions as pure functions: which failures are permanent, how long to back off,
and what becomes of a message whose handler failed."""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import timedelta
from typing import Final, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from .._clock import to_seconds
from ..telemetry import describe

__all__ = [
    "PayloadError",
    "PermanentError",
    "RetryPolicy",
    "Verdict",
    "backoff_delay",
    "describe_error",
    "verdict",
]

#: Dead-letter reasons the processor writes.
PERMANENT: Final = "permanent-error"
INVALID_PAYLOAD: Final = "invalid-payload"
MAX_ATTEMPTS: Final = "max-attempts-exceeded"
_MAX_TEXT: Final = 4096


class PermanentError(Exception):
    """Raised by a handler for a failure no retry can fix: the message is dead-lettered at
    once, with this error as the reason's description."""


class PayloadError(PermanentError):
    """The message body could not be parsed into the handler's model (permanent)."""


class RetryPolicy(BaseModel):
    """How often and how patiently a failing message is tried again.

    ``max_attempts`` counts every attempt (the first included) across redeliveries, read from
    the message's ``delivery_count``, so a crash does not reset it. The delay before attempt
    ``n + 1`` is exponential (``initial_delay * multiplier ** (n - 1)``, capped at
    ``max_delay``) with full jitter (uniform between 0 and that) unless ``jitter`` is off.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    max_attempts: int = Field(default=5, ge=1)
    initial_delay: float = Field(default=0.5, ge=0)
    max_delay: float = Field(default=60.0, ge=0)
    multiplier: float = Field(default=2.0, ge=1)
    jitter: bool = True

    @field_validator("initial_delay", "max_delay", mode="before")
    @classmethod
    def _seconds(cls, value: object) -> object:
        return to_seconds(value) if isinstance(value, timedelta) else value


def backoff_delay(policy: RetryPolicy, attempt: int, rand: float) -> float:
    """Seconds to wait after failed attempt ``attempt`` (1-based); ``rand`` in [0, 1) is the
    jitter draw (``random.random()`` in production, fixed in tests)."""
    ceiling = policy.initial_delay * policy.multiplier ** max(0, attempt - 1)
    ceiling = min(policy.max_delay, ceiling)
    return ceiling * rand if policy.jitter else ceiling


@dataclass(frozen=True, slots=True)
class Verdict:
    """What to do with a message whose handler raised."""

    action: Literal["retry", "dead_letter"]
    #: For ``retry``: seconds to wait before the message is released for its next attempt.
    delay: float = 0.0
    reason: str | None = None
    description: str | None = None
    #: Whether the failure says something about the dependency (counts for the breaker).
    transient: bool = True


def describe_error(error: BaseException) -> str:
    """``Type: message``, within the dead-letter description limit."""
    return describe(error)[:_MAX_TEXT]


def verdict(
    policy: RetryPolicy, error: BaseException, attempt: int, rand: float | None = None
) -> Verdict:
    """Dead-letter a permanent failure at once, retry any other until ``max_attempts``
    attempts in all, then dead-letter it with the last error."""
    if isinstance(error, PermanentError):
        reason = INVALID_PAYLOAD if isinstance(error, PayloadError) else PERMANENT
        return Verdict(
            "dead_letter", reason=reason, description=describe_error(error), transient=False
        )
    if attempt >= policy.max_attempts:
        return Verdict(
            "dead_letter",
            reason=MAX_ATTEMPTS,
            description=f"after {attempt} attempts: {describe_error(error)}"[:_MAX_TEXT],
        )
    draw = random.random() if rand is None else rand
    return Verdict("retry", delay=backoff_delay(policy, attempt, draw))
