// Reviewing by keyboard, as on the labeler pages: on a judgment, a approves, r rejects
// (type the reason, Enter sends), n / → next, p / ← previous, q the queue, ? the keys.
// In the queue, j / k move between rows, Enter or o opens one, x selects it for a bulk
// decision. Keys never act while the reviewer types in a text field.
(function () {
  "use strict";
  const TEXT_TYPES = new Set(["text", "search", "email", "number", "password", "url", "tel"]);

  function isTyping(target) {
    if (!target || !target.tagName) return false;
    if (target.isContentEditable || target.tagName === "TEXTAREA" || target.tagName === "SELECT") return true;
    return target.tagName === "INPUT" && TEXT_TYPES.has(target.type || "text");
  }

  function follow(id) {
    const link = document.getElementById(id);
    if (link && link.href) window.location.assign(link.href);
  }

  function judgmentPage(event) {
    const form = document.getElementById("decide-form");
    if (!form) return false;
    const reason = document.getElementById("decide-reason");
    switch (event.key) {
      case "a":
        document.getElementById("approve-button").click();
        return true;
      case "r":
        if (reason.value.trim()) {
          document.getElementById("reject-button").click();
        } else {
          reason.focus();
          reason.dataset.rejectOnEnter = "1";
          reason.placeholder = "Why reject? Enter sends";
        }
        return true;
      case "n": case "ArrowRight": follow("next-link"); return true;
      case "p": case "ArrowLeft": follow("previous-link"); return true;
      case "q": follow("queue-link"); return true;
      default: return false;
    }
  }

  function queueRows() {
    return Array.from(document.querySelectorAll("tr[data-judgment]"));
  }

  function queuePage(event) {
    const rows = queueRows();
    if (!rows.length) return false;
    let index = rows.findIndex((row) => row.classList.contains("q-current"));
    const move = (to) => {
      if (index >= 0) rows[index].classList.remove("q-current");
      index = Math.max(0, Math.min(rows.length - 1, to));
      rows[index].classList.add("q-current");
      rows[index].scrollIntoView({ block: "nearest" });
    };
    switch (event.key) {
      case "j": case "ArrowDown": move(index + 1); return true;
      case "k": case "ArrowUp": move(index < 0 ? 0 : index - 1); return true;
      case "Enter": case "o": {
        const link = index >= 0 && rows[index].querySelector("a[data-open]");
        if (link) window.location.assign(link.href);
        return Boolean(link);
      }
      case "x": {
        const box = index >= 0 && rows[index].querySelector("input[name=judgment_ids]");
        if (box) box.checked = !box.checked;
        return Boolean(box);
      }
      default: return false;
    }
  }

  document.addEventListener("keydown", (event) => {
    if (event.defaultPrevented || event.altKey || event.metaKey || event.ctrlKey) return;
    const help = document.getElementById("help-dialog");
    if (help && help.open) return;
    const target = event.target;
    if (isTyping(target)) {
      if (event.key === "Enter" && target.id === "decide-reason") {
        // Enter here never approves by accident: it sends a rejection asked for with r.
        event.preventDefault();
        if (target.dataset.rejectOnEnter && target.value.trim()) {
          document.getElementById("reject-button").click();
        }
      } else if (event.key === "Escape") {
        target.blur();
        event.preventDefault();
      }
      return;
    }
    if (event.key === "?" && help) {
      help.showModal();
      event.preventDefault();
      return;
    }
    if (judgmentPage(event) || queuePage(event)) event.preventDefault();
  });

  const helpButton = document.getElementById("help-button");
  if (helpButton) helpButton.addEventListener("click", () => document.getElementById("help-dialog").showModal());
})();
