"""Settings: environment > config.yaml > defaults, validated once.

Every section forbids keys it does not know (``extra="forbid"``): a misspelt key is an error
that names the key and its section, at start-up and on reload, never a silent default.
"""

from __future__ import annotations

import difflib
import os
import types
import typing
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

DEFAULT_CONFIG = Path("config.yaml")


class ConfigError(ValueError):
    """The configuration file or an override is invalid."""


class Section(BaseModel):
    """A config.yaml section: unknown keys are rejected."""

    model_config = ConfigDict(extra="forbid")


class DatabaseSettings(Section):
    url: str = "sqlite:///data/recsys.db"


class PathSettings(Section):
    features_dir: Path = Path("data/features")
    reports_dir: Path = Path("reports")
    spill_dir: Path = Path("data/spill")


class ModelSettings(Section):
    """How an arm's model is trained: its library, its named feature set and hyperparameters.

    ``params`` override the library's defaults key by key (``gateway.rankers.<library>``)."""

    library: str
    feature_set: str
    params: dict[str, Any] = Field(default_factory=dict)


class TrainingSettings(Section):
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


class ArmSettings(Section):
    name: str
    weight: float = Field(gt=0)
    model: Path
    # A model folder that scores every request this arm serves, off the response path; its
    # lists go to shadow_exposures, never to the user (README: Interleaving and shadow scoring).
    shadow: Path | None = None


class ExperimentSettings(Section):
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
    # Share of users (same units as the arms' weights) whose requests get a team-draft
    # interleaving of the first two arms' rankings; 0 = off.
    interleave_weight: float = Field(0.0, ge=0.0)

    @field_validator("scheme")
    @classmethod
    def _known_scheme(cls, value: str) -> str:
        if value not in ("md5", "growthbook-v2"):
            raise ValueError(f"unknown hashing scheme {value!r}: use md5 or growthbook-v2")
        return value


class AdmissionSettings(Section):
    """Admission control per process (README "Overload"): at most ``max_in_flight``
    recommendation requests are worked on at once; a request past the bound waits up to
    ``shed_delay_ms`` for a slot (newest first), then gets the popularity fallback or a 503 with
    Retry-After (the wait also paces clients that retry at once)."""

    max_in_flight: int = Field(4, ge=0, le=10_000)  # 0 = no bound
    overflow: str = "fallback"
    shed_delay_ms: float = Field(40.0, ge=0.0, le=10_000.0)
    retry_after_s: int = Field(1, ge=0, le=3600)

    @field_validator("overflow")
    @classmethod
    def _known_overflow(cls, value: str) -> str:
        if value not in ("fallback", "503"):
            raise ValueError(f"unknown admission overflow {value!r}: use fallback or 503")
        return value


class ServingSettings(Section):
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

    # Shadow scoring: requests waiting for their shadow model at most (beyond: dropped, counted)
    # and the OS niceness of the shadow thread (19 = lowest priority, 0 = same as requests).
    shadow_queue: int = Field(64, ge=1, le=100_000)
    shadow_nice: int = Field(19, ge=0, le=19)
    # Two-stage serving (README "Two-stage serving"): how many candidates retrieval hands the
    # arm's ranker ("all" = rank the whole catalogue), and the vector index the feature-store
    # build writes (exact | hnswlib | faiss).
    candidates: int | typing.Literal["all"] = 500
    retrieval_index: str = "hnswlib"

    @field_validator("candidates")
    @classmethod
    def _enough_candidates(cls, value: int | str) -> int | str:
        if value != "all" and not 10 <= int(value) <= 100_000:
            raise ValueError(f"candidates must be all or an integer in 10..100000, got {value!r}")
        return value

    @field_validator("retrieval_index")
    @classmethod
    def _known_index(cls, value: str) -> str:
        if value not in ("exact", "hnswlib", "faiss"):
            raise ValueError(f"unknown retrieval_index {value!r}: use exact, hnswlib or faiss")
        return value

    admission: AdmissionSettings = AdmissionSettings()
    # A ranker that has not answered this long after the request arrived yields the popularity
    # fallback (counted); 0 = wait for it.
    deadline_ms: float = Field(250.0, ge=0.0, le=600_000.0)
    # Redis failures open a circuit breaker: requests use the local history without calling
    # Redis for this long, then one request probes it again.
    redis_breaker_cooldown_s: float = Field(2.0, gt=0.0, le=3600.0)

    @field_validator("online_store")
    @classmethod
    def _known_store(cls, value: str) -> str:
        if value not in ("memory", "redis"):
            raise ValueError(f"unknown online_store {value!r}: use memory or redis")
        return value


class DashboardSettings(Section):
    """The browser dashboard (README "Dashboard"): served only when a viewer or admin token is set."""

    # Seconds a computed result is shown before the next look at the page recomputes it.
    refresh_s: float = Field(60.0, ge=1.0, le=86_400.0)
    # OS niceness of the child process that computes the results (19 = lowest priority, and on
    # Linux also SCHED_IDLE: it runs only on a core that nothing else wants).
    nice: int = Field(19, ge=0, le=19)
    # Seconds the child may take before it is stopped and the page shows the error.
    timeout_s: float = Field(300.0, ge=1.0, le=3600.0)


