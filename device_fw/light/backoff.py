# Reconnect delays: exponential from min_ms up to max_ms, with "equal jitter" (half of each
# delay is random) so a fleet of lights that lost the same gateway does not come back in
# lockstep. Plain Python (CPython runs it too).
import random


class Backoff:
    def __init__(self, min_ms, max_ms):
        self.min_ms = min_ms
        self.max_ms = max_ms
        self.failures = 0

    def reset(self):
        self.failures = 0

    def next_ms(self):
        """The delay before the next attempt; each call doubles the ceiling up to max_ms."""
        ceiling = min(self.max_ms, self.min_ms << min(self.failures, 20))
        self.failures += 1
        half = ceiling // 2
        return ceiling - half + random.getrandbits(24) % (half + 1)
