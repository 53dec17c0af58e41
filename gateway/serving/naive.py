"""A naive reference service, written the way the seed services were written: per request a
pandas frame of the whole catalogue, the model library's ``predict`` on it (all cores), a
pandas sort, rows turned into dicts. Same feature store, same models, same assignment, same
answers as the gateway; it exists only so `recsys bench --compare-naive` can report the
gateway's speed as a ratio measured in the same run, not as an absolute time.

It keeps no exposure log (neither did the seeds), which only flatters it.
"""

from __future__ import annotations

import os
from contextlib import asynccontextmanager
from datetime import datetime

import pandas as pd
from fastapi import FastAPI, HTTPException

from gateway.assignment import assign
from gateway.config import load_settings
from gateway.features import artifacts as A
from gateway.features.artifacts import current_store_dir
from gateway.features.store import FeatureStore
from gateway.rankers.libraries import load_arm_rankers
from gateway.serving.routes.recommendations import to_epoch_seconds
from gateway.serving.state import experiment_from


def create_naive_app(config_path: str | None = None) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI):
        settings = load_settings(config_path)
        store_dir = current_store_dir(settings.paths.features_dir)
        store = FeatureStore.load(store_dir)
        app.state.store = store
        app.state.posts = pd.read_parquet(store_dir / A.POST_TEXTS)[["post_id", "text", "topic"]]
        app.state.experiment = experiment_from(settings)
        app.state.models = load_arm_rankers(settings.experiment.arms, store.manifest["feature_set_version"])
        yield

    app = FastAPI(title="Naive reference service", lifespan=lifespan)

    @app.get("/health")
    def health() -> dict:
        return {"status": "ok"}

    @app.get("/post/recommendations/")
    def recommendations(id: int, time: datetime, limit: int = 5) -> dict:
        store: FeatureStore = app.state.store
        user_idx = int(store.user_index([id])[0])
        if user_idx < 0:
            raise HTTPException(404, "user not found")
        arm = assign(app.state.experiment, id).arm
        if arm not in app.state.models:  # the interleaved group: the reference has no merge
            arm = app.state.experiment.arms[0]
        ranker = app.state.models[arm]
        seconds = to_epoch_seconds(time)
        frame = pd.DataFrame(store.compute([user_idx], [seconds]))[ranker.features]
        frame["score"] = ranker.predict_frame(frame)
        frame["post_id"] = store.post_ids
        liked = store.post_ids[store.liked_before(user_idx, seconds)]
        top = frame[~frame["post_id"].isin(liked)].sort_values("score", ascending=False).head(limit)
        posts = app.state.posts.merge(top[["post_id", "score"]], on="post_id").sort_values(
            "score", ascending=False
        )
        return {
            "exp_group": arm,
            "recommendations": [
                {"id": int(row["post_id"]), "text": row["text"], "topic": row["topic"]}
                for _, row in posts.iterrows()
            ],
        }

    return app


def app_from_env() -> FastAPI:
    """Factory for ``uvicorn --factory``: config from RECSYS_CONFIG."""
    return create_naive_app(os.environ.get("RECSYS_CONFIG"))
