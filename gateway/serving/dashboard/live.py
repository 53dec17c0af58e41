"""Live traffic per arm from this process's Prometheus metrics (no second bookkeeping).

Each look at the dashboard reads the counters once (a ``Sample``); the figures shown are the
differences from the oldest sample of the last ``WINDOW_S`` seconds (or from the process start
at the first look): requests per second, errors, and p50/p99 latency estimated from the
latency histogram's buckets as Prometheus' ``histogram_quantile`` does (linear within a bucket,
so the resolution is the bucket's: ``prometheus.LATENCY_BUCKETS``). With several workers each
process counts its own requests: the page shows the worker that answered.
"""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry

WINDOW_S = 60.0
NO_ARM = ("none", "unknown")  # requests that failed before an arm was chosen


@dataclass(frozen=True)
class Sample:
    at: float
    requests: dict[str, float] = field(default_factory=dict)  # arm -> requests answered 2xx
    errors: dict[str, float] = field(default_factory=dict)  # arm -> requests answered 5xx or failed
    buckets: dict[str, dict[float, float]] = field(default_factory=dict)  # arm -> {le: cumulative count}
    overload: dict[str, float] = field(
        default_factory=dict
    )  # "shed:<overflow>", "fallback:<reason>" -> count
    gauges: dict[str, float] = field(default_factory=dict)  # admission control's state now


# Counters of admission control (README "Overload"), by their label, and its gauges.
OVERLOAD_COUNTERS = {
    "recsys_shed_total": ("shed", "overflow"),
    "recsys_fallbacks_total": ("fallback", "reason"),
}
OVERLOAD_GAUGES = (
    "recsys_in_flight",
    "recsys_admission_limit",
    "recsys_late_rankers",
    "recsys_deadline_seconds",
)


def read_sample(registry: CollectorRegistry, at: float) -> Sample:
    """The counters of ``registry`` summed over model versions and endpoints, per arm."""
    sample = Sample(at)
    for family in registry.collect():
        for s in family.samples:
            arm = s.labels.get("arm")
            if s.name in OVERLOAD_COUNTERS:
                kind, label = OVERLOAD_COUNTERS[s.name]
                key = f"{kind}:{s.labels.get(label, '')}"
                sample.overload[key] = sample.overload.get(key, 0.0) + s.value
            elif s.name in OVERLOAD_GAUGES:
                sample.gauges[s.name.removeprefix("recsys_")] = s.value
            elif arm is None:
                continue
            elif s.name == "recsys_requests_total":
                status = s.labels.get("status", "")
                into = {"2": sample.requests, "5": sample.errors}.get(status[:1])
                if into is not None:
                    into[arm] = into.get(arm, 0.0) + s.value
            elif s.name == "recsys_errors_total":
                sample.errors[arm] = sample.errors.get(arm, 0.0) + s.value
            elif s.name == "recsys_request_latency_seconds_bucket":
                le = float(s.labels["le"])
                arm_buckets = sample.buckets.setdefault(arm, {})
                arm_buckets[le] = arm_buckets.get(le, 0.0) + s.value
    return sample


def histogram_quantile(q: float, buckets: dict[float, float]) -> float | None:
    """The ``q`` quantile of cumulative ``{upper bound: count}`` buckets, interpolated linearly
    inside its bucket (Prometheus ``histogram_quantile``); None without observations."""
    bounds = sorted(buckets)
    if not bounds or buckets[bounds[-1]] <= 0:
        return None
    rank = q * buckets[bounds[-1]]
    lower, below = 0.0, 0.0
    for bound in bounds:
        count = buckets[bound]
        if count >= rank:
            if math.isinf(bound):
                return lower  # beyond the last finite bucket: its bound is all that is known
            return lower + (bound - lower) * (rank - below) / (count - below) if count > below else bound
        lower, below = bound, count
    return lower


def _minus(new: dict, old: dict) -> dict:
    return {k: v - old.get(k, 0.0) for k, v in new.items()}


def traffic(old: Sample, new: Sample) -> dict:
    """Per arm between two samples."""
    seconds = new.at - old.at
    arms = {}
    for arm in sorted(set(new.requests) | set(new.errors) | set(new.buckets)):
        requests = new.requests.get(arm, 0.0) - old.requests.get(arm, 0.0)
        errors = new.errors.get(arm, 0.0) - old.errors.get(arm, 0.0)
        buckets = _minus(new.buckets.get(arm, {}), old.buckets.get(arm, {}))
        p50, p99 = histogram_quantile(0.5, buckets), histogram_quantile(0.99, buckets)
        arms[arm] = {
            "requests": int(requests),
            "errors": int(errors),
            "rps": round(requests / seconds, 2) if seconds > 0 else None,
            "p50_ms": round(p50 * 1000, 2) if p50 is not None else None,
            "p99_ms": round(p99 * 1000, 2) if p99 is not None else None,
        }
    overload = {k: int(v) for k, v in _minus(new.overload, old.overload).items()}
    return {"window_s": round(seconds, 1), "arms": arms, "overload": overload, "admission": dict(new.gauges)}


class Traffic:
    """Samples taken when the page is looked at; the figures span from the newest sample at least
    ``window_s`` old (else the oldest, at first the process's start) to now."""

    def __init__(self, registry: CollectorRegistry, window_s: float = WINDOW_S) -> None:
        self.registry = registry
        self.window_s = window_s
        self._samples: deque[Sample] = deque([Sample(time.time())])  # all zero at the start
        self._lock = threading.Lock()

    def now(self) -> dict:
        sample = read_sample(self.registry, time.time())
        with self._lock:
            while len(self._samples) >= 2 and sample.at - self._samples[1].at >= self.window_s:
                self._samples.popleft()
            old = self._samples[0]
            self._samples.append(sample)
        return traffic(old, sample)
