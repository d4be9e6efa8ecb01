// Reviewer pages: inline SVG charts, a sortable table, select-all. No libraries, no CDN.
(function () {
  "use strict";
  const SVG = "http://www.w3.org/2000/svg";
  const W = 560, H = 200, PAD = { l: 44, r: 12, t: 10, b: 26 };

  function el(name, attrs, parent) {
    const node = document.createElementNS(SVG, name);
    for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, v);
    if (parent) parent.appendChild(node);
    return node;
  }

  function readJson(id) {
    const node = document.getElementById(id);
    return node ? JSON.parse(node.textContent) : null;
  }

  function day(t) { return new Date(t * 1000).toISOString().slice(5, 10); }

  // One chart: x = time, y = values; optional band [low, high]; bars or a line.
  function chart(container, points, opts) {
    container.textContent = "";
    const usable = points.filter((p) => p.y !== null && p.y !== undefined);
    if (!usable.length) { container.textContent = "No data yet."; return; }
    const svg = el("svg", { viewBox: `0 0 ${W} ${H}`, class: "q-svg" }, container);
    const xs = points.map((p) => p.t);
    let x0 = Math.min(...xs), x1 = Math.max(...xs);
    if (x1 === x0) { x0 -= 43200; x1 += 43200; } // one point: half a day either side
    let lo = opts.yMin !== undefined ? opts.yMin : Math.min(...usable.map((p) => (p.low ?? p.y)));
    let hi = opts.yMax !== undefined ? opts.yMax : Math.max(...usable.map((p) => (p.high ?? p.y)));
    if (hi === lo) { hi = lo + 1; }
    if (!opts.percent) { hi = Math.max(hi, lo + 4); } // counts: at least a few ticks' room
    const sx = (t) => PAD.l + ((t - x0) / Math.max(x1 - x0, 1)) * (W - PAD.l - PAD.r);
    const sy = (v) => H - PAD.b - ((v - lo) / (hi - lo)) * (H - PAD.t - PAD.b);
    for (let i = 0; i <= 4; i++) {
      const v = lo + ((hi - lo) * i) / 4;
      el("line", { x1: PAD.l, x2: W - PAD.r, y1: sy(v), y2: sy(v), class: "q-grid" }, svg);
      el("text", { x: PAD.l - 4, y: sy(v) + 4, class: "q-axis", "text-anchor": "end" }, svg)
        .textContent = opts.percent ? `${Math.round(v * 100)}%` : Math.round(v);
    }
    const ticks = points.length > 2 ? [points[0], points[Math.floor(points.length / 2)], points[points.length - 1]] : points;
    ticks.forEach((p) => {
      el("text", { x: sx(p.t), y: H - 6, class: "q-axis", "text-anchor": "middle" }, svg).textContent = day(p.t);
    });
    if (opts.bars) {
      const width = Math.min(40, Math.max(2, (W - PAD.l - PAD.r) / points.length - 2));
      usable.forEach((p) => {
        el("rect", { x: sx(p.t) - width / 2, y: sy(p.y), width, height: Math.max(0, sy(lo) - sy(p.y)), class: "q-bar" }, svg)
          .appendChild(el("title", {})).textContent = `${day(p.t)}: ${p.y}`;
      });
      return;
    }
    const banded = usable.filter((p) => p.low !== null && p.low !== undefined && p.high !== null);
    if (banded.length) {
      const top = banded.map((p) => `${sx(p.t)},${sy(p.high)}`);
      const bottom = banded.slice().reverse().map((p) => `${sx(p.t)},${sy(p.low)}`);
      el("polygon", { points: top.concat(bottom).join(" "), class: "q-band" }, svg);
    }
    el("polyline", { points: usable.map((p) => `${sx(p.t)},${sy(p.y)}`).join(" "), class: "q-line" }, svg);
    usable.forEach((p) => {
      el("circle", { cx: sx(p.t), cy: sy(p.y), r: 2.5, class: "q-dot" }, svg)
        .appendChild(el("title", {})).textContent =
          `${day(p.t)}: ${(p.y * 100).toFixed(1)}%` + (p.low != null ? ` (CI ${(p.low * 100).toFixed(1)}–${(p.high * 100).toFixed(1)}%)` : "");
    });
  }

  function drawDashboard() {
    const series = readJson("q-series");
    if (!series) return;
    const pts = series.points || [];
    document.querySelectorAll("[data-chart]").forEach((node) => {
      const kind = node.dataset.chart;
      if (kind === "agreement") {
        chart(node, pts.map((p) => ({ t: p.t, y: p.agreement, low: p.ci[0], high: p.ci[1] })), { percent: true, yMin: 0, yMax: 1 });
      } else if (kind === "judgments") {
        chart(node, pts.map((p) => ({ t: p.t, y: p.judgments })), { bars: true, yMin: 0 });
      } else if (kind === "backlog") {
        chart(node, pts.map((p) => ({ t: p.t, y: p.backlog })), { yMin: 0 });
      }
    });
  }

  function drawTrend() {
    const trend = readJson("q-trend");
    const node = document.querySelector('[data-chart="trend"]');
    if (!trend || !node) return;
    chart(node, trend.t.map((t, i) => ({ t, y: trend.agreement[i] })), { percent: true, yMin: 0, yMax: 1 });
  }

  function sortable() {
    document.querySelectorAll("table.q-sortable").forEach((table) => {
      table.querySelectorAll("button.q-sort").forEach((button, column) => {
        button.addEventListener("click", () => {
          const body = table.tBodies[0];
          const descending = button.getAttribute("aria-sort") !== "descending";
          table.querySelectorAll("button.q-sort").forEach((b) => b.removeAttribute("aria-sort"));
          button.setAttribute("aria-sort", descending ? "descending" : "ascending");
          const rows = Array.from(body.rows).filter((r) => r.cells.length > column);
          const key = (row) => row.cells[column].dataset.value ?? row.cells[column].textContent;
          rows.sort((a, b) => {
            const va = key(a), vb = key(b);
            const na = parseFloat(va), nb = parseFloat(vb);
            let order;
            if (va === "" && vb === "") order = 0;
            else if (va === "") return 1; // missing values last, either way
            else if (vb === "") return -1;
            else if (!isNaN(na) && !isNaN(nb)) order = na - nb;
            else order = va.localeCompare(vb);
            return descending ? -order : order;
          });
          rows.forEach((r) => body.appendChild(r));
        });
      });
    });
  }

  function selectAll() {
    const box = document.getElementById("select-all");
    if (!box) return;
    box.addEventListener("change", () => {
      document.querySelectorAll('input[name="judgment_ids"]').forEach((c) => { c.checked = box.checked; });
    });
  }

  // A refresh was queued: watch for the new snapshot, then show it. The page reloads on
  // its own unless the reviewer has typed something into it (then a link offers it).
  function followRefresh() {
    const box = document.querySelector("[data-refresh-queued]");
    if (!box) return;
    const seen = Date.parse(box.dataset.computedAt || "") || 0;
    let tries = 0;
    const timer = setInterval(async () => {
      tries += 1;
      if (tries > 100) { clearInterval(timer); return; }
      let data = null;
      try {
        const response = await fetch(box.dataset.statusUrl, { credentials: "same-origin", headers: { Accept: "application/json" } });
        if (response.ok) data = await response.json();
      } catch (_) { return; }
      const at = data && data.snapshot && Date.parse(data.snapshot.computed_at || "");
      if (!at || at <= seen) return;
      clearInterval(timer);
      const typed = Array.from(document.querySelectorAll("input, textarea")).some(
        (field) => field === document.activeElement || (field.type !== "hidden" && field.type !== "checkbox" && field.value !== field.defaultValue));
      if (!typed) { window.location.reload(); return; }
      const note = document.createElement("a");
      note.href = window.location.href;
      note.textContent = "New statistics are ready: show them";
      note.setAttribute("data-testid", "fresh-statistics");
      box.prepend(note);
    }, 3000);
  }

  drawDashboard();
  drawTrend();
  sortable();
  selectAll();
  followRefresh();
})();
