"""Checks before `recsys serve` starts workers: each problem is one readable error at once
instead of a worker dying in its start-up."""

from __future__ import annotations

from gateway.config import Settings
from gateway.features import artifacts
from gateway.features.mood_encoder import check_mood_settings
from gateway.features.redis_history import open_client
from gateway.rankers.libraries import check_model_dir


def preflight(settings: Settings, workers: int = 1) -> list[str]:
    """Raise the store's, the models' or Redis's error if the gateway cannot start; return
    warnings about a configuration that starts but misbehaves."""
    store_dir = artifacts.current_store_dir(settings.paths.features_dir)
    for arm in settings.experiment.arms:
        check_model_dir(arm.model)
    check_mood_settings(settings.serving.mood_encoder, settings.serving.mood_lexicon)
    if settings.serving.online_store == "redis":
        version = artifacts.read_manifest(store_dir)["version"]
        open_client(settings.serving.redis_url, settings.serving.redis_prefix, version).close()
    warnings = []
    if workers > 1 and settings.serving.online_store == "memory":
        warnings.append(
            "with several workers and serving.online_store: memory, POST /events reaches one "
            "worker only; use online_store: redis to share online events (README: Scaling)"
        )
    return warnings
