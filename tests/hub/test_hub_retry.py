"""Retry policy: Retry-After parsing, capped exponential backoff, giving up."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest

from dmsec.errors import ConfigError
from dmsec.hub.retry import RateLimitedError, RetryPolicy, call_with_retry, parse_retry_after


def test_retry_after_seconds_and_http_date() -> None:
    now = datetime(2025, 1, 1, tzinfo=UTC)
    assert parse_retry_after({"Retry-After": "7"}) == 7.0
    assert parse_retry_after({"retry-after": " 0 "}) == 0.0
    later = format_datetime(now + timedelta(seconds=30), usegmt=True)
    assert parse_retry_after({"Retry-After": later}, now=now) == pytest.approx(30)
    assert parse_retry_after({"Retry-After": "soon"}) is None
    assert parse_retry_after({}) is None


def test_backoff_doubles_up_to_the_cap() -> None:
    policy = RetryPolicy(base_delay_s=1, max_delay_s=5, jitter=0)
    assert [policy.backoff(n) for n in range(1, 6)] == [1, 2, 4, 5, 5]
    jittered = RetryPolicy(base_delay_s=1, max_delay_s=5, jitter=0.1)
    assert all(0.9 <= jittered.backoff(1) <= 1.1 for _ in range(50))


def test_policy_validation_names_the_field() -> None:
    for kw, field in [
        ({"max_attempts": 0}, "max_attempts"),
        ({"base_delay_s": 10, "max_delay_s": 1}, "base_delay_s"),
        ({"jitter": 1.5}, "jitter"),
        ({"max_retry_after_s": -1}, "max_retry_after_s"),
    ]:
        with pytest.raises(ConfigError, match=f"`{field}`"):
            RetryPolicy(**kw)


def test_too_long_retry_after_fails_fast_instead_of_hanging() -> None:
    slept: list[float] = []
    policy = RetryPolicy(max_retry_after_s=10, sleep=slept.append)
    with pytest.raises(RateLimitedError, match="3600"):
        policy.wait(1, 3600, "listing")
    assert slept == []


def test_call_with_retry_retries_only_what_classify_allows() -> None:
    slept: list[float] = []
    policy = RetryPolicy(max_attempts=3, base_delay_s=0.5, jitter=0, sleep=slept.append)
    calls = iter([TimeoutError(), TimeoutError(), "ok"])

    def flaky() -> str:
        item = next(calls)
        if isinstance(item, Exception):
            raise item
        return item

    retry_timeouts = lambda exc: (isinstance(exc, TimeoutError), 2.0)  # noqa: E731
    assert call_with_retry(flaky, policy=policy, what="x", classify=retry_timeouts) == "ok"
    assert slept == [2.0, 2.0]  # the Retry-After the classifier reported, not backoff
    with pytest.raises(KeyError):
        call_with_retry(
            lambda: {}["missing"], policy=policy, what="x", classify=lambda e: (False, None)
        )
