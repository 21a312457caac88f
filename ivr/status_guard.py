"""PIN attempts counted in Redis, per calling number, per ticket number and per customer.

Each attempt is reserved before its PIN is checked: one MULTI/EXEC increments the three
counters, so a burst of parallel calls gets no more checks than the budget. A counter
that reaches `max_failures` locks its subject until its window (`window` seconds from the
first attempt) ends; a PIN that matches gives its attempt back. Every process shares the
counters through Redis, with short socket timeouts: when Redis does not answer, the guard
raises GuardUnavailable and no guessable question is answered.
"""

from __future__ import annotations

import time

from redis import Redis
from redis.exceptions import RedisError

from helpdesk.access import GuardUnavailable, Reservation
from ivr.attempts import count_attempt, give_back


class RedisStatusGuard:
    """The StatusGuard of helpdesk.access, on Redis."""

    def __init__(self, redis: Redis, prefix: str, max_failures: int = 5, window: int = 3600):
        self.redis, self.prefix, self.max_failures, self.window = redis, prefix, max_failures, window

    def _counter(self, subject: str) -> str:
        return f"{self.prefix}:count:{subject}"

    def locked(self, caller_key: str, ticket_number: str | None = None) -> bool:
        """True when the caller (or, given, the ticket) has no attempts left in its window."""
        subjects = [f"caller:{caller_key}"] + ([f"ticket:{ticket_number}"] if ticket_number else [])
        try:
            counts = self.redis.mget([self._counter(subject) for subject in subjects])
        except RedisError as error:
            raise GuardUnavailable(type(error).__name__) from None
        return any(int(count or 0) >= self.max_failures for count in counts)  # type: ignore[union-attr]

    def reserve(self, caller_key: str, ticket_number: str, customer_key: str) -> Reservation:
        """Count one attempt against the caller, the ticket and the customer, before the PIN is checked."""
        keys = [
            self._counter(f"caller:{caller_key}"),
            self._counter(f"ticket:{ticket_number}"),
            self._counter(customer_key),
        ]
        try:
            counted = count_attempt(self.redis, keys, self.window)  # the three counts of one attempt, together
        except RedisError as error:
            raise GuardUnavailable(type(error).__name__) from None
        caller_count, ticket_count, customer_count = (count for count, _ in counted)
        return Reservation(
            caller_key, ticket_number, customer_key, caller_count, ticket_count, customer_count, self.max_failures
        )

    def refund(self, reservation: Reservation) -> None:
        """Give back the attempt of a PIN that matched: the right PIN never locks anyone."""
        keys = [
            self._counter(f"caller:{reservation.caller_key}"),
            self._counter(f"ticket:{reservation.ticket_number}"),
            self._counter(reservation.customer_key),
        ]
        try:
            give_back(self.redis, keys)
        except RedisError as error:
            raise GuardUnavailable(type(error).__name__) from None

    def claim_lock_report(self, customer_key: str) -> int | None:
        """The start of the customer's window (epoch seconds) to the one request that reports its lock; else None."""
        counter = self._counter(customer_key)
        try:
            remaining = self.redis.ttl(counter)
            remaining = remaining if isinstance(remaining, int) and remaining > 0 else self.window
            window_start = int(time.time()) - (self.window - remaining)
            first = self.redis.set(f"{self.prefix}:reported:{customer_key}", window_start, nx=True, ex=remaining)
        except RedisError as error:
            raise GuardUnavailable(type(error).__name__) from None
        return window_start if first else None
