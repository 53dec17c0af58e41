"""The dashboard's results, computed in a child process at low OS priority.

``python -m gateway.serving.dashboard.worker`` reads the gateway's settings (JSON) on stdin,
lowers its priority (``dashboard.nice``) and prints one JSON object: ``analysis`` (exactly what
``recsys analyze --json`` prints for the same settings), ``over_time`` (the notebook's
``report.effect_over_time``: the effect with its fixed and always-valid intervals at about 6
cut-offs over the log's span), ``power`` (``recsys analyze power --json``) and ``shadow`` (``recsys analyze --shadow``
without the truth's figures), each replaced by ``{"message": ...}`` when it cannot be computed.
A child process, not a thread, so that pandas never holds the serving process's GIL.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import sys
import time

import pandas as pd
from sqlalchemy import Engine

from gateway.analysis.decision import json_number
from gateway.analysis.report import AnalysisError
from gateway.config import Settings
from gateway.storage import StorageError, connect, read_frame
from gateway.tables import Tables

POINTS = 6  # cut-offs of the effect over time (each is one aggregation of the log in SQL)


def over_time(engine: Engine, settings: Settings, points: int = POINTS) -> dict:
    """``report.effect_over_time`` (the notebook's) at about ``points`` cut-offs over the log's span."""
    from gateway.analysis.aggregate import Scope, require_exposures
    from gateway.analysis.report import effect_over_time

    require_exposures(engine)
    name, arms = settings.experiment.name, [a.name for a in settings.experiment.arms]
    where, params = Scope(name).where()
    span = read_frame(
        engine,
        f"SELECT MIN(request_time) AS first, MAX(request_time) AS last FROM {Tables.EXPOSURES} WHERE {where}",
        params=params,
        parse_dates=["first", "last"],
    ).iloc[0]
    hours = (
        1
        if pd.isna(span["first"])
        else max(1, math.ceil((span["last"] - span["first"]) / pd.Timedelta("1h") / points))
    )
    frame = effect_over_time(
        engine,
        experiment=name,
        window="1h",
        control=arms[0],
        treatment=arms[1],
        freq=f"{hours}h",
        planned_users=settings.analysis.sequential_planned_users,
    )
    return {
        "control": arms[0],
        "treatment": arms[1],
        "freq": f"{hours}h",
        "planned_users": settings.analysis.sequential_planned_users,
        "points": [
            {
                "until": time.isoformat(),
                "users": int(row["users"]),
                "absolute": json_number(row["absolute"]),
                "ci95_absolute": [json_number(row["ci_low"]), json_number(row["ci_high"])],
                "sequential_ci95_absolute": [json_number(row["seq_low"]), json_number(row["seq_high"])],
                "p_value": json_number(row["p_value"]),
                "sequential_p_value": json_number(row["p_value_sequential"]),
            }
            for time, row in frame.iterrows()
        ],
    }


def power(engine: Engine, settings: Settings) -> dict:
    """Users and days for the configured power at ``analysis.power_mde``, as ``recsys analyze power``."""
    from gateway.analysis.planning import power_report
    from gateway.assignment import Experiment

    a = settings.analysis
    return power_report(
        engine,
        Experiment.from_settings(settings.experiment),
        mde=a.power_mde,
        window="1h",
        cuped_days=a.cuped_days,
        alpha=a.alpha,
        target_power=a.power,
    )


def compute(settings: Settings) -> dict:
    """Every part of the results; a part that cannot be computed says why."""
    from gateway.analysis.report import analyze_experiment
    from gateway.analysis.shadow import analyze_shadow

    try:
        engine = connect(settings.database.url)
    except StorageError as exc:
        return {key: {"message": str(exc)} for key in ("analysis", "over_time", "shadow", "power")}
    began = time.perf_counter()
    parts = {
        "analysis": lambda: analyze_experiment(settings, engine),  # = `recsys analyze --json`
        "over_time": lambda: over_time(engine, settings),
        "shadow": lambda: analyze_shadow(engine, experiment=settings.experiment.name),
        "power": lambda: power(engine, settings),  # = `recsys analyze power --json`
    }
    out: dict = {}
    for key, part in parts.items():
        try:
            out[key] = part()
        except (AnalysisError, StorageError) as exc:
            out[key] = {"message": str(exc)}
        except Exception as exc:  # noqa: BLE001 - one failing part must not hide the others
            out[key] = {
                "message": f"failed: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
            }
    out["seconds"] = round(time.perf_counter() - began, 3)
    engine.dispose()
    return out


def lower_priority(nice: int) -> None:
    """OS niceness ``nice``; at 19 also Linux's SCHED_IDLE, which runs only on a core nothing else wants."""
    if nice > 0:
        os.nice(nice)
    if nice >= 19 and hasattr(os, "SCHED_IDLE"):
        with contextlib.suppress(OSError):
            os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))


def main() -> int:
    settings = Settings.model_validate_json(sys.stdin.read())
    lower_priority(settings.dashboard.nice)
    print(json.dumps(compute(settings), default=str))  # as `recsys analyze --json` prints
    return 0


if __name__ == "__main__":
    sys.exit(main())
