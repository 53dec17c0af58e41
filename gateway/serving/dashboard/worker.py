"""The dashboard's results, computed in a child process at low OS priority.

``python -m gateway.serving.dashboard.worker`` reads the gateway's settings (JSON) on stdin,
lowers its priority (``dashboard.nice``) and prints one JSON object: ``analysis`` (exactly what
``recsys analyze --json`` prints for the same settings), ``over_time`` (the effect at growing
prefixes of the log, with its always-valid band) and ``shadow`` (``recsys analyze --shadow``
without the truth's figures), each replaced by ``{"message": ...}`` when it cannot be computed.
A child process, not a thread, so that pandas never holds the serving process's GIL.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import time

from gateway.analysis.report import AnalysisError
from gateway.config import Settings
from gateway.storage import StorageError, connect


def compute(settings: Settings) -> dict:
    """Every part of the results; a part that cannot be computed says why."""
    from gateway.analysis.over_time import effect_over_time
    from gateway.analysis.report import analyze_experiment
    from gateway.analysis.shadow import analyze_shadow

    try:
        engine = connect(settings.database.url)
    except StorageError as exc:
        return {
            "analysis": {"message": str(exc)},
            "over_time": {"message": str(exc)},
            "shadow": {"message": str(exc)},
        }
    arms = [a.name for a in settings.experiment.arms]
    name = settings.experiment.name
    began = time.perf_counter()
    parts = {
        "analysis": lambda: analyze_experiment(settings, engine),
        "over_time": lambda: effect_over_time(
            engine, experiment=name, window="1h", control=arms[0], treatment=arms[1]
        ),
        "shadow": lambda: analyze_shadow(engine, experiment=name),
    }
    out: dict = {}
    for key, part in parts.items():
        try:
            out[key] = part()
        except (AnalysisError, StorageError) as exc:
            out[key] = {"message": str(exc)}
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
