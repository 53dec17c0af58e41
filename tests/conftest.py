"""Shared fixtures: a tiny world in SQLite (built once per session) and real Postgres databases."""

from __future__ import annotations

import contextlib
import os
import uuid
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from gateway.features.build import build_feature_store
from gateway.features.store import FeatureStore
from gateway.serving.server import ServerError, ServerProcess
from gateway.storage import connect
from gateway.world.generate import synthesize
from gateway.world.params import SCALES

PG_ADMIN_URL = os.environ.get("RECSYS_TEST_PG", "postgresql+psycopg2://postgres@127.0.0.1:5432/postgres")
TINY_SEED = 11


@pytest.fixture(scope="session")
def tiny_db(tmp_path_factory) -> str:
    path = tmp_path_factory.mktemp("world") / "tiny.db"
    url = f"sqlite:///{path}"
    synthesize(connect(url, create=True), SCALES["tiny"], TINY_SEED)
    return url


@pytest.fixture(scope="session")
def tiny_store_dir(tiny_db, tmp_path_factory) -> Path:
    return build_feature_store(connect(tiny_db), tmp_path_factory.mktemp("features"))


@pytest.fixture(scope="session")
def tiny_store(tiny_store_dir) -> FeatureStore:
    return FeatureStore.load(tiny_store_dir)


def _pg_available() -> str | None:
    try:
        engine = create_engine(PG_ADMIN_URL, connect_args={"connect_timeout": 3})
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        engine.dispose()
        return None
    except Exception as exc:  # noqa: BLE001 - any failure means "no server"
        return str(exc).splitlines()[0]


@contextlib.contextmanager
def temporary_pg_database(prefix: str):
    """Create an empty PostgreSQL database, yield its plain URL, drop it afterwards.

    Skips when the server is unreachable, except in CI (CI=true), where it fails."""
    reason = _pg_available()
    if reason:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"PostgreSQL is required in CI but unreachable at {PG_ADMIN_URL}: {reason}")
        pytest.skip(f"PostgreSQL unreachable: {reason}")
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield PG_ADMIN_URL.rsplit("/", 1)[0].replace("postgresql+psycopg2://", "postgresql://") + f"/{name}"
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture
def pg_url():
    """A fresh, empty PostgreSQL database, dropped afterwards. Mandatory when CI=true."""
    with temporary_pg_database("recsys_test") as url:
        yield url


def train_tiny(arm: str, store, out: Path, seed: int = 1, max_rows: int = 40_000, rounds: int = 60):
    """A quick model on the tiny world (tests only), configured as by default."""
    from gateway.config import TrainingSettings
    from gateway.training import train_arm

    return train_arm(
        arm,
        store,
        out,
        model=TrainingSettings().models[arm],
        seed=seed,
        max_rows=max_rows,
        validation_days=7,
        evaluation_days=7,
        max_rounds=rounds,
    )


@pytest.fixture(scope="session")
def tiny_models(tiny_store, tmp_path_factory) -> Path:
    """Both arms trained quickly on the tiny world (60 boosting rounds) and compiled, as
    `recsys train` does."""
    from gateway.rankers.libraries import compile_model_dir

    root = tmp_path_factory.mktemp("models")
    for arm in ("control", "test"):
        train_tiny(arm, tiny_store, root / arm)
        compile_model_dir(root / arm)
    return root


def write_config(
    path: Path,
    *,
    db: str,
    features_dir: Path,
    models: Path,
    spill_dir: Path | None = None,
    serving: dict | None = None,
    **experiment,
) -> Path:
    """A config.yaml for tests; ``experiment`` keys override the experiment section, ``serving``
    keys the serving section (``deadline_ms`` is 0 unless given); the spill and journal go to
    ``spill/`` beside the file unless ``spill_dir`` says otherwise."""
    import yaml

    exp = {
        "name": "test-exp",
        "salt": "test-salt",
        "scheme": "md5",
        "coverage": 1.0,
        "enabled": True,
        "arms": [
            {"name": "control", "weight": 50, "model": str(models / "control")},
            {"name": "test", "weight": 50, "model": str(models / "test")},
        ],
        "overrides": {},
    }
    exp.update(experiment)
    config = {
        "database": {"url": db},
        "paths": {
            "features_dir": str(features_dir),
            "reports_dir": str(path.parent / "reports"),
            "spill_dir": str(spill_dir or path.parent / "spill"),
        },
        "experiment": exp,
    }
    # No request deadline unless a test sets one: on a busy test machine a request may take longer
    # than the default 250 ms, and tests check the model's answers (tests/serving/test_overload.py
    # checks the deadline itself).
    config["serving"] = {"deadline_ms": 0, **(serving or {})}
    path.write_text(yaml.safe_dump(config))
    return path


