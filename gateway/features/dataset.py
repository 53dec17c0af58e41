"""Rows drawn from the feature store's event log: the time split, logged views, their features,
and the request-time window of load tests."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from gateway.features.store import FeatureStore

DAY = 86400


@dataclass
class Split:
    train: tuple[int, int]  # epoch seconds [start, end)
    validation: tuple[int, int]
    evaluation: tuple[int, int]


def time_split(store: FeatureStore, validation_days: int, evaluation_days: int) -> Split:
    """Training window, then ``validation_days`` (early stopping), then the held-out
    ``evaluation_days`` at the end of the feed."""
    day0, days = store.manifest["day0"], store.manifest["days"]
    if days < validation_days + evaluation_days + 3:
        raise ValueError(
            f"the feed spans {days} days: too short for {validation_days}+{evaluation_days} held-out days"
        )
    eval_start = day0 + (days - evaluation_days) * DAY
    val_start = eval_start - validation_days * DAY
    return Split((day0, val_start), (val_start, eval_start), (eval_start, day0 + days * DAY))


def logged_views(
    store: FeatureStore, window: tuple[int, int], limit: int, seed: int
) -> dict[str, np.ndarray]:
    """A seeded uniform sample of the logged views in ``[start, end)``."""
    events = store.events
    mask = (~events["like"]) & (events["seconds"] >= window[0]) & (events["seconds"] < window[1])
    rows = np.flatnonzero(mask)
    if len(rows) > limit:
        rows = np.sort(np.random.default_rng(seed).choice(rows, limit, replace=False))
    return {k: events[k][rows] for k in ("user", "post", "seconds", "target")}


def features_for_views(
    store: FeatureStore, views: dict[str, np.ndarray], chunk: int = 400_000
) -> dict[str, np.ndarray]:
    """Features of (user, post, time) views, computed in chunks."""
    parts = []
    for start in range(0, len(views["user"]), chunk):
        sl = slice(start, start + chunk)
        n = len(views["user"][sl])
        parts.append(store.compute(views["user"][sl], views["seconds"][sl], np.arange(n), views["post"][sl]))
    return {name: np.concatenate([p[name] for p in parts]) for name in parts[0]}


def traffic_window(store: FeatureStore, last_days: int | None = None) -> tuple[int, int]:
    """Request times for load tests: the feed's last ``last_days`` days, or by default from
    06:00 of its first day to its end."""
    day0, days = store.manifest["day0"], store.manifest["days"]
    end = day0 + days * DAY
    return (end - last_days * DAY, end) if last_days else (day0 + 6 * 3600, end)
