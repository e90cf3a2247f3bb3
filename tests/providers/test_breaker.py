"""The circuit breaker: closed -> open after N consecutive failures, open -> half-open after
the cooldown with one trial at a time, and the trial's verdict closes or re-opens it."""

from __future__ import annotations

import pytest

from imagegate.providers.breaker import BreakerState, CircuitBreaker, Ticket


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def fail(breaker: CircuitBreaker, times: int) -> None:
    for _ in range(times):
        ticket = breaker.acquire()
        assert ticket is not None
        breaker.failure(ticket)


def test_opens_after_consecutive_failures_only() -> None:
    clock = Clock()
    b = CircuitBreaker(3, 30.0, clock)
    fail(b, 2)
    b.success(Ticket.NORMAL)  # a success in between resets the count
    fail(b, 2)
    assert b.state is BreakerState.CLOSED
    fail(b, 1)
    assert b.state is BreakerState.OPEN
    assert not b.available()
    assert b.acquire() is None
    assert b.retry_in() == pytest.approx(30.0)


def test_half_open_allows_one_trial_and_success_closes() -> None:
    clock = Clock()
    b = CircuitBreaker(1, 30.0, clock)
    fail(b, 1)
    clock.t += 29.9
    assert b.state is BreakerState.OPEN
    clock.t += 0.1
    assert b.state is BreakerState.HALF_OPEN
    trial = b.acquire()
    assert trial is Ticket.TRIAL
    assert b.acquire() is None  # one trial at a time
    assert not b.available()
    b.success(trial)
    assert b.state is BreakerState.CLOSED
    assert b.consecutive_failures == 0
    assert b.acquire() is Ticket.NORMAL


def test_failed_trial_reopens_for_a_full_cooldown() -> None:
    clock = Clock()
    b = CircuitBreaker(2, 10.0, clock)
    fail(b, 2)
    clock.t += 10
    trial = b.acquire()
    assert trial is Ticket.TRIAL
    b.failure(trial)
    assert b.state is BreakerState.OPEN
    assert b.retry_in() == pytest.approx(10.0)
    clock.t += 10
    assert b.state is BreakerState.HALF_OPEN


def test_release_frees_the_trial_without_a_verdict() -> None:
    clock = Clock()
    b = CircuitBreaker(1, 5.0, clock)
    fail(b, 1)
    clock.t += 5
    trial = b.acquire()
    assert trial is Ticket.TRIAL
    b.release(trial)  # e.g. the upstream rejected the prompt: says nothing about health
    assert b.state is BreakerState.HALF_OPEN
    assert b.acquire() is Ticket.TRIAL


def test_late_failure_of_an_old_call_keeps_the_cooldown() -> None:
    clock = Clock()
    b = CircuitBreaker(1, 10.0, clock)
    old = b.acquire()
    assert old is Ticket.NORMAL
    fail(b, 1)
    clock.t += 6
    b.failure(old)  # started before the breaker opened
    clock.t += 4
    assert b.state is BreakerState.HALF_OPEN


def test_failures_must_be_positive() -> None:
    with pytest.raises(ValueError):
        CircuitBreaker(0, 1.0)
