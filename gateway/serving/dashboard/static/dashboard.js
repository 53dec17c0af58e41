// The experiment dashboard: renders GET dashboard/data (README "Dashboard").
// Every figure taken from the results carries data-key (its path in the JSON) and data-kind (its
// format), so that a test can compare the page with `recsys analyze --json`.
"use strict";

const POLL_MS = 5000;
const KNOWN = new Set([
  "experiment", "window", "arms", "srm", "delta", "welch", "cuped", "sequential", "guardrails",
  "excluded", "excluded_not_in_experiment", "by_model_version", "phases", "interleaving", "by",
  "since", "until", "primary", "cuped_days", "secondary", "fallbacks",
]);
let shownResults = null; // computed_at of the results on the page (charts are redrawn only when it changes)

// ---- formatting (the test repeats these rules) ----
function fmt(value, kind) {
  if (value === null || value === undefined || (typeof value === "number" && !isFinite(value))) return "—";
  if (typeof value !== "number") return String(value);
  switch (kind) {
    case "int": return Math.round(value).toLocaleString("en-US");
    case "p": return value < 0.0001 ? "< 0.0001" : value.toFixed(4);
    case "signed": return (value > 0 ? "+" : "") + value.toFixed(4);
    case "pct": return (value * 100).toFixed(1) + " %";
    case "ms": return value.toFixed(2) + " ms";
    case "s": return value.toFixed(1) + " s";
    case "rps": return value.toFixed(2);
    case "rate": return value.toFixed(4);
    default: return Number.isInteger(value) ? value.toLocaleString("en-US") : value.toFixed(4);
  }
}

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null) continue;
    if (k === "class") node.className = v; else node.setAttribute(k, v);
  }
  for (const child of children) {
    if (child === null || child === undefined) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

// A number from the results: its text, and where it came from.
function num(value, key, kind) {
  return el("span", { "data-key": key, "data-kind": kind, "data-value": JSON.stringify(value ?? null) }, fmt(value, kind));
}

// A field that a row may lack (a metric the analysis could not compute): "—" without a data-key.
function opt(obj, field, key, kind) {
  return obj[field] === undefined ? "—" : num(obj[field], key + "." + field, kind);
}

function interval(pair, key, kind) {
  if (!Array.isArray(pair)) return "—";
  return el("span", { class: "interval" }, "[", num(pair[0], key + ".0", kind), ", ", num(pair[1], key + ".1", kind), "]");
}

function table(headers, rows, numeric) {
  const head = el("tr", {}, ...headers.map((h, i) => el("th", { class: numeric && numeric[i] ? "num" : null }, h)));
  const body = rows.map((cells) => el("tr", {}, ...cells.map((c, i) => el("td", { class: numeric && numeric[i] ? "num" : null }, c))));
  return el("div", { class: "table-wrap" }, el("table", {}, el("thead", {}, head), el("tbody", {}, ...body)));
}

function pairs(rows) { return table(["", ""], rows); }

function badge(text, tone) { return el("span", { class: "badge " + tone }, text); }

function fill(id, ...nodes) { const node = document.getElementById(id); node.replaceChildren(...nodes); return node; }

function show(id, visible) { document.getElementById(id).hidden = !visible; }

function path(obj, key) { return key.split(".").reduce((o, k) => (o === null || o === undefined ? undefined : o[k]), obj); }

// ---- generic rendering of any JSON value (new analysis keys appear without a release) ----
function isPlainObject(v) { return v !== null && typeof v === "object" && !Array.isArray(v); }

function generic(value, key) {
  if (typeof value === "number") return num(value, key, "num");
  if (value === null || typeof value !== "object") return el("span", {}, value === null ? "—" : String(value));
  if (Array.isArray(value)) {
    if (value.every((v) => typeof v === "number" || v === null)) {
      return el("span", {}, "[", ...value.flatMap((v, i) => (i ? [", ", num(v, key + "." + i, "num")] : [num(v, key + "." + i, "num")])), "]");
    }
    if (value.every(isPlainObject)) {
      const columns = [...new Set(value.flatMap((v) => Object.keys(v)))];
      return table(columns, value.map((row, i) => columns.map((c) => generic(row[c], key + "." + i + "." + c))));
    }
    return el("span", {}, JSON.stringify(value));
  }
  return pairs(Object.entries(value).map(([k, v]) => [k, generic(v, key + "." + k)]));
}

// ---- charts ----
const FONT = { family: "system-ui, -apple-system, Segoe UI, Roboto, DejaVu Sans, sans-serif", size: 13, color: "#1d2430" };
const COLORS = ["#2f6db5", "#d0731c", "#3a9a5b", "#8e5bb5", "#b5443a", "#5b8e9a"];

function layout(extra) {
  const axes = { xaxis: Object.assign({ automargin: true }, extra.xaxis), yaxis: Object.assign({ automargin: true }, extra.yaxis) };
  return Object.assign({
    font: FONT, margin: { l: 56, r: 12, t: 8, b: 48 }, autosize: true,
    paper_bgcolor: "#ffffff", plot_bgcolor: "#ffffff", showlegend: false,
    legend: { orientation: "h", y: -0.25 },
  }, extra, axes);
}

async function draw(id, traces, extra) {
  const node = document.getElementById(id);
  node.removeAttribute("data-drawn");
  await Plotly.react(node, traces, layout(extra), { responsive: true, displayModeBar: false, staticPlot: false });
  node.setAttribute("data-drawn", String(traces.length));
}

function hitrateChart(arms) {
  const names = Object.keys(arms);
  const rate = names.map((a) => arms[a].hitrate);
  const lo = names.map((a, i) => (arms[a].ci95 && arms[a].ci95[0] !== null ? rate[i] - arms[a].ci95[0] : 0));
  const hi = names.map((a, i) => (arms[a].ci95 && arms[a].ci95[1] !== null ? arms[a].ci95[1] - rate[i] : 0));
  return draw("chart-hitrate", [{
    type: "bar", x: names, y: rate, marker: { color: names.map((_, i) => COLORS[i % COLORS.length]) },
    error_y: { type: "data", symmetric: false, array: hi, arrayminus: lo, color: "#1d2430", thickness: 1.5, width: 8 },
    hovertemplate: "%{x}: %{y:.4f}<extra></extra>",
  }], { yaxis: { title: { text: "Hitrate@5" }, rangemode: "tozero" }, xaxis: { type: "category" } });
}

function effectChart(overTime) {
  const pts = (overTime.points || []).filter((p) => p.absolute !== undefined && p.absolute !== null);
  const x = pts.map((p) => p.until);
  const seqLo = pts.map((p) => p.sequential_ci95_absolute[0]);
  const seqHi = pts.map((p) => p.sequential_ci95_absolute[1]);
  // The early always-valid band is very wide: show the fixed intervals whole and clip the band.
  const spread = pts.flatMap((p) => [...p.ci95_absolute, p.absolute]).filter((v) => v !== null);
  const last = pts[pts.length - 1].sequential_ci95_absolute;
  const lo = Math.min(...spread, last[0] ?? 0, 0), hi = Math.max(...spread, last[1] ?? 0, 0), pad = (hi - lo) * 0.1 || 0.01;
  return draw("chart-effect", [
    { x, y: seqHi, mode: "lines", line: { width: 0 }, hoverinfo: "skip", showlegend: false },
    { x, y: seqLo, mode: "lines", line: { width: 0 }, fill: "tonexty", fillcolor: "rgba(47,109,181,0.18)", name: "always-valid 95 % band", hoverinfo: "skip" },
    { x, y: pts.map((p) => p.ci95_absolute[0]), mode: "lines", line: { dash: "dash", color: "#5a6472", width: 1 }, name: "fixed-horizon 95 %", hoverinfo: "skip" },
    { x, y: pts.map((p) => p.ci95_absolute[1]), mode: "lines", line: { dash: "dash", color: "#5a6472", width: 1 }, showlegend: false, hoverinfo: "skip" },
    { x, y: pts.map((p) => p.absolute), mode: "lines+markers", line: { color: "#2f6db5", width: 2 }, name: "effect (absolute)", hovertemplate: "%{x}: %{y:+.4f}<extra></extra>" },
  ], {
    showlegend: true, yaxis: { title: { text: "Hitrate@5 difference" }, zeroline: true, zerolinecolor: "#1d2430", range: [lo - pad, hi + pad] },
    xaxis: { title: { text: "request time (log's clock)" }, nticks: window.innerWidth < 600 ? 4 : 10 }, margin: { l: 56, r: 12, t: 36, b: 56 },
    legend: { orientation: "h", x: 0, y: 1.02, yanchor: "bottom" },
  });
}

function interleavingChart(il) {
  const ci = il.ci95 || [null, null];
  return draw("chart-interleaving", [{
    type: "scatter", mode: "markers", x: [il.preference], y: ["preference for " + il.treatment], marker: { size: 12, color: "#2f6db5" },
    error_x: { type: "data", symmetric: false, array: [ci[1] !== null ? ci[1] - il.preference : 0], arrayminus: [ci[0] !== null ? il.preference - ci[0] : 0], thickness: 2, width: 8, color: "#2f6db5" },
    hovertemplate: "%{x:+.4f}<extra></extra>",
  }], { xaxis: { zeroline: true, zerolinecolor: "#1d2430", title: { text: il.treatment + " − " + il.control } }, yaxis: { visible: false }, margin: { l: 16, r: 16, t: 8, b: 48 } });
}

function shadowChart(entries) {
  const labels = entries.map((s) => s.arm + ": " + s.model_version.slice(0, 24));
  return draw("chart-shadow", [
    { type: "bar", name: "Jaccard@5", x: labels, y: entries.map((s) => s["jaccard@5"]), marker: { color: COLORS[0] } },
    { type: "bar", name: "RBO@5", x: labels, y: entries.map((s) => s["rbo@5"]), marker: { color: COLORS[1] } },
  ], { barmode: "group", showlegend: true, yaxis: { range: [0, 1], title: { text: "overlap" } }, xaxis: { type: "category" },
    margin: { l: 56, r: 12, t: 36, b: 48 }, legend: { orientation: "h", x: 0, y: 1.02, yanchor: "bottom" } });
}

// ---- sections ----
function renderNow(data) {
  const now = data.now, e = now.experiment;
  document.getElementById("experiment-name").textContent = e.name;
  document.getElementById("worker-pid").textContent = data.worker_pid;
  fill("config", pairs([
    ["enabled", e.enabled ? badge("on", "ok") : badge("off", "warn")],
    ["scheme", e.scheme], ["salt", e.salt], ["coverage", fmt(e.coverage, "pct")],
    ["interleaved share", fmt(e.interleave_weight, "pct")], ["overrides", fmt(e.overrides, "int")],
    ["models loaded at", e.loaded_at], ["feature store", el("span", { class: "version" }, e.feature_store_version)],
    ...Object.entries(now.serving).map(([k, v]) => ["serving." + k, String(v)]),
  ]));
  fill("arms", ...e.arms.map((a) => el("div", { class: "arm" }, el("h4", {}, a.name + " · " + fmt(a.weight, "pct") + " of users"), pairs([
    ["model", el("span", { class: "version" }, a.model_version)], ["inference", a.inference],
    ["shadow", a.shadow_model_version ? el("span", { class: "version" }, a.shadow_model_version) : "—"],
  ]))));
  const t = now.traffic;
  document.getElementById("traffic-window").textContent = "(last " + fmt(t.window_s, "s") + ")";
  const arms = Object.entries(t.arms);
  fill("traffic", arms.length ? table(["arm", "req/s", "p50", "p99", "errors", "requests"], arms.map(([a, s]) => [
    a, fmt(s.rps, "rps"), fmt(s.p50_ms, "ms"), fmt(s.p99_ms, "ms"),
    s.errors ? badge(fmt(s.errors, "int"), "bad") : "0", fmt(s.requests, "int"),
  ]), [false, true, true, true, true, true]) : el("p", { class: "muted" }, "No requests in this worker yet."));
  const overload = Object.entries(t.overload || {}), adm = t.admission || {};
  if (overload.length || Object.keys(adm).length) {
    const rows = overload.map(([k, v]) => [k.replace(":", " → "), v ? badge(fmt(v, "int"), "warn") : "0"]);
    if (adm.in_flight !== undefined) rows.push(["in flight / limit", fmt(adm.in_flight, "int") + " / " + (adm.admission_limit ? fmt(adm.admission_limit, "int") : "none")]);
    if (adm.late_rankers !== undefined) rows.push(["late rankers", fmt(adm.late_rankers, "int")]);
    if (adm.deadline_seconds !== undefined) rows.push(["deadline", adm.deadline_seconds ? fmt(adm.deadline_seconds * 1000, "ms") : "none"]);
    document.getElementById("traffic").append(el("h4", {}, "Overload (shed and fallbacks in the same window)"), pairs(rows));
  }
  const log = now.exposure_log;
  const known = ["state", "queued", "written", "spilled", "replayed", "spill_bytes", "last_error"];
  fill("exposure-log", pairs([
    ["state", badge(log.state, log.state === "healthy" ? "ok" : "bad")],
    ["queued", fmt(log.queued, "int")], ["written", fmt(log.written, "int")], ["spilled", fmt(log.spilled, "int")],
    ["replayed", fmt(log.replayed, "int")], ["spill size", fmt(log.spill_bytes, "int") + " bytes"],
    ["last error", log.last_error || "—"],
    ...Object.entries(log).filter(([k]) => !known.includes(k)).map(([k, v]) => [k, typeof v === "number" ? fmt(v, "num") : String(v)]),
  ]));
}

function renderFreshness(r) {
  const parts = [];
  if (r.computed_at) parts.push("Results computed at " + r.computed_at + " (" + fmt(r.age_s, "s") + " ago, in " + fmt(r.seconds, "s") + ")");
  else parts.push("Results not computed yet");
  parts.push("recomputed when older than " + fmt(r.refresh_s, "s"));
  if (r.computing) parts.push("recomputing now…");
  document.getElementById("freshness").textContent = parts.join(" · ");
}

function renderBanners(r) {
  const banners = [];
  if (r.error) banners.push(el("div", { class: "banner warn", id: "error-banner" }, r.error));
  const a = r.analysis;
  if (a && a.srm) {
    if (a.srm.flag) {
      const groups = Object.keys(a.srm.users);
      banners.push(el("div", { class: "banner bad", id: "srm-banner" },
        "Sample ratio mismatch (p = ", num(a.srm.p_value, "analysis.srm.p_value", "p"), "): users per group ",
        ...groups.flatMap((g, i) => [(i ? ", " : "") + g + " ", num(a.srm.users[g], "analysis.srm.users." + g, "int"),
          " (expected ", num(a.srm.expected[g], "analysis.srm.expected." + g, "num"), ")"]),
        ". The assignment or the log is broken: do not trust the results until it is explained."));
    } else {
      banners.push(el("div", { class: "banner ok", id: "srm-ok" }, "No sample ratio mismatch (p = ", num(a.srm.p_value, "analysis.srm.p_value", "p"), ")."));
    }
  }
  if (a && a.fallbacks && a.fallbacks.flag) {
    banners.push(el("div", { class: "banner bad", id: "fallback-banner" }, "One arm's users got the popularity fallback more often than the other's (p = ",
      num(a.fallbacks.p_value, "analysis.fallbacks.p_value", "p"), "): overload or deadlines are not hitting the arms alike."));
  }
  fill("banners", ...banners);
}

// One column per test (fixed horizon, sequential, CUPED): narrow enough for a phone.
function effectTable(tests) {
  const cell = (obj, key, field, kind) => (obj[field] === undefined ? "—" : num(obj[field], key + "." + field, kind));
  const rows = [
    ["absolute", (o, k) => cell(o, k, "absolute", "signed")],
    ["95 % interval", (o, k) => interval(o.ci95_absolute, k + ".ci95_absolute", "signed")],
    ["relative", (o, k) => cell(o, k, "relative", "pct")],
    ["95 % interval", (o, k) => interval(o.ci95_relative, k + ".ci95_relative", "pct")],
    ["p-value", (o, k) => cell(o, k, "p_value", "p")],
  ];
  return table(["", ...tests.map((t) => t.label)], rows.map(([name, f]) => [name, ...tests.map((t) => f(t.obj, t.key))]),
    [false, ...tests.map(() => true)]);
}

async function renderResults(r) {
  const a = r.analysis || {};
  const pending = [];
  const scope = (a.since || a.until ? " (requests " + (a.since ? "from " + a.since : "") + (a.until ? " until " + a.until : "") + ")" : "");
  const definition = a.primary && a.primary.definition ? "Primary metric " + a.primary.metric + ": " + a.primary.definition + "." :
    "A hit = a like of one of the first 5 posts within " + (a.window || "") + " of the request.";
  fill("results-note", a.message ? el("span", { class: "message" }, a.message) : "Experiment " + (a.experiment || "") + scope + ", window " + (a.window || "") + ". " + definition);
  if (a.arms) {
    const names = Object.keys(a.arms);
    pending.push(hitrateChart(a.arms));
    fill("arm-table", table(["arm", "users", "requests", "hits", "Hitrate@5 (95 % interval)"], names.map((n) => {
      const s = a.arms[n], k = "analysis.arms." + n;
      return [n, num(s.users, k + ".users", "int"), num(s.requests, k + ".requests", "int"), num(s.hits, k + ".hits", "int"),
        el("span", {}, num(s.hitrate, k + ".hitrate", "rate"), " ", el("span", { class: "muted" }, interval(s.ci95, k + ".ci95", "rate")))];
    }), [false, true, true, true, false]));
  }
  const tests = [], messages = [];
  for (const [key, label] of [["delta", "fixed horizon"], ["sequential", "always valid"], ["cuped", "CUPED"]]) {
    const obj = a[key];
    if (!obj) continue;
    tests.push({ label, obj, key: "analysis." + key });
    if (obj.message) messages.push(el("p", { class: "message" }, label + ": " + obj.message));
    if (obj.variance_reduction !== undefined) messages.push(el("p", { class: "muted" }, "CUPED variance reduction: ", num(obj.variance_reduction, "analysis." + key + ".variance_reduction", "pct")));
  }
  const effects = [effectTable(tests), ...messages];
  if (a.delta && a.delta.method) effects.push(el("p", { class: "muted" }, "Fixed horizon: " + a.delta.method + "."));
  if (a.welch && a.welch.absolute !== undefined) {
    effects.push(el("p", { class: "muted" }, "Secondary metric, every user weighing the same (" + a.welch.method + "): ",
      num(a.welch.absolute, "analysis.welch.absolute", "signed"), " ", interval(a.welch.ci95_absolute, "analysis.welch.ci95_absolute", "signed"),
      ", p = ", num(a.welch.p_value, "analysis.welch.p_value", "p"), "."));
  } else if (a.welch && a.welch.p_value !== undefined) {
    effects.push(el("p", { class: "muted" }, "Welch's t-test on per-user rates: p = ", num(a.welch.p_value, "analysis.welch.p_value", "p")));
  }
  const excluded = a.excluded || (a.excluded_not_in_experiment !== undefined ? { not_in_experiment: a.excluded_not_in_experiment } : null);
  if (excluded) {
    const base = a.excluded ? "analysis.excluded" : "analysis.excluded_not_in_experiment";
    effects.push(el("p", { class: "muted" }, "Excluded: ", ...Object.entries(excluded).flatMap(([k, v], i) => [(i ? ", " : "") + k.replaceAll("_", " ") + " ", num(v, a.excluded ? base + "." + k : base, "int")])));
  }
  fill("effects", ...effects);
  const names = a.arms ? Object.keys(a.arms) : [];
  document.getElementById("effect-name").textContent = names.length >= 2 ? names[1] + " − " + names[0] + " on Hitrate@5" : "the test arm";
  const ot = r.over_time || {};
  if (ot.points && ot.points.some((p) => p.absolute !== undefined && p.absolute !== null)) pending.push(effectChart(ot));
  else fill("chart-effect", el("p", { class: "muted" }, ot.message || "Not enough data for the effect over time yet."));

  show("guardrails-card", Array.isArray(a.guardrails));
  if (Array.isArray(a.guardrails)) {
    fill("guardrails", table(["metric", "status", "difference", "95 % interval", "margin", "control", "test"], a.guardrails.map((g, i) => {
      const k = "analysis.guardrails." + i, status = String(g.status);
      const tone = /fail|worse|breach/i.test(status) ? "bad" : /pass|ok|non.?inferior/i.test(status) ? "ok" : "warn";
      return [g.metric, badge(status, tone), opt(g, "absolute", k, "num"), interval(g.ci95_absolute, k + ".ci95_absolute", "num"),
        opt(g, "margin", k, g.relative ? "pct" : "num"), opt(g, "control", k, "num"), opt(g, "test", k, "num")];
    })));
  }

  show("secondary-card", Array.isArray(a.secondary));
  if (Array.isArray(a.secondary)) {
    fill("secondary", table(["metric", "control", "test", "difference", "95 % interval", "p", "p (adjusted)"], a.secondary.map((m, i) => {
      const k = "analysis.secondary." + i;
      return [m.metric, opt(m, "control", k, "num"), opt(m, "test", k, "num"), opt(m, "absolute", k, "num"),
        interval(m.ci95_absolute, k + ".ci95_absolute", "num"), opt(m, "p_value", k, "p"), opt(m, "p_value_adjusted", k, "p")];
    }), [false, true, true, true, true, true, true]), el("p", { class: "muted" }, a.secondary.length ? a.secondary[0].correction || "" : ""));
  }
  const pw = r.power;
  show("power-card", !!pw);
  if (pw && pw.message) fill("power", el("p", { class: "muted" }, pw.message));
  else if (pw) {
    const row = (label, part, kind) => [label, pw[part] ? el("span", {}, opt(pw[part], "plain", "power." + part, kind), " plain / ",
      opt(pw[part], "cuped", "power." + part, kind), " with CUPED") : "—"];
    fill("power", el("p", {}, "To detect ", opt(pw, "mde", "power", "signed"), " absolute Hitrate@5 with ", opt(pw, "power", "power", "pct"),
      " power at alpha ", opt(pw, "alpha", "power", "num"), " (from the " + (pw.source || "experiment") + "):"), pairs([
      row("users per arm", "users_per_arm", "int"), row("days at today's traffic", "days", "num"),
      ["eligible users per day", opt(pw, "users_per_day", "power", "int")],
      ["CUPED variance reduction", opt(pw, "variance_reduction", "power", "pct")],
    ]));
  }
  const fb = a.fallbacks;
  show("fallbacks-card", !!fb);
  if (fb) {
    const k = "analysis.fallbacks";
    fill("fallbacks", pairs([
      ...Object.keys(fb.per_arm || {}).map((arm) => [arm, el("span", {}, num(fb.per_arm[arm], k + ".per_arm." + arm, "int"), " requests (",
        num(fb.share[arm], k + ".share." + arm, "pct"), ")")]),
      ...Object.keys(fb.by_reason || {}).map((r) => ["by " + r, num(fb.by_reason[r], k + ".by_reason." + r, "int")]),
      ["split by arm vs all requests", el("span", {}, "p = ", num(fb.p_value, k + ".p_value", "p"), " ", fb.flag ? badge("flagged", "bad") : badge("ok", "ok"))],
    ]));
  }

  const phases = a.phases || a.by_model_version;
  show("phases-card", !!phases);
  if (phases) fill("phases", generic(phases, a.phases ? "analysis.phases" : "analysis.by_model_version"));

  const il = a.interleaving;
  show("interleaving-card", !!il);
  if (il) {
    if (typeof il.preference === "number") pending.push(interleavingChart(il));
    else fill("chart-interleaving", el("p", { class: "muted" }, "No preference estimate yet."));
    const k = "analysis.interleaving";
    fill("interleaving", pairs([
      ["preference for " + il.treatment, num(il.preference, k + ".preference", "signed")],
      ["95 % interval", interval(il.ci95, k + ".ci95", "signed")], ["p-value", num(il.p_value, k + ".p_value", "p")],
      ["requests", num(il.requests, k + ".requests", "int")], ["users", num(il.users, k + ".users", "int")],
      ...Object.keys(il.wins || {}).map((t) => ["wins " + t, num(il.wins[t], k + ".wins." + t, "int")]),
      ["ties", num(il.ties, k + ".ties", "int")],
      ...(il.message ? [["note", el("span", { class: "message" }, il.message)]] : []),
    ]));
  }

  const shadow = r.shadow && Array.isArray(r.shadow.shadow) ? r.shadow.shadow : null;
  show("shadow-card", !!shadow);
  if (shadow) {
    pending.push(shadowChart(shadow));
    fill("shadow", ...shadow.map((s, i) => {
      const k = "shadow.shadow." + i;
      return el("div", {}, el("h4", {}, "arm " + s.arm + ", shadow ", el("span", { class: "version" }, s.model_version)), pairs([
        ["scored", num(s.scored, k + ".scored", "int")], ["dropped", num(s.dropped, k + ".dropped", "int")],
        ["errors", num(s.errors, k + ".errors", "int")], ["Jaccard@5", num(s["jaccard@5"], k + ".jaccard@5", "rate")],
        ["RBO@5", num(s["rbo@5"], k + ".rbo@5", "rate")],
        ["scoring latency p50 / p99", el("span", {}, num(s.latency_ms.p50, k + ".latency_ms.p50", "ms"), " / ", num(s.latency_ms.p99, k + ".latency_ms.p99", "ms"))],
      ]));
    }));
  }

  const more = Object.entries(a).filter(([k]) => !KNOWN.has(k));
  if (a.by) more.push(["by", a.by]);
  show("more-card", more.length > 0);
  fill("more", ...more.map(([k, v]) => el("div", {}, el("h4", {}, k), generic(v, "analysis." + k))));
  await Promise.all(pending);
}

async function refresh() {
  let data;
  try {
    const response = await fetch("dashboard/data", { cache: "no-store", credentials: "same-origin" });
    if (!response.ok) throw new Error("GET dashboard/data answered " + response.status);
    data = await response.json();
  } catch (err) {
    document.getElementById("freshness").textContent = "Cannot reach the gateway: " + err.message;
    return;
  }
  renderNow(data);
  const r = data.results;
  renderFreshness(r);
  renderBanners(r);
  if (r.computed_at && r.computed_at !== shownResults) {
    await renderResults(r);
    shownResults = r.computed_at;
  }
  document.body.setAttribute("data-ready", r.computed_at ? "results" : "now");
}

async function loop() {
  await refresh();
  setTimeout(loop, POLL_MS);
}

document.addEventListener("DOMContentLoaded", loop);
