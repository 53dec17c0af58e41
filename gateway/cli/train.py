"""``recsys train <arm>`` and ``recsys compile``: fit an arm's ranker; compile forests for serving."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from gateway.cli.common import (
    ConfigOption,
    FeaturesDirOption,
    console,
    err,
    friendly,
    settings_from,
    store_from,
)

app = typer.Typer(help="Train an arm's ranker.", no_args_is_help=True)

SeedOption = Annotated[int | None, typer.Option(help="Training seed (else config.yaml training.seed).")]
MaxRowsOption = Annotated[int | None, typer.Option("--max-rows", help="Cap on sampled training views.")]
OutOption = Annotated[
    Path | None, typer.Option("--out", help="Model folder (else the arm's path in config.yaml).")
]
# The arms of the default configuration (config.yaml training.models), one subcommand each.
ARMS = {
    "control": "Train the control arm: LightGBM on the shared features.",
    "test": "Train the test arm: CatBoost on all shared features (text embedding, clusters, profile).",
}


def compile_and_report(model_dir: Path) -> None:
    """Compile a model folder's forest for serving and check it scores like its library."""
    from gateway.rankers.compiled import PROBE_ROWS
    from gateway.rankers.libraries import compile_model_dir

    with console.status(f"compiling {model_dir} to native code…"):
        report = compile_model_dir(model_dir)
    console.print(
        f"compiled {report.path} in {report.seconds:.1f} s; "
        f"max |score − {report.library}| on {PROBE_ROWS:,} random rows {report.max_difference:.2g}"
    )


def _train(
    arm: str,
    features_dir: Path | None,
    out: Path | None,
    seed: int | None,
    max_rows: int | None,
    config: Path | None,
) -> None:
    from gateway.rankers.compiled import CompileUnavailable
    from gateway.training import train_configured_arm

    settings = settings_from(config)
    store = store_from(features_dir, config)
    manifest, model_dir = train_configured_arm(settings, arm, store, out, seed=seed, max_rows=max_rows)
    m = manifest["metrics"]
    console.print(
        f"{arm}: {manifest['model_version']} validation AUC {m['validation_auc']:.4f}, "
        f"logged Hitrate@5 {m['validation_hitrate@5_logged']:.4f} in {manifest['training_seconds']:.0f} s → {model_dir}"
    )
    try:
        compile_and_report(model_dir)
    except CompileUnavailable as exc:  # the model is trained and usable; serving falls back to the library
        err.print(f"warning: {exc}")


def _train_command(arm: str, doc: str):
    def command(
        features_dir: FeaturesDirOption = None,
        out: OutOption = None,
        seed: SeedOption = None,
        max_rows: MaxRowsOption = None,
        config: ConfigOption = None,
    ) -> None:
        _train(arm, features_dir, out, seed, max_rows, config)

    command.__doc__ = doc
    command.__name__ = f"train_{arm}"
    app.command(arm)(friendly(command))


for _arm, _doc in ARMS.items():
    _train_command(_arm, _doc)


@friendly
def compile_command(
    model_dirs: Annotated[
        list[Path] | None,
        typer.Argument(help="Model folders (else every arm in config.yaml)."),
    ] = None,
    config: ConfigOption = None,
) -> None:
    """Compile arms to native code for serving (cached beside the model; `train` does it too)."""
    for model_dir in model_dirs or [a.model for a in settings_from(config).experiment.arms]:
        compile_and_report(model_dir)

