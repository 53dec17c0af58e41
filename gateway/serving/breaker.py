"""A circuit breaker for the online store (Redis): after a failure, requests stop calling it for
``cooldown`` seconds and use the local history; then one request probes it, and its success
closes the breaker again (automatic recovery), its failure reopens it for another cooldown.

Without it, every request during an outage would pay a failed call (a refused connection is
quick, a hung server costs the socket timeout) before falling back.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

CLOSED, OPEN, PROBING = "closed", "open", "probing"


class Breaker:
    def __init__(self, cooldown: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.cooldown = cooldown
        self.clock = clock
        self.state = CLOSED
        self.failures = 0  # calls that failed, in total
        self.opened = 0  # times the breaker opened
        self.last_error: str | None = None
        self._opened_at = 0.0
        self._lock = threading.Lock()

    def allow(self) -> bool:
        """Whether this call may go to the store (at most one probe once the cooldown is over)."""
        if self.state == CLOSED:
            return True
        with self._lock:
            if self.state == OPEN and self.clock() - self._opened_at >= self.cooldown:
                self.state = PROBING
                return True
            return False

    def success(self) -> None:
        if self.state != CLOSED:
            with self._lock:
                self.state = CLOSED

    def failure(self, error: BaseException) -> None:
        with self._lock:
            self.failures += 1
            self.last_error = f"{type(error).__name__}: {error}"
            if self.state == CLOSED:
                self.opened += 1
            self.state = OPEN
            self._opened_at = self.clock()

    def status(self) -> dict:
        return {
            "breaker": self.state,
            "failures": self.failures,
            "opened": self.opened,
            "last_error": self.last_error,
        }
