"""Every feature, declared once: name, the entity it describes, and whether it is categorical;
and the named feature sets that arms train on (``training.models.<arm>.feature_set``).

The values are computed by ``FeatureStore.compute`` (store.py) for any set of
(request, post) pairs; training, evaluation and serving all call that one function.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

FEATURE_SET_VERSION = "fs-5"
SVD_DIMS = 16
N_CLUSTERS = 30
# Smoothing of rates toward the global like rate (pseudo-counts).
POST_PRIOR_VIEWS = 50.0
POST_CLUSTER_PRIOR_VIEWS = 100.0  # post_lift: the post's rate shrunk towards its taste cluster's
USER_PRIOR_VIEWS = 20.0
TOPIC_PRIOR_LIKES = 5.0
# Taste clusters (features/taste.py): k-means within each topic, and the rank of the users ×
# taste clusters factorisation fitted on the training window.
TASTE_PER_TOPIC = 6
TASTE_SVD_DIMS = 16
TASTE_RANK = 3
TASTE_PRIOR_VIEWS = 5.0  # pseudo-views of the model's prediction in u_taste_rate


@dataclass(frozen=True)
class Feature:
    name: str
    entity: Literal["user", "post", "time", "history", "cross"]
    description: str
    categorical: bool = False


FEATURES: tuple[Feature, ...] = (
    Feature("gender", "user", "user_data.gender", True),
    Feature("age", "user", "user_data.age"),
    Feature("country", "user", "country code (store vocabulary)", True),
    Feature("city", "user", "city code (store vocabulary)", True),
    Feature("exp_group", "user", "user_data.exp_group (legacy segment)", True),
    Feature("os", "user", "os code", True),
    Feature("source", "user", "source code", True),
    Feature("hour", "time", "hour of the request"),
    Feature("weekday", "time", "day of week of the request, 0 = Monday"),
    Feature("topic", "post", "topic code", True),
    Feature("text_len", "post", "log1p of the text length in characters"),
    Feature("cluster", "post", "k-means cluster of the text embedding", True),
    *(Feature(f"svd_{k}", "post", f"text embedding component {k} (TF-IDF + SVD)") for k in range(SVD_DIMS)),
    Feature("post_views", "post", "log1p of the post's views before the request's day"),
    Feature("post_ctr", "post", "smoothed like rate of the post before the request's day"),
    Feature("u_views", "history", "log1p of the user's views before t"),
    Feature("u_likes", "history", "log1p of the user's likes before t"),
    Feature("u_ctr", "history", "smoothed like rate of the user before t"),
    Feature("u_today_views", "history", "user's views on the request's day before t"),
    Feature("u_today_ctr", "history", "smoothed like rate of the user today before t"),
    Feature(
        "u_topic_lift", "cross", "user's share of likes in the post's topic ÷ the topic's catalogue share"
    ),
    Feature(
        "u_profile_sim",
        "cross",
        "cosine of the post embedding and the sum of embeddings the user liked before t",
    ),
    Feature(
        "u_profile_dot", "cross", "dot of the post embedding and the mean embedding the user liked before t"
    ),
    Feature(
        "u_profile_contrast",
        "cross",
        "cosine of the post embedding and (mean embedding liked before t − the catalogue's mean embedding)",
    ),
    Feature("u_cluster_likes", "cross", "user's likes before t in the post's text cluster"),
    Feature(
        "u_cluster_lift",
        "cross",
        "user's share of likes in the post's text cluster ÷ the cluster's catalogue share",
    ),
    Feature("taste_cluster", "post", "k-means cluster of the text within the post's topic", True),
    Feature(
        "u_taste_score",
        "cross",
        "the user's factor (folded in from views and likes per taste cluster before the request's "
        "day) · the post's taste-cluster factor: the user's learnt taste for the post's cluster, "
        "in log-odds",
    ),
    Feature("u_taste_norm", "history", "norm of the user's taste factor (how distinct the taste is)"),
    Feature(
        "u_taste_sd",
        "cross",
        "posterior sd (Laplace) of u_taste_score: how sure the folded-in taste for the post's cluster is",
    ),
    Feature(
        "post_lift",
        "post",
        "log-odds of the post's like rate before the request's day, shrunk towards its taste cluster's "
        "rate, minus the cluster's: the post's own quality",
    ),
    Feature(
        "u_taste_views", "cross", "log1p of the user's views before the request's day in the post's taste cluster"
    ),
    Feature(
        "u_taste_rate",
        "cross",
        "the user's like rate before the request's day in the post's taste cluster, shrunk towards the factor "
        "model's prediction for the user and the cluster",
    ),
)
FEATURE_NAMES = tuple(f.name for f in FEATURES)
CATEGORICAL = frozenset(f.name for f in FEATURES if f.categorical)
USER_FEATURES = tuple(f.name for f in FEATURES if f.entity == "user")

# "classic": the classic model of the source course: demographics, post popularity, time,
# topic-level history and one simple text similarity; and, as production rankers do, the score
# of a collaborative factor model (the user's learnt taste for the post's cluster).
CLASSIC = (
    "gender",
    "age",
    "country",
    "exp_group",
    "os",
    "source",
    "hour",
    "weekday",
    "topic",
    "text_len",
    "post_views",
    "post_ctr",
    "u_views",
    "u_likes",
    "u_ctr",
    "u_today_views",
    "u_today_ctr",
    "u_topic_lift",
    "u_profile_sim",
    "u_taste_score",
    "u_taste_norm",
)
# "taste": the same, plus what the text reveals about each user's taste: the embedding itself,
# text clusters and the user's likes in them, the profile contrast, the taste cluster with the
# user's views and shrunk like rate in it; and city.
TASTE = (
    *CLASSIC,
    "city",
    "cluster",
    "u_profile_dot",
    "u_profile_contrast",
    "u_cluster_likes",
    "u_cluster_lift",
    "taste_cluster",
    "u_taste_views",
    "u_taste_rate",
    "u_taste_sd",
    "post_lift",
    *(f"svd_{k}" for k in range(SVD_DIMS)),
)
FEATURE_SETS: dict[str, tuple[str, ...]] = {"classic": CLASSIC, "taste": TASTE}
