"""Retrying hub calls: honour 429 + Retry-After, back off exponentially on 5xx and on 429 without it.

Hugging Face answers a rate limit with `429` and `Retry-After: <seconds>`; Civitai often sends a
bare 429 or 5xx, so the fallback is capped exponential backoff with jitter,
`delay_n = min(max_delay, base_delay * 2**n) * (1 ± jitter)`. A Retry-After longer than
`max_retry_after_s` is not slept through: the call fails with `RateLimitedError`, so a scheduled
scan can move on and come back later instead of hanging for hours.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any, TypeVar

import requests

from dmsec.errors import ConfigError
from dmsec.hub.source import HubError

logger = logging.getLogger(__name__)
T = TypeVar("T")

RETRY_STATUSES = frozenset({408, 429, 500, 502, 503, 504})


class RateLimitedError(HubError):
    """The hub asked us to wait longer than we are willing to (or kept refusing)."""


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how long to wait between attempts of one hub request."""

    max_attempts: int = 6
    base_delay_s: float = 1.0
    max_delay_s: float = 60.0
    max_retry_after_s: float = 600.0
    jitter: float = 0.1
    statuses: frozenset[int] = RETRY_STATUSES
    sleep: Callable[[float], None] = field(default=time.sleep, compare=False, repr=False)

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ConfigError(f"`max_attempts` must be >= 1; got {self.max_attempts}")
        if self.base_delay_s < 0 or self.max_delay_s < self.base_delay_s:
            raise ConfigError(
                f"`base_delay_s` must be in [0, max_delay_s]; got {self.base_delay_s} "
                f"(max_delay_s={self.max_delay_s})"
            )
        if not 0 <= self.jitter < 1:
            raise ConfigError(f"`jitter` must be in [0, 1); got {self.jitter}")
        if self.max_retry_after_s < 0:
            raise ConfigError(f"`max_retry_after_s` must be >= 0; got {self.max_retry_after_s}")

    def backoff(self, attempt: int) -> float:
        """Seconds to wait after failed attempt number `attempt` (1-based) with no Retry-After."""
        delay = min(self.max_delay_s, self.base_delay_s * 2 ** (attempt - 1))
        return delay * (1 + random.uniform(-self.jitter, self.jitter))

    def wait(self, attempt: int, retry_after: float | None, what: str) -> None:
        """Sleep before the next attempt: Retry-After when the hub gave one, else backoff."""
        if retry_after is not None and retry_after > self.max_retry_after_s:
            raise RateLimitedError(
                f"{what}: hub asked to retry after {retry_after:.0f}s "
                f"(more than max_retry_after_s={self.max_retry_after_s:.0f})"
            )
        delay = retry_after if retry_after is not None else self.backoff(attempt)
        logger.info("%s: retry %d/%d in %.2fs", what, attempt, self.max_attempts - 1, delay)
        self.sleep(delay)


def parse_retry_after(headers: Mapping[str, str], now: datetime | None = None) -> float | None:
    """Seconds a `Retry-After` header asks for (delta-seconds or HTTP-date), or None."""
    value = next((v for k, v in headers.items() if k.lower() == "retry-after"), None)
    if value is None or not value.strip():
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())


def request_with_retry(
    session: requests.Session,
    method: str,
    url: str,
    *,
    policy: RetryPolicy,
    what: str,
    **kwargs: Any,
) -> requests.Response:
    """`session.request` retried on connection errors and on `policy.statuses`.

    Returns the first response with another status (the caller checks it). After the last
    attempt, raises `RateLimitedError` for 429 and `HubError` otherwise. `what` names the call
    in logs and errors; never pass a URL with a secret in it.
    """
    for attempt in range(1, policy.max_attempts + 1):
        try:
            response = session.request(method, url, **kwargs)
        except (requests.ConnectionError, requests.Timeout) as exc:
            if attempt == policy.max_attempts:
                raise HubError(f"{what}: {type(exc).__name__} after {attempt} attempts") from None
            policy.wait(attempt, None, what)
            continue
        if response.status_code not in policy.statuses:
            return response
        retry_after = parse_retry_after(response.headers)
        response.close()
        if attempt == policy.max_attempts:
            error = RateLimitedError if response.status_code == 429 else HubError
            raise error(f"{what}: HTTP {response.status_code} after {attempt} attempts")
        logger.warning("%s: HTTP %d", what, response.status_code)
        policy.wait(attempt, retry_after, what)
    raise AssertionError("unreachable")  # pragma: no cover


def call_with_retry(
    fn: Callable[[], T],
    *,
    policy: RetryPolicy,
    what: str,
    classify: Callable[[BaseException], tuple[bool, float | None]],
) -> T:
    """Call `fn` until it succeeds; `classify(exc)` says (retryable?, Retry-After seconds).

    For client libraries that raise instead of returning a response (huggingface_hub).
    """
    for attempt in range(1, policy.max_attempts + 1):
        try:
            return fn()
        except Exception as exc:
            retryable, retry_after = classify(exc)
            if not retryable:
                raise
            if attempt == policy.max_attempts:
                raise HubError(f"{what}: {_describe(exc)} after {attempt} attempts") from exc
            logger.warning("%s: %s", what, _describe(exc))
            policy.wait(attempt, retry_after, what)
    raise AssertionError("unreachable")  # pragma: no cover


def _describe(exc: BaseException) -> str:
    status = getattr(getattr(exc, "response", None), "status_code", None)
    return f"HTTP {status}" if status else type(exc).__name__
