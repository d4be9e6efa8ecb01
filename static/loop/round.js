// The round page: poll GET /api/rounds/{id}/ and redraw stages, results, plots and logs.
(function () {
  "use strict";
  const script = document.currentScript;
  const api = script.dataset.api;
  const ENDED = ["done", "failed", "cancelled"];
  const STAGE_LABELS = { sampling: "Sampling", collecting: "Collecting", exporting: "Exporting",
    sft: "Supervised fine-tuning", rm: "Reward model", ppo: "PPO", evaluating: "Evaluating", done: "Done", failed: "Failed",
    cancelled: "Cancelled" };
  const PLOTS = [
    ["sft", "loss", "SFT loss"],
    ["rm", "loss", "RM loss"], ["rm", "train_pair_accuracy", "RM accuracy (train pairs)"],
    ["ppo", "score", "PPO score"], ["ppo", "kl", "KL to reference"],
    ["ppo", "entropy", "Entropy"], ["ppo", "response_length", "Response length"],
  ];

  function el(tag, attrs, text) {
    const node = document.createElement(tag);
    Object.entries(attrs || {}).forEach(([k, v]) => node.setAttribute(k, v));
    if (text !== undefined) node.textContent = text;
    return node;
  }

  function chart(title, points, empty) {
    const figure = el("figure", { class: "chart", "data-metric": title });
    figure.appendChild(el("figcaption", {}, title + (points.length ? ` — last ${fmt(points[points.length - 1][1])}` : ` — ${empty}`)));
    const svg = document.createElementNS("http://www.w3.org/2000/svg", "svg");
    svg.setAttribute("viewBox", "0 0 300 140");
    svg.setAttribute("role", "img");
    svg.setAttribute("aria-label", title);
    if (points.length) {
      const xs = points.map((p) => p[0]), ys = points.map((p) => p[1]);
      const x0 = Math.min(...xs), x1 = Math.max(...xs), y0 = Math.min(...ys), y1 = Math.max(...ys);
      const sx = (x) => 10 + 280 * (x1 === x0 ? 0.5 : (x - x0) / (x1 - x0));
      const sy = (y) => 130 - 120 * (y1 === y0 ? 0.5 : (y - y0) / (y1 - y0));
      const line = document.createElementNS("http://www.w3.org/2000/svg", "polyline");
      line.setAttribute("points", points.map((p) => `${sx(p[0]).toFixed(1)},${sy(p[1]).toFixed(1)}`).join(" "));
      svg.appendChild(line);
      [[y1, 12], [y0, 136]].forEach(([value, y]) => {
        const label = document.createElementNS("http://www.w3.org/2000/svg", "text");
        label.setAttribute("x", "2"); label.setAttribute("y", String(y));
        label.setAttribute("font-size", "9"); label.textContent = fmt(value);
        svg.appendChild(label);
      });
    }
    figure.appendChild(svg);
    return figure;
  }

  function fmt(value) {
    if (value === null || value === undefined) return "—";
    if (typeof value === "number") return Math.abs(value) >= 100 ? value.toFixed(0) : value.toFixed(3);
    return String(value);
  }

  function winRate(result) {
    const overall = result && result.win_rate && result.win_rate.overall;
    return overallRate(overall);
  }

  function overallRate(overall) {
    if (!overall) return "—";
    return `${fmt(overall.win_rate)} (95% CI ${fmt(overall.ci_low)}–${fmt(overall.ci_high)}, n=${overall.n} prompts)`;
  }

  // an accuracy or agreement {value|accuracy, ci, n_pairs|pairs|n_rater_pairs}
  function ratio(figure, unit) {
    if (!figure) return "—";
    const value = figure.value !== undefined ? figure.value : figure.accuracy;
    if (value === null || value === undefined) return "—";
    const ci = figure.ci || [];
    const n = [figure.n_pairs, figure.pairs, figure.n_rater_pairs].find((x) => x !== undefined && x !== null);
    const parts = [];
    if (ci[0] !== null && ci[0] !== undefined) parts.push(`95% CI ${fmt(ci[0])}–${fmt(ci[1])}`);
    if (n !== undefined) parts.push(`n=${n} ${unit}`);
    return fmt(value) + (parts.length ? ` (${parts.join(", ")})` : "");
  }

  function setActions(actions) {
    [["cancel", "cancel"], ["retry", "retry"], ["move-on", "move_on"]].forEach(([id, key]) => {
      const button = document.getElementById(id);
      if (button) button.disabled = !(actions && actions[key]);
    });
  }

  function render(detail) {
    const stage = document.getElementById("round-stage");
    stage.textContent = STAGE_LABELS[detail.stage] || detail.stage;
    stage.className = `stage stage-${detail.stage}`;
    stage.dataset.stage = detail.stage;
    document.getElementById("round-message").textContent = detail.message || "";
    detail.stages.forEach((s) => {
      const item = document.querySelector(`#stage-bar li[data-stage="${s.stage}"]`);
      if (!item) return;
      item.className = `status-${s.status}`;
      item.querySelector("small").textContent = s.status;
    });
    setActions(detail.actions);
    const ended = ENDED.includes(detail.stage);
    const runs = Object.fromEntries(detail.runs.map((r) => [r.stage, r]));
    const results = document.getElementById("results");
    results.replaceChildren();
    const evaluation = (runs.evaluating && runs.evaluating.metrics) || {};
    const learning = evaluation.learning || {};
    const collecting = (runs.collecting && runs.collecting.metrics) || {};
    const rmMetrics = (runs.rm && runs.rm.metrics) || {};
    const ppoMetrics = (runs.ppo && runs.ppo.metrics) || {};
    const ab = detail.ab_evaluation || {};
    const rmAccuracy = learning.rm_accuracy || (rmMetrics.valid_accuracy !== undefined
      ? { value: rmMetrics.valid_accuracy, ci: rmMetrics.valid_accuracy_ci, n_pairs: rmMetrics.valid_pairs } : null);
    const rows = [
      ["Judgments", collecting.judgments !== undefined ? `${collecting.judgments} of ${collecting.target}` : "—"],
      ["New policy", detail.produced_policy ? detail.produced_policy.name : "—"],
      ["Win rate vs parent (RM judge)", winRate(evaluation.vs_parent)],
      ["Win rate vs base/SFT (RM judge)", winRate(evaluation.vs_root)],
      ["Human A/B win rate", ab.win_rate === null || ab.win_rate === undefined ? `— (${ab.judgments || 0} of ${ab.tasks || 0} tasks judged)` : `${fmt(ab.win_rate)} (95% CI ${fmt(ab.ci[0])}–${fmt(ab.ci[1])}, n=${ab.judgments} judgments)`],
      ["RM accuracy on held-out comparisons", ratio(rmAccuracy, "pairs")],
      ["RM accuracy vs the raters' consensus (held-out tasks with overlap)", ratio(learning.rm_accuracy_consensus, "pairs")],
      ["Raters' agreement on the same tasks (ceiling)", ratio(learning.agreement_ceiling, "rater pairs")],
      ["PPO reward, first → last quarter", ppoMetrics.score_first !== undefined ? `${fmt(ppoMetrics.score_first)} → ${fmt(ppoMetrics.score_last)} (KL ${fmt(ppoMetrics.kl_last)} nats, n=${ppoMetrics.steps_done} steps)` : "—"],
    ];
    if (evaluation.hidden_rule) rows.push(["Win rate on the simulated raters' rule", winRate(evaluation.hidden_rule)]);
    if (evaluation.hidden_rule_vs_root) rows.push(["… vs base/SFT on the rule", winRate(evaluation.hidden_rule_vs_root)]);
    if (learning.rm_vs_hidden_rule) rows.push(["RM vs the simulated raters' rule (held-out answers)", ratio(learning.rm_vs_hidden_rule, "pairs")]);
    if (learning.hidden_rule_on_rankings) rows.push(["The rule itself vs the raters (what a perfect RM would score)", ratio(learning.hidden_rule_on_rankings, "pairs")]);
    if (learning.hidden_rule_on_consensus) rows.push(["The rule itself vs the raters' consensus", ratio(learning.hidden_rule_on_consensus, "pairs")]);
    rows.forEach(([k, v]) => { results.appendChild(el("dt", {}, k)); results.appendChild(el("dd", {}, v)); });
    if (detail.snapshot_id) {
      const holder = document.getElementById("snapshot-link");
      if (!holder.querySelector("a")) {
        const link = el("a", { href: `/research/snapshots/${detail.snapshot_id}/` }, `Dataset snapshot #${detail.snapshot_id}`);
        holder.replaceChildren(link);
      }
    }
    const charts = document.getElementById("charts");
    const emptyText = (stageName) => {
      const shown = (detail.stages.find((s) => s.stage === stageName) || {}).status;
      if (shown === "skipped" || shown === "not run") return shown;
      if (shown === "succeeded") return "no points";
      return ended ? "not run" : "waiting";
    };
    charts.replaceChildren(...PLOTS.map(([stageName, key, title]) =>
      chart(title, ((runs[stageName] || {}).series || {})[key] || [], emptyText(stageName))));
    const runsBox = document.getElementById("runs");
    runsBox.replaceChildren(...detail.runs.map((run) => {
      const box = el("details", { "data-run": run.stage, open: run.status === "running" || run.status === "failed" ? "" : null });
      if (!(run.status === "running" || run.status === "failed")) box.removeAttribute("open");
      box.appendChild(el("summary", {}, `${STAGE_LABELS[run.stage]} — ${run.shown_status || run.status}, attempt ${run.attempt}${run.worker ? " on " + run.worker : ""}${run.error ? " — " + run.error : ""}`));
      box.appendChild(el("pre", { class: "loop-log" }, run.log || "(no output yet)"));
      return box;
    }));
    return ENDED.includes(detail.stage);
  }

  const cancelForm = document.getElementById("cancel-form");
  if (cancelForm) {
    cancelForm.addEventListener("submit", (event) => {
      if (!window.confirm(cancelForm.dataset.confirm)) event.preventDefault();
    });
  }

  const initial = JSON.parse(document.getElementById("round-detail").textContent);
  let ended = render(initial);
  async function poll() {
    try {
      const response = await fetch(api, { headers: { Accept: "application/json" }, credentials: "same-origin" });
      if (response.ok) ended = render(await response.json());
    } catch (error) { /* offline for a moment: try again */ }
    setTimeout(poll, ended ? 10000 : 2000);
  }
  setTimeout(poll, 1000);
})();
