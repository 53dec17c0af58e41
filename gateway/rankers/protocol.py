"""The ranker interface shared by models and baselines; what a library's ``fit`` takes and returns."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np

from gateway.features.store import FeatureStore


class Ranker(Protocol):
    """Scores every catalogue post for each request (user index, epoch seconds)."""

    name: str
    version: str

    def score(
        self,
        store: FeatureStore,
        user_idx: np.ndarray,
        seconds: np.ndarray,
        features: dict[str, np.ndarray] | None = None,
    ) -> np.ndarray:
        """(requests, posts) scores; higher is better. ``features`` may carry a precomputed
        ``store.compute(user_idx, seconds)`` so that several rankers share it."""
        ...


@dataclass
class TrainingData:
    """Feature matrices (columns in ``names`` order) and labels of the training and validation rows."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_valid: np.ndarray
    y_valid: np.ndarray
    names: list[str]
    categorical: list[str]  # the names the library may treat as categorical


@dataclass
class Fit:
    """A trained model file's validation predictions and how it was trained."""

    p_valid: np.ndarray  # predicted probabilities of the validation rows
    params: dict  # as used, for the manifest
    categorical: list[str]  # the features the library treated as categorical
