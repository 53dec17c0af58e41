"""Configuration that says no: unknown keys are rejected, naming the key and its section."""

from __future__ import annotations

import pytest
import yaml

from gateway.config import ConfigError, load_settings


def _load(tmp_path, data: dict):
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(data))
    return load_settings(path)


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (
            {"experiment": {"arms": [{"name": "control", "wieght": 50, "model": "m"}]}},
            ["unknown key 'wieght' in section experiment.arms[0]", "did you mean 'weight'"],
        ),
        (
            {"experiment": {"interleave_wieght": 10}},
            ["unknown key 'interleave_wieght' in section experiment", "did you mean 'interleave_weight'"],
        ),
        ({"servng": {"mood_weight": 0.3}}, ["unknown section 'servng'", "did you mean 'serving'"]),
        ({"serving": {"shadow_queu": 3}}, ["unknown key 'shadow_queu' in section serving"]),
        ({"paths": {"features": "x"}}, ["unknown key 'features' in section paths", "features_dir"]),
        ({"database": {"uri": "sqlite://"}}, ["unknown key 'uri' in section database"]),
        (
            {
                "training": {
                    "models": {"control": {"library": "lightgbm", "feature_set": "classic", "parms": {}}}
                }
            },
            ["unknown key 'parms' in section training.models.control", "did you mean 'params'"],
        ),
    ],
)
def test_unknown_keys_are_rejected_with_key_and_section(tmp_path, data, expected):
    with pytest.raises(ConfigError) as error:
        _load(tmp_path, data)
    for text in expected:
        assert text in str(error.value)
    assert str(tmp_path / "config.yaml") in str(error.value)


def test_the_new_keys_are_accepted(tmp_path):
    settings = _load(
        tmp_path,
        {
            "experiment": {
                "interleave_weight": 20,
                "arms": [
                    {"name": "control", "weight": 40, "model": "models/control", "shadow": "models/test"},
                    {"name": "test", "weight": 40, "model": "models/test"},
                ],
            },
            "serving": {"shadow_queue": 8, "shadow_nice": 0},
            # library hyperparameters stay free-form
            "training": {
                "models": {"control": {"library": "lightgbm", "feature_set": "classic", "params": {"any": 1}}}
            },
        },
    )
    assert settings.experiment.interleave_weight == 20
    assert (
        str(settings.experiment.arms[0].shadow) == "models/test"
        and settings.experiment.arms[1].shadow is None
    )
    assert settings.serving.shadow_queue == 8 and settings.serving.shadow_nice == 0


def test_the_repository_config_yaml_is_valid():
    settings = load_settings("config.yaml")
    assert settings.experiment.interleave_weight == 0  # off unless configured


def test_environment_overrides_still_work_and_unknown_ones_are_named(tmp_path, monkeypatch):
    monkeypatch.setenv("RECSYS_SERVING__MOOD_WEIGHT", "0.25")
    monkeypatch.setenv("RECSYS_EXPERIMENT__INTERLEAVE_WEIGHT", "5")
    monkeypatch.setenv("RECSYS_ADMIN_TOKEN", "not a setting")  # other RECSYS_ variables are left alone
    settings = _load(tmp_path, {})
    assert settings.serving.mood_weight == 0.25 and settings.experiment.interleave_weight == 5
    monkeypatch.setenv("RECSYS_SERVING__MOOD_WIEGHT", "0.3")
    with pytest.raises(ConfigError, match="unknown key 'mood_wieght' in section serving") as error:
        _load(tmp_path, {})
    assert "RECSYS_SERVING__MOOD_WIEGHT" in str(error.value)
    monkeypatch.delenv("RECSYS_SERVING__MOOD_WIEGHT")
    monkeypatch.setenv("RECSYS_SERVNG__MOOD_WEIGHT", "0.3")  # pydantic-settings would ignore it
    with pytest.raises(ConfigError, match="RECSYS_SERVNG__MOOD_WEIGHT: unknown section 'servng'"):
        _load(tmp_path, {})


def test_other_invalid_values_keep_their_messages(tmp_path):
    with pytest.raises(ConfigError, match="less than or equal to 1"):
        _load(tmp_path, {"serving": {"mood_weight": 3}})
    with pytest.raises(ConfigError, match="greater than or equal to 0"):
        _load(tmp_path, {"experiment": {"interleave_weight": -1}})


def test_serve_refuses_to_start_on_an_unknown_key(tmp_path):
    from typer.testing import CliRunner

    from gateway.cli import app

    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump({"experiment": {"arms": [{"name": "control", "wieght": 1, "model": "m"}]}}))
    result = CliRunner().invoke(app, ["serve", "--config", str(config)], env={"COLUMNS": "300"})
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert "unknown key 'wieght' in section experiment.arms[0]" in " ".join(result.output.split())
