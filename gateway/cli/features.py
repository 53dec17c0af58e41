"""``recsys features`` (the offline build) and ``recsys online`` (the shared history in Redis)."""

from __future__ import annotations

from typing import Annotated

import typer

from gateway.cli.common import (
    ConfigOption,
    DbOption,
    FeaturesDirOption,
    console,
    engine_from,
    friendly,
    settings_from,
    store_from,
)

app = typer.Typer(help="The shared feature store (offline build).", no_args_is_help=True)
online_app = typer.Typer(help="The online store's shared history in Redis (optional).", no_args_is_help=True)


@app.command("build")
@friendly
def features_build(
    db: DbOption = None, features_dir: FeaturesDirOption = None, config: ConfigOption = None
) -> None:
    """Build the versioned feature-store artifacts from the three source tables."""
    from gateway.features.build import build_feature_store

    settings = settings_from(config)
    engine = engine_from(db, config)
    path = build_feature_store(
        engine,
        features_dir or settings.paths.features_dir,
        seed=settings.training.seed,
        retrieval_index=settings.serving.retrieval_index,
    )
    console.print(f"feature store → {path}")


@online_app.command("push")
@friendly
def online_push(
    redis_url: Annotated[
        str | None, typer.Option("--redis-url", help="Redis URL (else config.yaml serving.redis_url).")
    ] = None,
    features_dir: FeaturesDirOption = None,
    config: ConfigOption = None,
) -> None:
    """Materialise the feature store's event history into Redis, one key per user, for
    gateways with `serving.online_store: redis` (replicas then share online events)."""
    from rich.progress import Progress

    from gateway.features.redis_history import RedisHistory
    from gateway.progress import stderr

    settings = settings_from(config)
    store = store_from(features_dir, config)
    url = redis_url or settings.serving.redis_url
    history = RedisHistory.connect(url, store, settings.serving.redis_prefix, require_pushed=False)
    with Progress(console=stderr) as progress:
        task = progress.add_task(f"pushing {store.version} to {url}", total=history.users_to_push())
        result = history.push(lambda n: progress.advance(task, n))
    console.print(
        f"{result['users']:,} users, {result['events']:,} events, {result['bytes'] / 1e6:.1f} MB "
        f"in {result['seconds']} s → {url} ({history.namespace})"
    )
