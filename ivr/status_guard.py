"""Failed status inquiries counted in Redis, per calling number and per ticket number.

After `max_failures` failures within `window` seconds, the number (or the ticket) is
locked for `window` seconds. Every process shares the counters through Redis.
"""

from __future__ import annotations

from redis import Redis
from redis.exceptions import RedisError

from callflows.status import GuardUnavailable


class RedisStatusGuard:
    def __init__(self, redis: Redis, prefix: str, max_failures: int = 5, window: int = 3600):
        self.redis, self.prefix, self.max_failures, self.window = redis, prefix, max_failures, window

    def _keys(self, caller_key: str, ticket_number: str | None) -> list[tuple[str, str]]:
        subjects = [f"caller:{caller_key}"] + ([f"ticket:{ticket_number}"] if ticket_number else [])
        return [(f"{self.prefix}:fails:{s}", f"{self.prefix}:lock:{s}") for s in subjects]

    def locked(self, caller_key: str, ticket_number: str | None = None) -> bool:
        try:
            return bool(self.redis.exists(*(lock for _, lock in self._keys(caller_key, ticket_number))))
        except RedisError as error:
            raise GuardUnavailable(type(error).__name__) from None

    def failed(self, caller_key: str, ticket_number: str | None) -> None:
        try:
            for fails, lock in self._keys(caller_key, ticket_number):
                with self.redis.pipeline() as pipe:
                    pipe.incr(fails)
                    pipe.expire(fails, self.window, nx=True)
                    count, _ = pipe.execute()
                if count >= self.max_failures:
                    self.redis.set(lock, 1, ex=self.window)
                    self.redis.delete(fails)
        except RedisError as error:
            raise GuardUnavailable(type(error).__name__) from None
