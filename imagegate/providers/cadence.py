"""When to look at an async upstream task next (`dimilinks`, `apimart`): a cadence that
follows how long the task is expected to take instead of a fixed interval.

Neither task seed (000, 002) gives a polling cadence; the 000 seed gives typical run times
of about 60, 120 and 180 s per tier, which the catalog carries as `typical_seconds`. Polling
every task every 3 s for a job known to take minutes costs both sides: 10,000 tasks in
flight made ~3,300 upstream polls a second, and imagegate's CPU went to them. So:

- the first poll comes `poll_interval` after the submit (or a resume): refusals and failures
  show early, and an upstream that finishes fast is not kept waiting;
- before the model × tier's typical run time, each wait is half of what remains of it
  (a task that finishes early is still seen by about its typical time);
- from then on each wait is `GROWTH` (a tenth) of the task's age: a finished task is seen
  within about a tenth of the time it ran (18 s for a 3-minute 4k task), at a poll count
  that grows with the logarithm of its run time instead of linearly;
- every wait stays between `poll_interval` and `poll_interval_max`, and is drawn at random
  within ±`JITTER` of its value (cut to those bounds), so thousands of tasks submitted
  together do not poll together.

A channel with `poll_interval_max = poll_interval` polls at that fixed interval (the old
behaviour, jitter aside).
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from imagegate.config import ChannelConfig

# A finished task is seen within about this fraction of the time it has run.
GROWTH = 0.1
# Each wait is drawn within ± this fraction of its value.
JITTER = 0.2


@dataclass(frozen=True, slots=True)
class Cadence:
    """The waits between the polls of one upstream task."""

    shortest: float  # the channel's poll_interval: also the delay of the first poll
    longest: float  # the channel's poll_interval_max (never below shortest)
    expected: float  # the model × tier's typical run time in seconds; 0 when unknown

    @classmethod
    def for_channel(cls, channel: ChannelConfig, expected: float) -> Cadence:
        shortest = channel.poll_interval
        return cls(shortest, max(shortest, channel.max_poll_interval), max(0.0, expected))

    def base(self, age: float, polls: int) -> float:
        """The wait, before jitter, after `polls` polls of a task submitted `age` s ago."""
        if polls == 0:
            return self.shortest
        wait = max(GROWTH * max(age, self.expected), (self.expected - age) / 2)
        return min(self.longest, max(self.shortest, wait))

    def wait(self, age: float, polls: int, rng: random.Random) -> float:
        """The wait before the next poll, jittered within the channel's bounds."""
        base = self.base(age, polls)
        low = max(self.shortest, base * (1 - JITTER))
        high = min(self.longest, base * (1 + JITTER))
        return rng.uniform(low, high)
