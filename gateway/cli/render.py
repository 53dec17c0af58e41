"""Tables printed by more than one command."""

from __future__ import annotations

from rich.table import Table

from gateway.cli.common import console


def print_evaluation(evaluation: dict, title: str) -> None:
    """The ``hitrate@5`` / ``ci95`` / ``auc`` of an evaluation (``EvaluationResult.as_json()``)."""
    table = Table("ranker", "Hitrate@5 (expected)", "95 % CI", "captured lift", "ROC-AUC", title=title)
    captured = evaluation.get("captured_lift", {})
    for name, value in evaluation.get("hitrate@5", {}).items():
        lo, hi = evaluation["ci95"][name]
        auc = evaluation["auc"].get(name)
        share = captured.get(name)
        table.add_row(
            name,
            f"{value:.4f}",
            f"[{lo:.4f}, {hi:.4f}]",
            "" if share is None else f"{share:.3f}",
            "" if auc is None else f"{auc:.4f}",
        )
    console.print(table)


def _fmt(value, spec: str) -> str:
    return "n/a" if value is None else format(value, spec)


def _effect_line(d: dict, label: str) -> str:
    """One test's effect, interval and p-value, or why it cannot be claimed."""
    if d.get("absolute") is None or "message" in d:
        return f"{label}: {d.get('message', 'not computed')} (p = {d.get('p_value', 1.0):.2f})"
    low, high = d["ci95_absolute"]
    rlow, rhigh = d["ci95_relative"]
    return (
        f"{label}: {d['absolute']:+.4f} [{low:+.4f}, {high:+.4f}] absolute, {d['relative']:+.2%} "
        f"[{rlow:+.2%}, {rhigh:+.2%}] relative; p = {d['p_value']:.4f}"
    )


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
        console.print("primary metric Hitrate@5, treatment − control:")
        for key, label in (("delta", "fixed horizon"), ("cuped", "CUPED"), ("sequential", "sequential")):
            console.print("  " + _effect_line(result.get(key, {}), label))
        c = result.get("cuped", {})
        if c.get("variance_reduction") is not None and "absolute" in c:
            console.print(
                f"  CUPED: theta {c['theta']:.3f}, variance reduction {c['variance_reduction']:.1%}, "
                f"{c.get('cold_start_users', 0)} users without pre-period"
            )
        w = result.get("welch", {})
        if w.get("p_value") is not None:
            console.print(
                f"secondary metric user_hitrate@5 (mean of per-user hit rates): "
                f"{_fmt(w.get('absolute'), '+.4f')}, p = {w['p_value']:.4f}"
            )
    else:
        console.print(d.get("message", ""))
    excluded = result.get("excluded", {})
    console.print(
        f"SRM: p = {srm['p_value']:.4f}; excluded: {result['excluded_not_in_experiment']} requests not in the "
        f"experiment, {excluded.get('multiple_arms_users', 0)} users seen in more than one arm"
    )
    if fallbacks := result.get("fallbacks", {}).get("by_reason"):
        fb = result["fallbacks"]
        shares = ", ".join(f"{arm} {n} ({fb['share'][arm]:.2%})" for arm, n in fb["per_arm"].items())
        uneven = " [red]— uneven across arms (guardrail)[/]" if fb["flag"] else ""
        console.print(
            f"served the popularity fallback, left out of the comparison ({fallbacks}): {shares}; "
            f"p = {fb['p_value']:.4f}{uneven}"
        )
    for g in result.get("guardrails", []):
        low, high = g.get("ci95_absolute") or (None, None)
        console.print(
            f"guardrail {g['metric']}: control {_fmt(g.get('control'), '.4g')}, test {_fmt(g.get('test'), '.4g')}, "
            f"difference {_fmt(g.get('absolute'), '+.4g')} [{_fmt(low, '+.4g')}, {_fmt(high, '+.4g')}], "
            f"margin {g['margin']:.0%}{' of control' if g.get('relative') else ''}: [bold]{g['status']}[/]"
        )
    for arm, comparison in result.get("comparisons", {}).items():
        d = comparison["delta"]
        console.print(
            f"  {arm} − control: "
            + _effect_line(d, "fixed horizon")
            + f" (Holm p = {_fmt(d.get('p_value_adjusted'), '.4f')})"
        )
    for key, group in result.get("by", {}).get("groups", {}).items():
        summary = ", ".join(
            f"{arm} {a['requests']} requests Hitrate@5 {a['hitrate']:.4f}" for arm, a in group["arms"].items()
        )
        d = group["delta"]
        diff = (
            f"; test − control {d['absolute']:+.4f} (p = {d['p_value']:.3f}, BH-adjusted {_fmt(d.get('p_value_adjusted'), '.3f')})"
            if d.get("absolute") is not None and "message" not in d
            else f"; {d.get('message', '')}"
        )
        console.print(f"  [{result['by']['field']} = {key}] {summary}{diff}")
    for split in result.get("by_model_version", []):
        console.print(
            f"  {split['arm']} {split['model_version']}: {split['requests']} requests ({split['first_request']} .. {split['last_request']})"
        )
    for phase in result.get("phases", []):
        versions = "; ".join(f"{a} {', '.join(v)}" for a, v in phase["model_versions"].items())
        console.print(
            f"  phase [{phase['since'] or '…'}, {phase['until'] or '…'}) {versions}: "
            + _effect_line(phase["delta"], "fixed horizon")
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


def _pct(entry: dict) -> str:
    """A rate with its Wilson interval: ``5.2 % [4.0, 6.8]``."""
    low, high = entry["ci95"]
    return f"{100 * entry['rate']:.1f} % [{100 * low:.1f}, {100 * high:.1f}]"


def print_ab_validation(v: dict) -> None:
    """``recsys analyze validate`` (A/B): one table of the figures, then the bars not met."""
    aa, peek, ab, pw = v["aa"]["false_positive_rate"], v["peeking"], v["ab"], v["power"]
    console.print(
        f"{v['runs']} simulated experiments each, {v['users']:,} users, {v['requests']:,} requests, "
        f"{v['looks']} looks ({v['look_hours']:g} h apart); rankers {v['rankers'].get('control', 'control')} vs "
        f"{v['rankers'].get('test', 'test')}; CUPED pre-period {v['pre_period_days']:g} days "
        f"({100 * v['pre_period_share']:.0f} % of users have one); sequential tuned for "
        f"{v['sequential_tuning']:,.0f} users"
    )
    table = Table("what", "figure (95 % CI)", "bar", title="A/B analysis, validated against the truth")
    table.add_row("A/A false positives, plain", _pct(aa["plain"]), "3-7 %")
    table.add_row("A/A false positives, CUPED", _pct(aa["cuped"]), "3-7 %")
    table.add_row(
        "A/A, a look every period, stop at first p < 0.05: fixed-horizon",
        _pct(peek["fixed_horizon"]),
        f"inflated {peek['inflation']:.1f}x",
    )
    table.add_row(
        "A/A, a look every period, stop at first p < 0.05: sequential", _pct(peek["sequential"]), "<= 5 %"
    )
    table.add_row("true effect (truth, test - control)", f"{ab['true_effect']:+.4f}", "")
    for name, label in (
        ("plain", "coverage, plain"),
        ("cuped", "coverage, CUPED"),
        ("sequential", "coverage, sequential (end)"),
        ("sequential_every_look", "coverage, sequential at every look at once"),
        ("fixed_horizon_every_look", "coverage, fixed-horizon at every look at once"),
    ):
        bar = "" if name.startswith("fixed") else ">= 95 %" if name.startswith("sequential") else "~95 %"
        table.add_row(label, _pct(ab["coverage"][name]), bar)
    table.add_row(
        "CUPED interval width / plain",
        f"{ab['width_ratio']['cuped_to_plain']:.3f} (variance reduction {100 * ab['variance_reduction']:.1f} %, "
        f"theta {ab['theta']:.3f})",
        "",
    )
    table.add_row("sequential interval width / plain", f"{ab['width_ratio']['sequential_to_plain']:.3f}", "")
    whole = pw["whole_pool"]
    for name in ("plain", "cuped", "sequential"):
        table.add_row(
            f"power, {whole['users_per_arm']:,} users per arm, {name}",
            _pct(whole["empirical"][name]),
            f"calculator {100 * whole['predicted'][name]:.1f} %",
        )
    for name, entry in pw["at_80pct"].items():
        if "empirical" in entry:
            table.add_row(
                f"power at the calculator's 80 % size ({entry['users_per_arm']:,} per arm), {name}",
                _pct(entry["empirical"]),
                f"calculator {100 * entry['predicted']:.1f} %",
            )
        else:
            table.add_row(f"power at the calculator's 80 % size, {name}", entry.get("message", ""), "")
    console.print(table)
    missed = [name for name, met in v["checks"].items() if not met]
    if missed:
        console.print(f"[yellow]bars not met: {', '.join(missed)}[/]")
    else:
        console.print("every bar met")
