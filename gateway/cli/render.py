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
    if fallbacks := result.get("fallbacks", {}).get("by_reason"):
        fb = result["fallbacks"]
        shares = ", ".join(f"{arm} {n} ({fb['share'][arm]:.2%})" for arm, n in fb["per_arm"].items())
        warning = " [red]— uneven across arms (guardrail)[/]" if fb["flag"] else ""
        console.print(
            f"served the popularity fallback, left out of the comparison ({fallbacks}): {shares}; "
            f"p = {fb['p_value']:.4f}{warning}"
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
    if "interleaving" in result:
        print_interleaving(result["interleaving"])


def print_interleaving(il: dict) -> None:
    """The interleaving part of ``recsys analyze``: wins, ties and the preference for the treatment."""
    c, t = il["control"], il["treatment"]
    table = Table(
        "requests",
        "users",
        f"wins {c}",
        f"wins {t}",
        "ties",
        f"preference for {t}",
        "95 % CI",
        "p-value",
        title="interleaved requests (team draft)",
    )
    lo, hi = il["ci95"]
    table.add_row(
        str(il["requests"]),
        str(il["users"]),
        str(il["wins"][c]),
        str(il["wins"][t]),
        str(il["ties"]),
        f"{il['preference']:+.4f}",
        f"[{lo:+.4f}, {hi:+.4f}]",
        f"{il['p_value']:.4f}",
    )
    console.print(table)
    console.print(f"preference = (wins {t} − wins {c}) / requests with a winner; {il['method']}")
    if il.get("message"):
        console.print(f"[yellow]{il['message']}[/]")


def print_shadow(report: dict) -> None:
    """``recsys analyze --shadow``: one row per shadow model."""
    table = Table(
        "arm",
        "shadow model",
        "scored",
        "dropped",
        "errors",
        "Jaccard@5",
        "RBO@5",
        "latency p50 / p99 ms",
        "E[Hitrate@5] shadow / served",
        title=f"shadow models, experiment {report['experiment']}",
    )
    for s in report["shadow"]:
        judged = s.get("expected_hitrate@5")
        table.add_row(
            s["arm"],
            s["model_version"],
            str(s["scored"]),
            str(s["dropped"]),
            str(s["errors"]),
            "" if s["jaccard@5"] is None else f"{s['jaccard@5']:.3f}",
            "" if s["rbo@5"] is None else f"{s['rbo@5']:.3f}",
            f"{s['latency_ms']['p50']} / {s['latency_ms']['p99']}",
            "" if judged is None else f"{judged['shadow']:.4f} / {judged['served']:.4f}",
        )
    console.print(table)


def print_interleave_validation(v: dict) -> None:
    """``recsys analyze validate --mode interleave``."""
    n = v["users_for_80pct_power"]
    console.print(
        f"{v['runs']} runs each, {v['users']:,} users, {v['requests']:,} requests per run\n"
        f"A/A interleaving (control on both teams): false-positive rate at alpha 0.05 = "
        f"{v['aa_false_positive_rate']:.3f} (95 % CI {v['aa_ci95'][0]:.3f}-{v['aa_ci95'][1]:.3f}; must be 0.03-0.07)\n"
        f"control vs test: truth's A/B effect {v['ab_true_effect']:+.4f} Hitrate@5; expected preference for test "
        f"{v['expected_preference']:+.4f} (mean over runs {v['preference_mean']:+.4f}); sign agrees in "
        f"{v['sign_agreement']:.1%} of runs\n"
        f"users for 80 % power (alpha 0.05), by {v['source']['ab']} / {v['source']['interleave']}: A/B {n['ab']:,} "
        f"(both arms), interleaving {n['interleave']:,} -> {v['ratio']:.1f}x fewer\n"
        f"closed form: {v['closed_form']} (per-user variance {v['variance_per_user']}); simulated power at "
        f"those sizes: {v['empirical_power']}"
    )
