"""The JSON behind the page (``GET /dashboard/data``): "now" from this process, "results" from the cache.

Only what a viewer needs and may see: the experiment as ``GET /experiment`` shows it, a few
serving settings by name (never a URL that could hold a password, never a token), this
process's traffic and exposure log, and the cached results as the analysis computed them.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime
from pathlib import Path

from gateway.config import Settings
from gateway.exposure import ExposureWriter

SHOWN_SERVING = (
    "compiled_inference",
    "predict_threads",
    "online_store",
    "mood_weight",
    "mood_encoder",
    "shadow_queue",
    "shadow_nice",
    "candidates",
    "retrieval_index",
    "deadline_ms",
)


def serving_config(settings: Settings) -> dict:
    """The serving settings a viewer may see (named here: a new setting is not shown by accident)."""
    values = settings.serving.model_dump()
    return {key: values[key] for key in SHOWN_SERVING if key in values}


def spill_bytes(spill_dir: Path) -> int:
    """Bytes waiting in the spill folder: spill files, their replays and crash journals."""
    total = 0
    for path in spill_dir.glob("*.jsonl*"):
        try:
            total += path.stat().st_size
        except OSError:
            continue  # replayed and removed meanwhile
    return total


def exposure_log_state(writer: ExposureWriter) -> dict:
    stats = writer.stats
    return {
        "state": "degraded" if stats.degraded else "healthy",
        "queued": writer.queue.qsize(),
        "written": stats.written,
        "spilled": stats.spilled,
        "replayed": stats.replayed,
        "spill_bytes": spill_bytes(writer.spill_path.parent),
        "last_error": stats.last_error,
    }


def page_data(
    *, experiment: dict, settings: Settings, traffic: dict, exposure_log: dict, results: dict
) -> dict:
    return {
        "generated_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "worker_pid": os.getpid(),
        "now": {
            "experiment": experiment,
            "serving": serving_config(settings),
            "traffic": traffic,
            "exposure_log": exposure_log,
        },
        "results": results,
    }
