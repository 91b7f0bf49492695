"""When to try a temporarily refused message again (pure: no clock, no randomness of its own).

Exponential backoff with jitter: the n-th attempt failed -> wait ``first * 2**(n-1)``, capped at
``maximum``, spread by +/- ``jitter`` so that many failures of one moment do not all come back
at once. Once the next attempt would fall later than ``give_up`` after the first one, give up.
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
        exponent = min(max(attempts, 1) - 1, 60)  # 2**60 * anything is past any maximum
        seconds = min(self.first.total_seconds() * 2.0**exponent, self.maximum.total_seconds())
        base = timedelta(seconds=seconds)
        spread = 1 + self.jitter * (2 * rand() - 1)
        return min(base * spread, self.maximum)

    def next_attempt(
        self, attempts: int, first_attempt: datetime, now: datetime, rand: Random
    ) -> datetime | None:
        """When to try again, or None when the give-up time has been reached."""
        when = now + self.delay(attempts, rand)
        return None if when - first_attempt > self.give_up else when