def shadowed_arms(models: Path, *, shadow: bool = True, weight: float = 50) -> list[dict]:
    """Both arms, the test arm shadowed by the control model (another ranking to log)."""
    arms = [
        {"name": "control", "weight": weight, "model": str(models / "control")},
        {"name": "test", "weight": weight, "model": str(models / "test")},
    ]
    if shadow:
        arms[1]["shadow"] = str(models / "control")
    return arms


# Shadow tests run the shadow thread at normal priority: on a shared test machine other
# processes can starve a nice-19 thread for seconds.
SHADOW_TEST_SERVING = {"shadow_nice": 0}


class LiveServer(ServerProcess):
    """``recsys serve`` in a subprocess, ready once constructed; ``stop()`` sends SIGTERM
    (graceful) and waits."""

    def __init__(self, config: Path, env: dict[str, str]) -> None:
        import subprocess
        import sys

        try:
            super().__init__(
                [sys.executable, "-m", "gateway.cli", "serve", "--config", str(config)],
                env={**os.environ, **env},
                ready_path="/ready",
                timeout=90,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
            )
        except ServerError as exc:
            pytest.fail(f"{exc}: {self.proc.stdout.read()}")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(60)  # a stop that hangs fails the test


SIM_TOKEN = "sim-token"


def simulate_on_copy(tiny_db: str, root: Path, *, requests: int, seed: int, **config) -> dict:
    """A copy of the tiny world in ``root`` after ``requests`` simulated requests (150 users, 2 days,
    3 clients) through a live gateway configured by ``config`` (``write_config``'s keywords)."""
    import shutil

    from gateway.judging.simulation import default_start, simulate
    from gateway.storage import read_frame
    from gateway.world.load import load_truth

    shutil.copy(tiny_db.removeprefix("sqlite:///"), root / "world.db")
    db = f"sqlite:///{root / 'world.db'}"
    config_path = write_config(root / "config.yaml", db=db, **config)
    engine = connect(db)
    feed_before = read_frame(engine, "SELECT COUNT(*) AS n FROM feed_data")["n"][0]
    server = LiveServer(config_path, {"RECSYS_ADMIN_TOKEN": SIM_TOKEN})
    try:
        truth = load_truth(engine)
        start = default_start(engine)
        report = simulate(
            server.url,
            engine,
            truth,
            admin_token=SIM_TOKEN,
            users=150,
            requests=requests,
            start=start,
            days=2,
            seed=seed,
            concurrency=3,
        )
    finally:
        server.stop()
    return {
        "db": db,
        "config": config_path,
        "engine": engine,
        "report": report,
        "truth": truth,
        "start": start,
        "feed_before": feed_before,
    }


@pytest.fixture(scope="session")
def simulated(tiny_db, tiny_store_dir, tiny_models, tmp_path_factory):
    """A copy of the tiny world after 600 requests through the real gateway (3 clients)."""
    return simulate_on_copy(
        tiny_db,
        tmp_path_factory.mktemp("sim"),
        requests=600,
        seed=3,
        features_dir=tiny_store_dir.parent,
        models=tiny_models,
    )


MODES_REQUESTS = 450


@pytest.fixture(scope="session")
def simulated_modes(tiny_db, tiny_store_dir, tiny_models, tmp_path_factory):
    """A copy of the tiny world after 450 simulated requests through a live gateway with a third
    of the users interleaved and the test arm shadowed by the control model."""
    return simulate_on_copy(
        tiny_db,
        tmp_path_factory.mktemp("modes"),
        requests=MODES_REQUESTS,
        seed=5,
        features_dir=tiny_store_dir.parent,
        models=tiny_models,
        arms=shadowed_arms(tiny_models, weight=1),
        interleave_weight=1,
        serving=SHADOW_TEST_SERVING,
    )
