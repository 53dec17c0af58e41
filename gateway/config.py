"""Settings: environment > config.yaml > defaults, validated once."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, Field, field_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

DEFAULT_CONFIG = Path("config.yaml")


class ConfigError(ValueError):
    """The configuration file or an override is invalid."""


class DatabaseSettings(BaseModel):
    url: str = "sqlite:///data/recsys.db"


class PathSettings(BaseModel):
    features_dir: Path = Path("data/features")
    reports_dir: Path = Path("reports")
    spill_dir: Path = Path("data/spill")


class ModelSettings(BaseModel):
    """How an arm's model is trained: its library, its named feature set and hyperparameters.

    ``params`` override the library's defaults key by key (``gateway.rankers.<library>``)."""

    library: str
    feature_set: str
    params: dict[str, Any] = Field(default_factory=dict)


class TrainingSettings(BaseModel):
    seed: int = 42
    max_train_rows: int = Field(1_200_000, gt=1000)
    validation_days: int = Field(7, ge=1)
    evaluation_days: int = Field(7, ge=1)
    models: dict[str, ModelSettings] = Field(
        default_factory=lambda: {
            "control": ModelSettings(library="lightgbm", feature_set="classic"),
            "test": ModelSettings(library="catboost", feature_set="taste"),
        }
    )


class ArmSettings(BaseModel):
    name: str
    weight: float = Field(gt=0)
    model: Path


class ExperimentSettings(BaseModel):
    name: str = "feed-ranker-v1"
    enabled: bool = True
    scheme: str = "md5"
    salt: str = "feed-ranker-v1"
    coverage: float = Field(1.0, ge=0.0, le=1.0)
    arms: list[ArmSettings] = Field(
        default_factory=lambda: [
            ArmSettings(name="control", weight=50, model=Path("models/control")),
            ArmSettings(name="test", weight=50, model=Path("models/test")),
        ]
    )
    overrides: dict[int, str] = Field(default_factory=dict)

    @field_validator("scheme")
    @classmethod
    def _known_scheme(cls, value: str) -> str:
        if value not in ("md5", "growthbook-v2"):
            raise ValueError(f"unknown hashing scheme {value!r}: use md5 or growthbook-v2")
        return value


class ServingSettings(BaseModel):
    mood_weight: float = Field(0.5, ge=0.0, le=1.0)
    predict_threads: int = Field(1, ge=0, le=64)
    compiled_inference: bool = True
    online_store: str = "memory"
    redis_url: str = "redis://127.0.0.1:6379/0"
    redis_prefix: str = Field("recsys", pattern=r"^[A-Za-z0-9_.-]{1,64}$")
    redis_local_fallback: bool = True
    # How moods are embedded: "tfidf" (the feature store's text space) or "vectors:<dir>" (a
    # word-vector model directory, README "Moods"); None lexicon = the packaged one.
    mood_encoder: str = "tfidf"
    mood_lexicon: Path | None = None

    @field_validator("mood_encoder")
    @classmethod
    def _known_mood_encoder(cls, value: str) -> str:
        if value != "tfidf" and not (value.startswith("vectors:") and value[len("vectors:") :].strip()):
            raise ValueError(f"unknown mood_encoder {value!r}: use tfidf or vectors:<directory>")
        return value

    @field_validator("online_store")
    @classmethod
    def _known_store(cls, value: str) -> str:
        if value not in ("memory", "redis"):
            raise ValueError(f"unknown online_store {value!r}: use memory or redis")
        return value


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="RECSYS_", env_nested_delimiter="__", extra="ignore")

    database: DatabaseSettings = DatabaseSettings()
    paths: PathSettings = PathSettings()
    training: TrainingSettings = TrainingSettings()
    experiment: ExperimentSettings = ExperimentSettings()
    serving: ServingSettings = ServingSettings()

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # The environment wins over the YAML file, which arrives as init kwargs.
        return env_settings, init_settings


def _read_yaml(path: Path) -> dict[str, Any]:
    if not path.exists():
        return {}
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: invalid YAML: {exc}") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level")
    return data


def load_settings(path: str | Path | None = None) -> Settings:
    """Read config.yaml (or RECSYS_CONFIG, or ``path``) and apply environment overrides."""
    config_path = Path(path or os.environ.get("RECSYS_CONFIG") or DEFAULT_CONFIG)
    try:
        settings = Settings(**_read_yaml(config_path))
    except ValueError as exc:
        if isinstance(exc, ConfigError):
            raise
        raise ConfigError(f"{config_path}: {exc}") from exc
    if url := os.environ.get("RECSYS_DB_URL"):
        settings.database.url = url
    return settings


def resolve_db_url(cli_url: str | None, settings: Settings | None = None) -> str:
    """``--db URL`` first, then env RECSYS_DB_URL, then config.yaml."""
    if cli_url:
        return cli_url
    return (settings or load_settings()).database.url
