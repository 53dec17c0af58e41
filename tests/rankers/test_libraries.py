"""Loading model folders: every broken folder is refused with a readable reason."""

from __future__ import annotations

import json

import pytest

from gateway.rankers.libraries import load_ranker
from gateway.rankers.model_dir import ModelError


def test_broken_model_folders_are_rejected(tiny_models, tmp_path):
    with pytest.raises(ModelError, match="recsys train"):
        load_ranker(tmp_path / "nothing")
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "manifest.json").write_text((tiny_models / "control" / "manifest.json").read_text())
    (broken / "model.txt").write_text("not a model")
    with pytest.raises(ModelError, match="corrupt or replaced model file"):
        load_ranker(broken)  # the checksum refuses it before LightGBM parses it
    # Without a checksum the file is parsed in a child process first: LightGBM segfaults on
    # this truncated model, which must cost a clear error, not this process.
    manifest = json.loads((tiny_models / "control" / "manifest.json").read_text())
    del manifest["model_sha256"]
    (broken / "manifest.json").write_text(json.dumps(manifest))
    model = (tiny_models / "control" / "model.txt").read_bytes()
    (broken / "model.txt").write_bytes(model[: len(model) // 2])
    with pytest.raises(ModelError, match="corrupt model file"):
        load_ranker(broken)
    (broken / "model.txt").write_bytes(model)
    assert load_ranker(broken).version == manifest["model_version"]  # an intact file passes the check
    manifest = json.loads((tiny_models / "test" / "manifest.json").read_text())
    manifest["features"] = [*manifest["features"], "no_such_feature"]
    wrong = tmp_path / "wrong"
    wrong.mkdir()
    (wrong / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ModelError, match="no_such_feature"):
        load_ranker(wrong)
    with pytest.raises(ModelError, match="retrain"):
        load_ranker(tiny_models / "control", "fs-0")
