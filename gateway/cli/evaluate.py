"""``recsys evaluate``: expected Hitrate@5 of the arms and the baselines under the truth."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from gateway.cli.common import (
    ConfigOption,
    DbOption,
    FeaturesDirOption,
    UserError,
    console,
    engine_from,
    friendly,
    settings_from,
    store_from,
)
from gateway.cli.render import print_evaluation


@friendly
def evaluate_command(
    db: DbOption = None,
    requests: Annotated[
        int, typer.Option(min=10, max=100_000, help="Requests sampled from the held-out period.")
    ] = 2000,
    seed: Annotated[int, typer.Option(help="Sampling seed.")] = 0,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object to stdout.")] = False,
    dump: Annotated[
        Path | None,
        typer.Option(
            "--dump", help="CSV of every top-5 list: request_id,user_id,timestamp,ranker,rank,post_id."
        ),
    ] = None,
    features_dir: FeaturesDirOption = None,
    config: ConfigOption = None,
    candidates: Annotated[
        str | None,
        typer.Option(help="Candidates per request, or all (else config.yaml serving.candidates)."),
    ] = None,
) -> None:
    """Expected Hitrate@5 under the truth: control, test, random, popularity, oracle; ranked
    through the two stages as served (serving.candidates), with the candidates' recall."""
    from gateway.judging.evaluation import evaluate_arms

    settings = settings_from(config)
    if candidates is not None:
        try:
            settings.serving.candidates = type(settings.serving)._enough_candidates(
                candidates if candidates == "all" else int(candidates)
            )
        except ValueError:
            raise UserError(f"--candidates must be all or an integer in 10..100000, not {candidates!r}") from None
    store = store_from(features_dir, config)
    result = evaluate_arms(
        settings, store, lambda: engine_from(db, config), requests=requests, seed=seed, dump=dump
    )
    if as_json:
        print(json.dumps(result.as_json()))
        return
    print_evaluation(result.as_json(), title=f"{result.requests} requests, {result.window[0]} .. {result.window[1]}")
    console.print(f"truth ROC-AUC on the same held-out views: {result.auc['truth']:.4f}")
    if result.candidates is not None:
        console.print(
            f"two stages: {result.candidates} candidates ({result.candidate_count} per request after "
            f"de-duplication, retrieval {result.retrieval_version}); whole catalogue: "
            + ", ".join(f"{n} {v:.4f}" for n, v in result.hitrate_all.items())
            + "; candidate recall of the catalogue's top 5: "
            + ", ".join(f"{n} {v:.3f}" for n, v in result.candidate_recall.items())
        )
    console.print(
        "topic-filtered requests (the topic of the post being viewed): "
        + ", ".join(f"{name} {value:.4f}" for name, value in result.topic_hitrate.items())
    )
