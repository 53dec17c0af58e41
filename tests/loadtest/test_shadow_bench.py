"""``recsys bench --compare-shadow`` on the tiny world: two real gateways, the same requests."""

from __future__ import annotations

import pytest
import yaml

from gateway.loadtest.bench import BenchError
from gateway.loadtest.shadow_bench import compare_shadow, without_shadows
from tests.conftest import SHADOW_TEST_SERVING, shadowed_arms, write_config


def _config(tmp_path, tiny_db, tiny_store_dir, tiny_models, *, shadow: bool):
    return write_config(
        tmp_path / "config.yaml",
        db=tiny_db,
        features_dir=tiny_store_dir.parent,
        models=tiny_models,
        arms=shadowed_arms(tiny_models, shadow=shadow),
        serving=SHADOW_TEST_SERVING,
    )


def test_without_shadows_needs_a_shadow(tmp_path, tiny_db, tiny_store_dir, tiny_models):
    plain = _config(tmp_path, tiny_db, tiny_store_dir, tiny_models, shadow=False)
    with pytest.raises(BenchError, match="no arm has a `shadow:` model"):
        without_shadows(plain, tmp_path / "out.yaml")
    shadowed = _config(tmp_path, tiny_db, tiny_store_dir, tiny_models, shadow=True)
    copy = yaml.safe_load(without_shadows(shadowed, tmp_path / "out.yaml").read_text())
    assert all("shadow" not in arm for arm in copy["experiment"]["arms"])
    assert copy["database"] == yaml.safe_load(shadowed.read_text())["database"]


def test_compare_shadow_runs_both_gateways_on_the_same_requests(
    tmp_path, tiny_db, tiny_store_dir, tiny_models, tiny_store
):
    config = _config(tmp_path, tiny_db, tiny_store_dir, tiny_models, shadow=True)
    runs, extra = compare_shadow(tiny_store, config, requests=60, concurrency=2, workers=1, blocks=2)
    assert set(runs) == {"without shadow", "with shadow"}
    for summary in runs.values():
        assert (
            summary["requests"] == 60
            and summary["errors"] == 0
            and set(summary["arms"]) == {"control", "test"}
        )
    assert runs["without shadow"]["arms"]["test"]["count"] == runs["with shadow"]["arms"]["test"]["count"]
    work = extra["shadow_work"]
    assert work["shadowed"] == runs["with shadow"]["arms"]["test"]["count"]
    assert work["scored"] + work["dropped"] == work["shadowed"] and work["scored"] > 0
    assert set(extra["with_over_without"]) == {"p50_ms", "p95_ms", "p99_ms", "mean_ms"}
    assert extra["passed"] == (extra["with_over_without"]["p99_ms"] - 1 <= extra["bar_p99_increase"])
