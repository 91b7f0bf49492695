"""When to try a temporarily refused message again (pure: no clock, no randomness of its own).

Exponential backoff with jitter: the n-th attempt failed -> wait ``first * 2**(n-1)``, capped at
``maximum``, spread by +/- ``jitter`` so that many failures of one moment do not all come back
at once. Once the next attempt would fall later than ``give_up`` after the first one, give up.
``most_attempts`` is how many attempts that makes, for a message tried again without a time of
its own (its outcome unknown after each attempt).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

Random = Callable[[], float]  # a float in [0, 1), e.g. random.random


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How long to wait after each temporary failure, and when to stop trying."""

    first: timedelta = timedelta(minutes=5)
    maximum: timedelta = timedelta(hours=6)
    give_up: timedelta = timedelta(days=3)
    jitter: float = 0.2

    def __post_init__(self) -> None:
        if self.first <= timedelta(0) or self.maximum < self.first:
            raise ValueError("need 0 < first <= maximum")
        if not 0 <= self.jitter < 1:
            raise ValueError("jitter must be in [0, 1)")

    def delay(self, attempts: int, rand: Random) -> timedelta:
        """The wait after ``attempts`` failed attempts (1 = the first one failed)."""
        spread = 1 + self.jitter * (2 * rand() - 1)
        return min(self.backoff(attempts) * spread, self.maximum)

    def backoff(self, attempts: int) -> timedelta:
        """The wait after ``attempts`` failed attempts, without the jitter."""
        exponent = min(max(attempts, 1) - 1, 60)  # 2**60 * anything is past any maximum
        seconds = min(self.first.total_seconds() * 2.0**exponent, self.maximum.total_seconds())
        return timedelta(seconds=seconds)

    def most_attempts(self) -> int:
        """How many attempts the backoff makes before it gives up, and at least 2 (even when
        ``give_up`` is shorter than the first wait): a message whose first attempt ended
        unknown (its sender died) is always sent once more."""
        return max(self._attempts_until_give_up(), 2)

    def _attempts_until_give_up(self) -> int:
        """How many attempts the backoff makes (without the jitter): each one after the waits
        before it, and none later than ``give_up`` after the first."""
        attempts, elapsed = 1, timedelta(0)
        while (wait := self.backoff(attempts)) < self.maximum:
            if elapsed + wait > self.give_up:
                return attempts
            attempts, elapsed = attempts + 1, elapsed + wait
        return attempts + (self.give_up - elapsed) // self.maximum

    def next_attempt(
        self, attempts: int, first_attempt: datetime, now: datetime, rand: Random
    ) -> datetime | None:
        """When to try again, or None when the give-up time has been reached."""
        when = now + self.delay(attempts, rand)
        return None if when - first_attempt > self.give_up else when
