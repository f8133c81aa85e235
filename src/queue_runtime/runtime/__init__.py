"""The processing runtime: `Processor` runs handlers over any `QueueClient`, in session order,
with bounded concurrency, lock renewal, retries, a circuit breaker, rate limits, middleware,
priority lanes, graceful shutdown, health and OpenTelemetry. It knows the ports only."""

from ._breaker import (
    Breaker,
    BreakerState,
    CircuitBreaker,
    breaker_admit,
    breaker_ready_at,
    breaker_record,
)
from ._health import Counters, Health, HealthServer
from ._limits import Lane, RateLimit, lane_order, take_token
from ._middleware import (
    CircuitBreakerMiddleware,
    Handler,
    MessageContext,
    Middleware,
    Next,
    RateLimitMiddleware,
    TimeoutMiddleware,
)
from ._policy import PayloadError, PermanentError, RetryPolicy, Verdict, backoff_delay, verdict
from ._processor import Processor

__all__ = [
    "Breaker",
    "BreakerState",
    "CircuitBreaker",
    "CircuitBreakerMiddleware",
    "Counters",
    "Handler",
    "Health",
    "HealthServer",
    "Lane",
    "MessageContext",
    "Middleware",
    "Next",
    "PayloadError",
    "PermanentError",
    "Processor",
    "RateLimit",
    "RateLimitMiddleware",
    "RetryPolicy",
    "TimeoutMiddleware",
    "Verdict",
    "backoff_delay",
    "breaker_admit",
    "breaker_ready_at",
    "breaker_record",
    "lane_order",
    "take_token",
    "verdict",
]
