"""What the gateway serves with: an immutable snapshot (experiment + loaded rankers) that a
reload replaces atomically. A request takes one reference at its start and finishes on it.

An arm's shadow model (``shadow:`` beside ``model:``) is part of the snapshot: loaded,
checksummed, probed and compiled exactly like the arm's own model, swapped with it."""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from gateway.assignment import Experiment
from gateway.config import ConfigError, Settings, load_settings
from gateway.features.artifacts import FeatureStoreError
from gateway.features.mood_lexicon import Lexicon, LexiconError, default_lexicon
from gateway.features.post_texts import PostTexts, load_post_texts
from gateway.features.store import FeatureStore
from gateway.rankers.compiled import compile_ranker
from gateway.rankers.libraries import load_ranker
from gateway.rankers.model_dir import ModelError

log = logging.getLogger("gateway.serving")
PROBE_POSTS = 4096  # catalogue posts a loading model is probed on (spread evenly)


@dataclass(frozen=True)
class Catalogue:
    """Post texts and topics by dense post index (from the feature store's artifacts). The texts
    stay one UTF-8 buffer (memory-mapped from the store when it has one): ``texts[i]`` decodes
    one post's, so a worker holds no Python string per post."""

    post_ids: np.ndarray
    texts: PostTexts
    topics: list[str]
    topic_codes: np.ndarray
    topic_names: list[str]

    @classmethod
    def load(cls, store_dir: Path, store: FeatureStore) -> Catalogue:
        try:
            texts = load_post_texts(store_dir, store.post_ids)
        except FeatureStoreError as exc:
            raise ModelError(str(exc)) from exc
        names = list(store.manifest["vocabularies"]["topic"])
        return cls(
            post_ids=store.post_ids,
            texts=texts,
            topics=[names[c] for c in store.posts["topic"].tolist()],  # one shared string per topic
            topic_codes=store.posts["topic"],
            topic_names=names,
        )


@dataclass(frozen=True)
class Snapshot:
    experiment: Experiment
    rankers: dict
    versions: dict[str, str]
    config_path: str
    mood_weight: float = 0.5
    mood_lexicon: Lexicon = field(default_factory=default_lexicon)
    pending_compile: tuple = ()  # (ranker, probe features) still on the native predictor
    loaded_at: str = field(default_factory=lambda: datetime.now(UTC).isoformat(timespec="seconds"))
    shadows: dict = field(default_factory=dict)  # arm -> its shadow ranker
    shadow_versions: dict[str, str] = field(default_factory=dict)
    candidates: int | None = None  # serving.candidates; None = rank the whole catalogue


class ReloadError(RuntimeError):
    pass


def experiment_from(settings: Settings) -> Experiment:
    return Experiment.from_settings(settings.experiment)


def _load_probed(what: str, model_dir: Path, store: FeatureStore, settings: Settings, probe: dict):
    """A model folder loaded (checksum, feature list), probed on one request's ``probe`` rows
    (``probe_rows``); ReloadError if not fit."""
    try:
        ranker = load_ranker(
            model_dir, store.manifest["feature_set_version"], threads=settings.serving.predict_threads
        )
        scores = np.asarray(ranker.predict(probe))
    except ModelError as exc:
        raise ReloadError(f"{what}: {exc}") from exc
    except Exception as exc:  # noqa: BLE001 - a model that cannot score is rejected, whatever the cause
        raise ReloadError(f"{what}: model failed a probe prediction ({type(exc).__name__}: {exc})") from exc
    rows = len(next(iter(probe.values())))
    if scores.shape != (rows,) or not np.all(np.isfinite(scores)):
        raise ReloadError(f"{what}: model returned invalid scores on a probe request")
    return ranker


def probe_rows(store: FeatureStore, user_idx: np.ndarray, seconds: np.ndarray) -> dict[str, np.ndarray]:
    """The features of one request paired with at most ``PROBE_POSTS`` posts spread evenly over
    the catalogue: what a loading model is checked on (finite scores, its compiled forest equal
    to the library). Not the whole catalogue: at a million posts its features and the models'
    scores over them were the largest part of a worker's start-up peak (README "Two-stage
    serving")."""
    n_posts = len(store.post_ids)
    posts = np.unique(np.linspace(0, n_posts - 1, min(PROBE_POSTS, n_posts)).astype(np.int64))
    return store.compute(user_idx, seconds, np.zeros(len(posts), np.int64), posts)


