// Project data page: follow the imports that are still running, then show their report.
(function () {
  "use strict";
  const rows = Array.from(document.querySelectorAll("tr[data-follow]"));
  if (!rows.length) return;
  const timer = setInterval(async () => {
    let pending = 0;
    for (const row of rows) {
      if (!row.dataset.follow) continue;
      let job = null;
      try {
        const response = await fetch(row.dataset.follow, { credentials: "same-origin", headers: { Accept: "application/json" } });
        if (response.ok) job = await response.json();
      } catch (_) { /* try again on the next tick */ }
      if (!job) { pending += 1; continue; }
      const status = row.querySelector(".import-status");
      if (job.status === "succeeded" || job.status === "failed") {
        delete row.dataset.follow;
        window.location.reload();
        return;
      }
      pending += 1;
      status.textContent = "";
      const bar = document.createElement("progress");
      bar.max = job.lines_total || Math.max(job.lines_read * 2, 100);
      bar.value = job.lines_read;
      status.append(bar, ` ${job.phase || job.status}, line ${job.lines_read}`);
    }
    if (!pending) clearInterval(timer);
  }, 2000);
})();
