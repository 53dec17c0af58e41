"""``recsys world like-prob``: the truth's public interface for judging recommendations."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from sqlalchemy import Engine

from gateway.world.load import liked_before, load_truth


class PairsFileError(ValueError):
    pass


REQUIRED = ("user_id", "post_id", "timestamp")


def read_pairs(path: Path) -> pd.DataFrame:
    if not path.exists():
        raise PairsFileError(f"{path}: no such file")
    try:
        frame = pd.read_csv(path)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise PairsFileError(f"{path}: not a readable CSV file ({exc})") from exc
    missing = [c for c in REQUIRED if c not in frame.columns]
    if missing:
        raise PairsFileError(
            f"{path}: missing column(s) {', '.join(missing)}; expected header user_id,post_id,timestamp"
        )
    for name in ("user_id", "post_id"):
        values = pd.to_numeric(frame[name], errors="coerce")
        bad = values.isna() | (values != values.round())
        if bad.any():
            row = int(np.flatnonzero(bad.to_numpy())[0])
            raise PairsFileError(
                f"{path}: row {row + 2}: {name} {frame[name].iloc[row]!r} is not an integer id"
            )
        frame[name] = values.astype(np.int64)
    stamps = pd.to_datetime(frame["timestamp"], errors="coerce", format="ISO8601")
    if stamps.isna().any():
        row = int(np.flatnonzero(stamps.isna().to_numpy())[0])
        raise PairsFileError(
            f"{path}: row {row + 2}: timestamp {frame['timestamp'].iloc[row]!r} is not an ISO datetime"
        )
    if stamps.dt.tz is not None:
        stamps = stamps.dt.tz_convert("UTC").dt.tz_localize(None)
    frame["timestamp"] = stamps.astype("datetime64[s]")
    return frame


def like_probabilities(engine: Engine, pairs: pd.DataFrame) -> np.ndarray:
    truth = load_truth(engine)
    users = truth.user_index(pairs["user_id"].to_numpy())
    posts = truth.post_index(pairs["post_id"].to_numpy())
    seconds = pairs["timestamp"].to_numpy().astype("datetime64[s]").astype(np.int64)
    return truth.like_prob(users, posts, seconds, liked_before(engine, pairs))


def write_like_probabilities(engine: Engine, pairs: pd.DataFrame, output: Path) -> None:
    """``pairs`` plus their true ``p_like``, as CSV into ``output``."""
    pairs["p_like"] = like_probabilities(engine, pairs)
    pairs.to_csv(output, index=False, date_format="%Y-%m-%d %H:%M:%S")
