"""The world's ground truth: p(like | user, post, time). For judging and simulating only.

No feature, ranker or serving path may import this module (an import contract in pyproject.toml
enforces it). Everything is vectorised over arrays of dense user / post indices and epoch seconds.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy.special import expit, ndtri

from gateway.world import params as P

_MASK64 = np.uint64(0xFFFFFFFFFFFFFFFF)


def _splitmix64(x: np.ndarray) -> np.ndarray:
    """Counter-based hash: uint64 -> uint64, well mixed (SplitMix64 finaliser)."""
    with np.errstate(over="ignore"):
        z = (x + np.uint64(0x9E3779B97F4A7C15)) & _MASK64
        z = ((z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)) & _MASK64
        z = ((z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)) & _MASK64
        return z ^ (z >> np.uint64(31))


def standard_normal_from_keys(seed: int, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Deterministic N(0, 1) draws keyed by (seed, a, b), any shape, no RNG state."""
    with np.errstate(over="ignore"):
        key = (
            np.uint64(seed) * np.uint64(0xD1B54A32D192ED03)
            + np.asarray(a).astype(np.uint64) * np.uint64(0x9E3779B97F4A7C15)
            + np.asarray(b).astype(np.uint64) * np.uint64(0xC2B2AE3D27D4EB4F)
        )
    bits = _splitmix64(_splitmix64(key)) >> np.uint64(11)  # 53 random bits
    uniform = (bits.astype(np.float64) + 0.5) / float(1 << 53)
    return ndtri(uniform)


_EPOCH_START = int(pd.Timestamp(P.FEED_START).timestamp())
_RISE_START = int(pd.Timestamp(P.DECEMBER_RISE_START).timestamp())
_RISE_END = int(pd.Timestamp("2021-12-29").timestamp())