class GuardrailSettings(Section):
    """The treatment may not be worse than control on ``metric`` by more than ``margin`` (a
    fraction of control's value when ``relative``); metrics: analysis/guardrails.py METRICS."""

    metric: str
    margin: float = Field(gt=0)
    relative: bool = True

    @field_validator("metric")
    @classmethod
    def _known_metric(cls, value: str) -> str:
        known = ("latency_mean", "latency_p99", "likes_per_view", "user_hitrate@5", "topic_diversity")
        if value not in known:
            raise ValueError(f"unknown guardrail metric {value!r}: use one of {', '.join(known)}")
        return value


class AnalysisSettings(Section):
    # CUPED's pre-period: each user's likes and views in feed_data during these days before
    # their first exposure (0 = no CUPED).
    cuped_days: float = Field(14.0, ge=0.0, le=365.0)
    # The sequential test's tuning: the users (both arms) at which its interval is tightest.
    sequential_planned_users: float = Field(5000.0, gt=0)
    # Power calculator defaults (recsys analyze power).
    power_mde: float = Field(0.02, gt=0)
    power: float = Field(0.8, gt=0, lt=1)
    alpha: float = Field(0.05, gt=0, lt=1)
    # One-sided non-inferiority tests reported by `recsys analyze` ("guardrails").
    guardrails: list[GuardrailSettings] = Field(
        default_factory=lambda: [
            GuardrailSettings(metric="latency_p99", margin=0.10),
            GuardrailSettings(metric="latency_mean", margin=0.10),
            GuardrailSettings(metric="likes_per_view", margin=0.05),
        ]
    )


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="RECSYS_", env_nested_delimiter="__", extra="forbid")

    database: DatabaseSettings = DatabaseSettings()
    paths: PathSettings = PathSettings()
    training: TrainingSettings = TrainingSettings()
    experiment: ExperimentSettings = ExperimentSettings()
    serving: ServingSettings = ServingSettings()
    dashboard: DashboardSettings = DashboardSettings()
    analysis: AnalysisSettings = AnalysisSettings()

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


ENV_PREFIX = "RECSYS_"


def _model_of(annotation) -> type[BaseModel] | None:
    """The section model inside an annotation (``X``, ``X | None``, ``list[X]``, ``dict[K, X]``)."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin in (list, tuple, typing.Union, types.UnionType):
        return next((m for m in map(_model_of, args) if m is not None), None)
    if origin is dict and len(args) == 2:
        return _model_of(args[1])
    return None


def _where(loc: tuple) -> tuple[str, type[BaseModel] | None]:
    """The dotted section a location points into, and that section's model."""
    model: type[BaseModel] | None = Settings
    parts: list[str] = []
    for step in loc:
        if isinstance(step, int):
            parts[-1] += f"[{step}]"
            continue
        if model is not None and step in model.model_fields:
            model = _model_of(model.model_fields[step].annotation)
        # else: a dict's key (training.models.<arm>): the model of its values stays
        parts.append(str(step))
    return ".".join(parts), model


def unknown_keys(exc: ValidationError) -> list[str]:
    """One message per key a section does not know, naming the key, its section, the closest
    valid key and, when it came from one, the environment variable."""
    messages = []
    for error in exc.errors():
        if error["type"] != "extra_forbidden":
            continue
        *outer, key = error["loc"]
        section, model = _where(tuple(outer))
        valid = sorted(model.model_fields) if model is not None else []
        what = f"unknown key {key!r} in section {section}" if section else f"unknown section {key!r}"
        close = difflib.get_close_matches(str(key), valid, n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        env = ENV_PREFIX + "__".join(str(p).upper() for p in error["loc"] if not isinstance(p, int))
        source = f" (from environment variable {env})" if env in os.environ else ""
        messages.append(f"{what}{source}{hint} (valid: {', '.join(valid)})")
    return messages


def _unknown_env_sections() -> list[str]:
    """``RECSYS_<SECTION>__<KEY>`` variables whose section does not exist (pydantic-settings
    would ignore them silently)."""
    bad = []
    for name in os.environ:
        if name.upper().startswith(ENV_PREFIX) and "__" in name:
            section = name[len(ENV_PREFIX) :].split("__", 1)[0].lower()
            if section not in Settings.model_fields:
                bad.append(
                    f"environment variable {name}: unknown section {section!r} "
                    f"(sections: {', '.join(Settings.model_fields)})"
                )
    return bad


def load_settings(path: str | Path | None = None) -> Settings:
    """Read config.yaml (or RECSYS_CONFIG, or ``path``) and apply environment overrides."""
    config_path = Path(path or os.environ.get("RECSYS_CONFIG") or DEFAULT_CONFIG)
    if bad := _unknown_env_sections():
        raise ConfigError("; ".join(bad))
    try:
        settings = Settings(**_read_yaml(config_path))
    except ValidationError as exc:
        if unknown := unknown_keys(exc):
            raise ConfigError(f"{config_path}: {'; '.join(unknown)}") from exc
        raise ConfigError(f"{config_path}: {exc}") from exc
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
