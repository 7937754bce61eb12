"""Retry timing: exponential backoff with full jitter, and ``Retry-After`` parsing.

Pure functions; the adapter decides *whether* to retry, these decide *how long* to wait.
Errors: none raised; an unparseable ``Retry-After`` reads as absent.
"""

from __future__ import annotations

import email.utils
import math
import random
from datetime import UTC, datetime

import attrs


@attrs.frozen(kw_only=True)
class RetryConfig:
    """How the adapter retries before the first token.

    Args:
        max_attempts: total attempts including the first; 1 disables retries.
        base_delay: the backoff before the second attempt, in seconds (doubles each time).
        max_delay: the backoff's ceiling, in seconds.
        max_retry_after: the longest ``Retry-After`` the adapter will honour; a 429 asking for
            more is reported as ``provider.rate_limited`` at once instead of waiting.
    """

    max_attempts: int = attrs.field(default=3, validator=attrs.validators.ge(1))
    base_delay: float = attrs.field(default=0.2, validator=attrs.validators.ge(0))
    max_delay: float = attrs.field(default=2.0, validator=attrs.validators.ge(0))
    max_retry_after: float = attrs.field(default=10.0, validator=attrs.validators.ge(0))


def backoff_delay(config: RetryConfig, retry_number: int, rng: random.Random) -> float:
    """The wait before retry number ``retry_number`` (1 for the first retry).

    Full jitter (uniform in ``[0, min(max_delay, base_delay * 2**(n-1))]``) spreads retries of
    many sessions hitting the same failing upstream, so they do not arrive in waves.
    """
    ceiling = min(config.max_delay, config.base_delay * 2.0 ** max(0, retry_number - 1))
    return rng.uniform(0.0, ceiling)


def parse_retry_after(value: str | None, *, now: datetime | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header: delta-seconds or an HTTP date.

    Returns:
        A non-negative number of seconds, or None when absent or unparseable.
    """
    if value is None:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        pass
    else:
        return seconds if math.isfinite(seconds) and seconds >= 0 else None
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    current = now if now is not None else datetime.now(UTC)
    return max(0.0, (when - current).total_seconds())
