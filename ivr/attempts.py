"""Budgets of attempts in Redis, shared by every web process: count first, then check.

An attempt is counted on all its counters in one MULTI/EXEC before the secret it carries
is checked, so a burst of parallel guesses gets no more checks than the budget; a right
answer gives its attempt back. Used for phone PINs (ivr.status_guard) and console
passwords (ivr.console.auth). Redis errors propagate: the callers then check nothing.
"""

from __future__ import annotations

from redis import Redis

# Give an attempt back only to a counter that still exists: a DECR on an expired key would
# create one at -1 that never expires, a budget that never runs out.
_GIVE_BACK = """
for _, key in ipairs(KEYS) do
    if redis.call('EXISTS', key) == 1 then redis.call('DECR', key) end
end
"""


def count_attempt(redis: Redis, keys: list[str], window: int) -> list[tuple[int, int]]:
    """One more attempt on each counter (its window starting at its first attempt): (count, seconds left) each."""
    with redis.pipeline(transaction=True) as pipe:
        for key in keys:
            pipe.incr(key)
            pipe.expire(key, window, nx=True)
            pipe.ttl(key)
        results = pipe.execute()
    return [(int(results[i]), int(results[i + 2])) for i in range(0, len(results), 3)]


def give_back(redis: Redis, keys: list[str]) -> None:
    """The attempt of a right answer: it spends no budget."""
    redis.eval(_GIVE_BACK, len(keys), *keys)
