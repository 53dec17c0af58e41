"""Tables printed by more than one command."""

from __future__ import annotations

from rich.table import Table

from gateway.cli.common import console


def print_evaluation(evaluation: dict, title: str) -> None:
    """The ``hitrate@5`` / ``ci95`` / ``auc`` of an evaluation (``EvaluationResult.as_json()``)."""
    table = Table("ranker", "Hitrate@5 (expected)", "95 % CI", "ROC-AUC", title=title)
    for name, value in evaluation.get("hitrate@5", {}).items():
        lo, hi = evaluation["ci95"][name]
        auc = evaluation["auc"].get(name)
        table.add_row(name, f"{value:.4f}", f"[{lo:.4f}, {hi:.4f}]", "" if auc is None else f"{auc:.4f}")
    console.print(table)


def print_analysis(result: dict) -> None:
    srm = result["srm"]
    if srm["flag"]:
        console.print(
            f"[bold red]WARNING: sample-ratio mismatch (p = {srm['p_value']:.2e}): users per arm {srm['users']} vs "
            f"expected { ({k: round(v) for k, v in srm['expected'].items()}) }. Do not trust the result below.[/]"
        )
    table = Table(
        "arm",
        "users",
        "requests",
        "hits",
        "Hitrate@5",
        "model versions",
        title=f"experiment {result['experiment']}, window {result['window']}",
    )
    for arm, a in result["arms"].items():
        table.add_row(
            arm,
            str(a["users"]),
            str(a["requests"]),
            str(a["hits"]),
            f"{a['hitrate']:.4f}",
            ", ".join(a["model_versions"]),
        )
    console.print(table)
    d = result["delta"]
    if "absolute" in d:
        console.print(
            f"test − control: {d['absolute']:+.4f} [{d['ci95_absolute'][0]:+.4f}, {d['ci95_absolute'][1]:+.4f}] absolute, "
            f"{d['relative']:+.2%} [{d['ci95_relative'][0]:+.2%}, {d['ci95_relative'][1]:+.2%}] relative; "
            f"p = {d['p_value']:.4f} (delta method, per-user sums); Welch on per-user rates p = {result['welch']['p_value']:.4f}"
        )
    else:
        console.print(d.get("message", ""))
    console.print(
        f"SRM: p = {srm['p_value']:.4f}; excluded (not in experiment): {result['excluded_not_in_experiment']} requests"
    )
    for key, group in result.get("by", {}).get("groups", {}).items():
        summary = ", ".join(
            f"{arm} {a['requests']} requests Hitrate@5 {a['hitrate']:.4f}" for arm, a in group["arms"].items()
        )
        d = group["delta"]
        diff = f"; test − control {d['absolute']:+.4f} (p = {d['p_value']:.3f})" if "absolute" in d else ""
        console.print(f"  [{result['by']['field']} = {key}] {summary}{diff}")
    for split in result.get("by_model_version", []):
        console.print(
            f"  {split['arm']} {split['model_version']}: {split['requests']} requests, Hitrate@5 {split['hitrate']:.4f} ({split['first_request']} .. {split['last_request']})"
        )
