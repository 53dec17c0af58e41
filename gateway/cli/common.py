"""What every command shares: the consoles, one-line errors with exit code 2, the common
options, and settings / engine / feature store from them."""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape

from gateway.config import ConfigError, Settings, load_settings, resolve_db_url
from gateway.storage import StorageError, connect

console = Console()
err = Console(stderr=True)

DbOption = Annotated[
    str | None, typer.Option("--db", help="Database URL (else env RECSYS_DB_URL, else config.yaml).")
]
ConfigOption = Annotated[
    Path | None, typer.Option("--config", help="config.yaml to use (else env RECSYS_CONFIG).")
]
FeaturesDirOption = Annotated[
    Path | None,
    typer.Option("--features-dir", help="Feature store folder (else config.yaml paths.features_dir)."),
]


class UserError(Exception):
    """An error caused by input or state the user can fix; printed without a traceback."""


def known_errors() -> tuple[type[BaseException], ...]:
    """Errors the user can act on (imported on demand: most commands never see them)."""
    from gateway.analysis.report import AnalysisError
    from gateway.features.artifacts import FeatureStoreError
    from gateway.features.mood_encoder import MoodEncoderError
    from gateway.features.mood_lexicon import LexiconError
    from gateway.features.mood_text import MoodTextError
    from gateway.features.redis_history import OnlineStoreError
    from gateway.features.word_vectors import WordVectorsError
    from gateway.judging.simulation import SimulationError
    from gateway.loadtest.bench import BenchError
    from gateway.loadtest.soak import SoakError
    from gateway.rankers.compiled import CompileUnavailable
    from gateway.rankers.model_dir import ModelError
    from gateway.serving.server import ServerError
    from gateway.world.generate import WorldExistsError
    from gateway.world.load import NoWorldError
    from gateway.world.pairs import PairsFileError
    from gateway.world.truth import UnknownIdError

    return (
        UserError,
        StorageError,
        ConfigError,
        WorldExistsError,
        NoWorldError,
        PairsFileError,
        UnknownIdError,
        FeatureStoreError,
        LexiconError,
        MoodEncoderError,
        MoodTextError,
        WordVectorsError,
        ModelError,
        CompileUnavailable,
        OnlineStoreError,
        BenchError,
        SoakError,
        ServerError,
        AnalysisError,
        SimulationError,
    )


def friendly(func):
    """Turn known errors into a one-line message and exit code 2, never a traceback."""

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        try:
            return func(*args, **kwargs)
        except known_errors() as exc:
            err.print(f"[bold red]error:[/] {escape(str(exc))}", soft_wrap=True, highlight=False)
            raise typer.Exit(2) from None

    return wrapper


def settings_from(config: Path | None) -> Settings:
    return load_settings(config)


def engine_from(db: str | None, config: Path | None = None, *, create: bool = False):
    return connect(resolve_db_url(db, settings_from(config)), create=create)


def store_from(features_dir: Path | None, config: Path | None):
    from gateway.features.artifacts import current_store_dir
    from gateway.features.store import FeatureStore

    return FeatureStore.load(current_store_dir(features_dir or settings_from(config).paths.features_dir))


def check_scale(scale: str) -> None:
    from gateway.world.params import SCALES

    if scale not in SCALES:
        raise UserError(f"unknown scale {scale!r}: choose one of {', '.join(SCALES)}")