def time_effects(seconds: np.ndarray, hour_effect: np.ndarray, rise: float) -> tuple:
    """Hour index 0..23, day index since the feed start, and the user-level time effect."""
    seconds = np.asarray(seconds, dtype=np.int64)
    hours = (seconds // 3600) % 24
    days = (seconds - _EPOCH_START) // 86400
    effect = hour_effect[hours]
    ramp = np.clip((seconds - _RISE_START) / (_RISE_END - _RISE_START), 0.0, 1.0)
    return hours, days, effect + rise * ramp


@dataclass
class Truth:
    """Dense arrays of the truth. Users and posts are addressed by index into the id arrays."""

    seed: int
    intercept: float
    user_ids: np.ndarray  # sorted
    post_ids: np.ndarray  # sorted
    user_base: np.ndarray  # demographics + individual propensity (log-odds)
    user_taste: np.ndarray  # (users, topics)
    user_z: np.ndarray  # (users, LATENT_DIM)
    post_topic: np.ndarray  # topic index
    post_subtopic: np.ndarray
    post_quality: np.ndarray
    subtopic_w: np.ndarray  # (subtopics, LATENT_DIM)
    topic_effect: np.ndarray  # (topics,)
    hour_effect: np.ndarray  # (24,)
    topic_hour: np.ndarray  # (topics, 24) interactions
    mood_sd: float
    rise: float
    liked_effect: float

    # -- id mapping ----------------------------------------------------------------------
    def user_index(self, user_ids: np.ndarray) -> np.ndarray:
        return _lookup(self.user_ids, user_ids, "user")

    def post_index(self, post_ids: np.ndarray) -> np.ndarray:
        return _lookup(self.post_ids, post_ids, "post")

    # -- the model -----------------------------------------------------------------------
    def logit(
        self,
        user_idx: np.ndarray,
        post_idx: np.ndarray,
        seconds: np.ndarray,
        liked_before: np.ndarray | None = None,
    ) -> np.ndarray:
        """Log-odds of a like; arguments broadcast against each other."""
        user_idx, post_idx, seconds = np.broadcast_arrays(user_idx, post_idx, seconds)
        hours, days, time_effect = time_effects(seconds, self.hour_effect, self.rise)
        topic = self.post_topic[post_idx]
        mood = self.mood_sd * standard_normal_from_keys(self.seed, self.user_ids[user_idx], days + 1000)
        match = np.einsum(
            "...k,...k->...", self.user_z[user_idx], self.subtopic_w[self.post_subtopic[post_idx]]
        )
        value = (
            self.intercept
            + self.user_base[user_idx]
            + mood
            + time_effect
            + self.user_taste[user_idx, topic]
            + self.topic_effect[topic]
            + self.topic_hour[topic, hours]
            + self.post_quality[post_idx]
            + match
        )
        if liked_before is not None:
            value = value + self.liked_effect * np.asarray(liked_before, dtype=np.float64)
        return value

    def like_prob(self, user_idx, post_idx, seconds, liked_before=None) -> np.ndarray:
        return expit(self.logit(user_idx, post_idx, seconds, liked_before))

    # -- persistence ---------------------------------------------------------------------
    def params_record(self) -> dict[str, str]:
        """Scalar and small-array parameters, stored as JSON in ``world_params``."""
        values = {
            "seed": self.seed,
            "intercept": self.intercept,
            "subtopic_w": self.subtopic_w.tolist(),
            "topic_effect": self.topic_effect.tolist(),
            "hour_effect": self.hour_effect.tolist(),
            "topic_hour": self.topic_hour.tolist(),
            "mood_sd": self.mood_sd,
            "rise": self.rise,
            "liked_effect": self.liked_effect,
            "topics": list(P.TOPICS),
            "subtopics": [f"{t}/{s}" for t, s in P.SUBTOPIC_NAMES],
        }
        return {key: json.dumps(value) for key, value in values.items()}

    @classmethod
    def from_frames(
        cls,
        users: pd.DataFrame,
        world_users: pd.DataFrame,
        posts: pd.DataFrame,
        world_posts: pd.DataFrame,
        params: dict[str, str],
    ) -> Truth:
        """Rebuild the truth from the stored tables (users/posts carry demographics/topics)."""
        values = {key: json.loads(value) for key, value in params.items()}
        users = users.merge(world_users, on="user_id").sort_values("user_id")
        posts = posts.merge(world_posts, on="post_id").sort_values("post_id")
        topics = values["topics"]
        base = (
            np.asarray(P.EXP_GROUP_EFFECT)[users["exp_group"].to_numpy()]
            + np.asarray(P.GENDER_EFFECT)[users["gender"].to_numpy()]
            + users["country"].map(P.COUNTRY_EFFECT).fillna(0.0).to_numpy()
            + users["propensity"].to_numpy()
        )
        return cls(
            seed=int(values["seed"]),
            intercept=float(values["intercept"]),
            user_ids=users["user_id"].to_numpy(np.int64),
            post_ids=posts["post_id"].to_numpy(np.int64),
            user_base=base,
            user_taste=users[[f"taste_{t}" for t in topics]].to_numpy(np.float64),
            user_z=users[[f"z_{k}" for k in range(P.LATENT_DIM)]].to_numpy(np.float64),
            post_topic=posts["topic"].map({t: i for i, t in enumerate(topics)}).to_numpy(np.int64),
            post_subtopic=posts["subtopic"].to_numpy(np.int64),
            post_quality=posts["quality"].to_numpy(np.float64),
            subtopic_w=np.asarray(values["subtopic_w"], dtype=np.float64),
            topic_effect=np.asarray(values["topic_effect"], dtype=np.float64),
            hour_effect=np.asarray(values["hour_effect"], dtype=np.float64),
            topic_hour=np.asarray(values["topic_hour"], dtype=np.float64),
            mood_sd=float(values["mood_sd"]),
            rise=float(values["rise"]),
            liked_effect=float(values["liked_effect"]),
        )


class UnknownIdError(KeyError):
    def __init__(self, kind: str, ids: np.ndarray) -> None:
        shown = ", ".join(str(i) for i in ids[:5])
        more = f" and {len(ids) - 5} more" if len(ids) > 5 else ""
        super().__init__(f"unknown {kind} id(s): {shown}{more}")
        self.kind, self.ids = kind, ids

    def __str__(self) -> str:
        return self.args[0]


def _lookup(sorted_ids: np.ndarray, ids: np.ndarray, kind: str) -> np.ndarray:
    ids = np.asarray(ids, dtype=np.int64)
    idx = np.searchsorted(sorted_ids, ids)
    idx_clipped = np.minimum(idx, len(sorted_ids) - 1)
    bad = sorted_ids[idx_clipped] != ids
    if bad.any():
        raise UnknownIdError(kind, np.unique(ids[bad]))
    return idx_clipped


def build_time_tables() -> tuple[np.ndarray, np.ndarray]:
    """Hour effect (24,) and topic x hour interactions (topics, 24) from the parameters."""
    hour_effect = np.zeros(24)
    hour_effect[P.FIRST_HOUR : P.LAST_HOUR + 1] = P.HOUR_EFFECT
    topic_hour = np.zeros((len(P.TOPICS), 24))
    for i, topic in enumerate(P.TOPICS):
        topic_hour[i, 6:12] += P.MORNING_TOPICS.get(topic, 0.0)
        topic_hour[i, 18:24] += P.EVENING_TOPICS.get(topic, 0.0)
    return hour_effect, topic_hour
