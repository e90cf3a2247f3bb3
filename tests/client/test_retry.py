"""What the client repeats: reads and cancels on any transient failure, keyed creates like
reads, and other creates only when they surely did not happen."""

from __future__ import annotations

import pytest

from imagegate.client.retry import MAX_RETRY_AFTER, RetryPolicy
from imagegate.client.steps import Answer, RetryKind, TransportFailure

POLICY = RetryPolicy(max_retries=2)


def answer(status: int, **headers: str) -> Answer:
    return Answer(status, {k.lower().replace("_", "-"): v for k, v in headers.items()}, b"",
                  "http://x")


@pytest.mark.parametrize("kind", ["safe", "create_keyed"])
@pytest.mark.parametrize("status", [408, 429, 500, 502, 503, 504])
def test_transient_statuses_are_retried(kind: RetryKind, status: int) -> None:
    assert POLICY.after_answer(kind, answer(status), 0) is not None


@pytest.mark.parametrize("status", [400, 401, 402, 403, 404, 409])
def test_client_errors_are_not(status: int) -> None:
    assert POLICY.after_answer("safe", answer(status), 0) is None


def test_an_unkeyed_create_is_retried_only_after_a_429() -> None:
    assert POLICY.after_answer("create", answer(429, Retry_After="2"), 0) == 2.0
    for status in (500, 502, 503, 504):
        assert POLICY.after_answer("create", answer(status), 0) is None
    assert POLICY.after_failure("create", TransportFailure("refused", sent=False), 0) is not None
    assert POLICY.after_failure("create", TransportFailure("reset", sent=True), 0) is None
    assert POLICY.after_failure("create_keyed", TransportFailure("reset", sent=True),
                                0) is not None


def test_retry_after_sets_the_pause_and_a_long_one_gives_up() -> None:
    assert POLICY.after_answer("safe", answer(503, Retry_After="1.5"), 0) == 1.5
    too_long = str(MAX_RETRY_AFTER + 1)
    assert POLICY.after_answer("safe", answer(429, Retry_After=too_long), 0) is None


def test_the_server_has_the_last_word_and_retries_run_out() -> None:
    assert POLICY.after_answer("safe", answer(503, X_Should_Retry="false"), 0) is None
    assert POLICY.after_answer("create", answer(500, X_Should_Retry="true"), 0) is not None
    assert POLICY.after_answer("safe", answer(503), 2) is None
    pause = POLICY.after_answer("safe", answer(503), 1)
    assert pause is not None and 0 < pause <= POLICY.max_delay