def build_snapshot(
    config_path: str | Path | None, store: FeatureStore, settings: Settings | None = None
) -> Snapshot:
    """Load and fully validate a configuration and its models; raise ReloadError if anything is off."""
    try:
        settings = settings or load_settings(config_path)
        experiment = experiment_from(settings)
    except (ConfigError, ValueError) as exc:
        raise ReloadError(f"invalid config: {exc}") from exc
    try:
        lexicon = Lexicon.load(settings.serving.mood_lexicon)
    except LexiconError as exc:
        raise ReloadError(str(exc)) from exc
    candidates = None if settings.serving.candidates == "all" else int(settings.serving.candidates)
    if candidates is not None and store.retrieval is None:
        raise ReloadError(
            f"serving.candidates is {candidates} but feature store {store.version} has no retrieval "
            "index: run `recsys features build` (or set candidates: all)"
        )
    rankers, versions, pending, shadows = {}, {}, [], {}
    probe_user = np.array([0])
    probe_time = np.array([store.manifest["day0"] + 86400 * max(store.manifest["days"] - 1, 0) + 12 * 3600])
    probe = probe_rows(store, probe_user, probe_time)
    for arm in settings.experiment.arms:
        loaded = [(rankers, f"arm {arm.name}", arm.model)]
        if arm.shadow is not None:
            loaded.append((shadows, f"arm {arm.name} shadow", arm.shadow))
        for into, what, model_dir in loaded:
            ranker = _load_probed(what, model_dir, store, settings, probe)
            if settings.serving.compiled_inference and not attach_compiled(
                ranker, probe, compile_if_missing=False
            ):
                pending.append(ranker)
            into[arm.name] = ranker
        versions[arm.name] = rankers[arm.name].version
    return Snapshot(
        experiment=experiment,
        rankers=rankers,
        versions=versions,
        config_path=str(config_path or ""),
        mood_weight=settings.serving.mood_weight,
        mood_lexicon=lexicon,
        pending_compile=tuple((ranker, probe) for ranker in pending),
        shadows=shadows,
        shadow_versions={arm: ranker.version for arm, ranker in shadows.items()},
        candidates=candidates,
    )


def attach_compiled(ranker, probe: dict, *, compile_if_missing: bool) -> bool:
    """Give a ranker its compiled forest (cached, or compiled now if allowed).

    False when there is none yet; a toolchain problem or a forest that scores differently
    leaves the ranker on its library's predictor, logged, never failing the load."""
    try:
        report = compile_ranker(ranker, probe, compile_if_missing=compile_if_missing)
        if report is None:
            return False
    except Exception as exc:  # noqa: BLE001 - any failure keeps the native predictor
        log.warning(
            "arm %s: serving with %s's predictor (%s: %s)",
            ranker.name,
            ranker.library,
            type(exc).__name__,
            exc,
        )
        return True
    log.info(
        "arm %s: compiled forest %s attached in %.1f s (max |diff| on probe %.2g)",
        ranker.name,
        report.path.name,
        report.seconds,
        report.max_difference,
    )
    return True


def compile_in_background(snapshot: Snapshot) -> threading.Thread | None:
    """Compile the snapshot's forests that have no cache yet, off the request path."""
    if not snapshot.pending_compile:
        return None

    def run() -> None:
        for ranker, probe in snapshot.pending_compile:
            attach_compiled(ranker, probe, compile_if_missing=True)

    thread = threading.Thread(target=run, name="compile-forests", daemon=True)
    thread.start()
    return thread


class ServingState:
    """Holds the current snapshot; ``reload`` swaps it only after the new one is valid."""

    def __init__(self, snapshot: Snapshot) -> None:
        self._snapshot = snapshot
        self._reload_lock = threading.Lock()
        self.reloads = 0
        self.failed_reloads = 0
        self.last_reload_error: str | None = None

    @property
    def snapshot(self) -> Snapshot:
        return self._snapshot

    def reload(self, config_path: str | Path | None, store: FeatureStore) -> Snapshot:
        with self._reload_lock:
            try:
                new = build_snapshot(config_path, store)
            except ReloadError as exc:
                self.failed_reloads += 1
                self.last_reload_error = str(exc)
                raise
            self._snapshot = new  # a single reference assignment: atomic for readers
            compile_in_background(new)
            self.reloads += 1
            self.last_reload_error = None
            return new
