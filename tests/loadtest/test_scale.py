"""The scale bench: per arm and setting, on the tiny world, in process."""

from __future__ import annotations

from gateway.loadtest.scale import measure_store, plot_scale
from tests.conftest import write_config


def test_measure_store_times_both_settings_per_arm(tiny_db, tiny_store_dir, tiny_models, tmp_path):
    config = write_config(
        tmp_path / "c.yaml", db=tiny_db, features_dir=tiny_store_dir.parent, models=tiny_models
    )
    result = measure_store(str(tiny_store_dir), str(config), [40, None], 30, 0)
    assert result["posts"] == 350 and result["rss_gb"] > 0 and result["retrieval"]
    memory = result["memory_gb"]
    assert memory["anon_gb"] > 0 and memory["file_gb"] > 0 and memory["rss_gb"] >= memory["anon_gb"]
    two, whole = result["settings"]["40"], result["settings"]["all"]
    assert whole["candidates_per_request"] is None and 20 <= two["candidates_per_request"] <= 60
    for setting in (two, whole):
        assert set(setting["arms"]) == {"control", "test"}
        assert sum(a["count"] for a in setting["arms"].values()) == 30
        assert set(setting["cpu"]) == set(setting["arms"]) and setting["cpu"]["test"]["p50_ms"] > 0
    png = plot_scale([result, {**result, "posts": 700}], tmp_path / "scale.png")
    assert png.read_bytes()[:4] == b"\x89PNG"
