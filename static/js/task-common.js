// What every task page shares: task data, the answer kept in the browser, the lease
// countdown, panels and dialogs, keyboard dispatch, and the submit that never loses work.
//
// Data from the server is only ever put into the page with textContent / value, never
// innerHTML: completions and prompts are text, not markup.

const ANSWER_PREFIX = "prefloop:answer:";
const ANSWER_MAX_AGE_MS = 14 * 24 * 3600 * 1000;
const MAX_TIME_SPENT_MS = 24 * 3600 * 1000;

export function readTaskData() {
  return JSON.parse(document.getElementById("task-data").textContent);
}

export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value === false || value === null || value === undefined) continue;
    if (name === "text") node.textContent = value;
    else if (name === "className") node.className = value;
    else if (name === "dataset") Object.assign(node.dataset, value);
    else node.setAttribute(name, value === true ? "" : String(value));
  }
  for (const child of children) if (child) node.append(child);
  return node;
}

// --- the answer, kept in localStorage until the server confirms it --------------------------

function newUuid() {
  if (window.crypto && typeof crypto.randomUUID === "function") return crypto.randomUUID();
  // randomUUID needs a secure context; getRandomValues does not.
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  bytes[6] = (bytes[6] & 0x0f) | 0x40;
  bytes[8] = (bytes[8] & 0x3f) | 0x80;
  const hex = Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}

function pruneOldAnswers() {
  try {
    const now = Date.now();
    for (let i = localStorage.length - 1; i >= 0; i--) {
      const key = localStorage.key(i);
      if (!key || !key.startsWith(ANSWER_PREFIX)) continue;
      const saved = JSON.parse(localStorage.getItem(key) || "{}");
      if (!saved.savedAt || now - saved.savedAt > ANSWER_MAX_AGE_MS) localStorage.removeItem(key);
    }
  } catch (_) {
    /* storage unavailable or corrupt: nothing to prune */
  }
}

// One answer per assignment. The client_key is made once and kept with the answer, so every
// retry of this answer (after an outage, a reload or a re-login) is the same request.
export class AnswerStore {
  constructor(assignmentId, defaults) {
    this.key = ANSWER_PREFIX + assignmentId;
    pruneOldAnswers();
    let saved = null;
    try {
      saved = JSON.parse(localStorage.getItem(this.key));
    } catch (_) {
      saved = null;
    }
    this.restored = Boolean(saved && saved.answer);
    this.state = {
      clientKey: (saved && saved.clientKey) || newUuid(),
      startedAt: (saved && saved.startedAt) || Date.now(),
      answer: Object.assign({}, defaults, (saved && saved.answer) || {}),
    };
    this.save();
  }

  get answer() {
    return this.state.answer;
  }

  save() {
    try {
      localStorage.setItem(this.key, JSON.stringify({ ...this.state, savedAt: Date.now() }));
      return true;
    } catch (_) {
      return false; // private mode or full: the page itself still holds the answer
    }
  }

  clear() {
    try {
      localStorage.removeItem(this.key);
    } catch (_) {
      /* nothing kept */
    }
  }

  timeSpentMs() {
    return Math.max(0, Math.min(MAX_TIME_SPENT_MS, Math.round(Date.now() - this.state.startedAt)));
  }
}

// --- talking to the API ---------------------------------------------------------------------

function csrfToken() {
  const match = document.cookie.match(/(?:^|;\s*)csrftoken=([^;]+)/);
  if (match) return decodeURIComponent(match[1]);
  const meta = document.querySelector('meta[name="csrf-token"]');
  return meta ? meta.content : "";
}

function classify(status, data) {
  if (status >= 200 && status < 300) return "ok";
  const detail = (data && data.detail) || "";
  if (status === 401) return "auth";
  if (status === 403 && /credentials|CSRF|authenticat/i.test(detail)) return "auth";
  if (status === 403) return "forbidden";
  if (status === 404) return "forbidden";
  if (status === 409) return "conflict";
  if (status === 400) return "invalid";
  return "server";
}

export async function postJson(url, body) {
  let response;
  try {
    response = await fetch(url, {
      method: "POST",
      credentials: "same-origin",
      headers: {
        "Content-Type": "application/json",
        Accept: "application/json",
        "X-CSRFToken": csrfToken(),
      },
      body: JSON.stringify(body),
    });
  } catch (_) {
    return { kind: "network", status: 0, data: null };
  }
  let data = null;
  try {
    data = await response.json();
  } catch (_) {
    data = null;
  }
  return { kind: classify(response.status, data), status: response.status, data };
}

export function goNext(task) {
  const form = document.getElementById("next-form");
  const token = form.querySelector('input[name="csrfmiddlewaretoken"]');
  if (token) token.value = csrfToken() || token.value;
  form.submit();
}

// --- notices --------------------------------------------------------------------------------

export function announce(message) {
  const node = document.getElementById("announcer");
  node.textContent = "";
  // A fresh text node makes screen readers read it even when it repeats.
  window.setTimeout(() => {
    node.textContent = message;
  }, 30);
}

export function showStatus(level, message, actions = []) {
  const node = document.getElementById("status");
  node.replaceChildren();
  node.className = `notice ${level}`;
  node.dataset.level = level;
  node.append(el("p", { text: message }));
  if (actions.length) {
    const row = el("div", { className: "notice-actions" });
    for (const action of actions) {
      const control = action.href
        ? el("a", { href: action.href, className: "button primary", text: action.label })
        : el("button", { type: "button", className: "primary", text: action.label });
      if (action.id) control.id = action.id;
      if (action.onClick) control.addEventListener("click", action.onClick);
      row.append(control);
    }
    node.append(row);
  }
  node.hidden = false;
  return node;
}

export function clearStatus() {
  const node = document.getElementById("status");
  node.hidden = true;
  node.replaceChildren();
  delete node.dataset.level;
}

function fieldMessages(data) {
  if (!data || !data.fields) return "";
  return Object.entries(data.fields)
    .map(([field, messages]) => `${field}: ${[].concat(messages).join(" ")}`)
    .join(" · ");
}

// --- lease countdown ------------------------------------------------------------------------

export function startCountdown(task) {
  const node = document.getElementById("lease-countdown");
  const notice = document.getElementById("lease-status");
  const skewMs = Date.parse(task.serverNow) - Date.now();
  const expiresAt = Date.parse(task.leaseExpiresAt);
  let warned = false;
  let expired = false;
  const tick = () => {
    const left = expiresAt - (Date.now() + skewMs);
    const seconds = Math.max(0, Math.ceil(left / 1000));
    const hours = Math.floor(seconds / 3600);
    const minutes = Math.floor((seconds % 3600) / 60);
    const rest = String(seconds % 60).padStart(2, "0");
    node.textContent = hours ? `${hours}:${String(minutes).padStart(2, "0")}:${rest}` : `${minutes}:${rest}`;
    node.setAttribute("aria-label", `${minutes} minutes ${seconds % 60} seconds left`);
    if (left <= 60_000 && !warned && left > 0) {
      warned = true;
      node.parentElement.classList.add("warn");
      announce("One minute left on this task.");
    }
    if (left <= 0 && !expired) {
      expired = true;
      node.parentElement.classList.add("expired");
      node.textContent = "expired";
      notice.textContent =
        "Your time on this task has run out. You can still submit: the server takes your " +
        "answer if no other rater has taken your place. What you entered stays here either way.";
      notice.hidden = false;
      window.clearInterval(timer);
    }
  };
  const timer = window.setInterval(tick, 1000);
  tick();
  return { isExpired: () => expired };
}

// --- guidelines panel, help and skip dialogs ------------------------------------------------

function openDialog(dialog) {
  if (!dialog.open) dialog.showModal();
}

export function anyDialogOpen() {
  return Boolean(document.querySelector("dialog[open]"));
}

export function setUpPanels(task, store, { onSkipped } = {}) {
  const panel = document.getElementById("guidelines-panel");
  const panelButton = document.getElementById("guidelines-button");
  const help = document.getElementById("help-dialog");
  const skip = document.getElementById("skip-dialog");
  let returnFocus = null;

  const toggleGuidelines = (force) => {
    const show = force === undefined ? panel.hidden : force;
    if (show) returnFocus = document.activeElement;
    panel.hidden = !show;
    panelButton.setAttribute("aria-expanded", String(show));
    document.body.classList.toggle("with-guidelines", show);
    if (show) panel.focus();
    else if (returnFocus && document.contains(returnFocus)) returnFocus.focus();
  };
  panelButton.addEventListener("click", () => toggleGuidelines());
  document.getElementById("guidelines-close").addEventListener("click", () => toggleGuidelines(false));
  document.getElementById("help-button").addEventListener("click", () => openDialog(help));

  const skipForm = document.getElementById("skip-form");
  const skipError = document.getElementById("skip-error");
  const openSkip = () => {
    skipError.hidden = true;
    openDialog(skip);
  };
  document.getElementById("skip-button").addEventListener("click", openSkip);
  document.getElementById("skip-cancel").addEventListener("click", () => skip.close());
  skipForm.addEventListener("submit", async (event) => {
    event.preventDefault();
    const choice = skipForm.querySelector('input[name="skip-reason"]:checked');
    const details = document.getElementById("skip-other").value.trim();
    let reason = choice ? choice.value : "";
    if (reason === "other") reason = details;
    else if (reason && details) reason = `${reason} ${details}`;
    if (!reason) {
      skipError.textContent = "Pick a reason, or describe it under details.";
      skipError.hidden = false;
      return;
    }
    const result = await postJson(task.urls.skip, { reason });
    if (result.kind === "ok") {
      store.clear();
      if (onSkipped) onSkipped();
      goNext(task);
      return;
    }
    skipError.textContent =
      result.kind === "network" || result.kind === "server"
        ? "The server did not answer; the task is not skipped. Try again in a moment."
        : result.kind === "auth"
          ? "Your session has expired; log in again, then skip."
          : (result.data && result.data.detail) || "The task could not be skipped.";
    skipError.hidden = false;
  });

  return {
    toggleGuidelines,
    guidelinesOpen: () => !panel.hidden,
    openHelp: () => openDialog(help),
    openSkip,
  };
}

// --- keyboard -------------------------------------------------------------------------------

const TEXT_INPUT_TYPES = new Set(["text", "search", "email", "number", "password", "url", "tel"]);

export function isTyping(target) {
  if (!target || !target.tagName) return false;
  if (target.isContentEditable || target.tagName === "TEXTAREA" || target.tagName === "SELECT") {
    return true;
  }
  return target.tagName === "INPUT" && TEXT_INPUT_TYPES.has(target.type || "text");
}

// `handlers(event)` returns true when it used the key. Common keys come after it.
export function installShortcuts(panels, handlers) {
  document.addEventListener("keydown", (event) => {
    if (event.defaultPrevented || event.altKey || event.metaKey) return;
    if (anyDialogOpen()) return; // native dialogs handle their own keys (Esc closes)
    const target = event.target;
    if (isTyping(target)) {
      if (event.key === "Escape") {
        target.blur();
        event.preventDefault();
      }
      return;
    }
    if (event.key === "Escape" && panels.guidelinesOpen()) {
      panels.toggleGuidelines(false);
      event.preventDefault();
      return;
    }
    if (handlers(event)) {
      event.preventDefault();
      return;
    }
    if (event.ctrlKey) return;
    if (event.key === "?") panels.openHelp();
    else if (event.key === "g") panels.toggleGuidelines();
    else if (event.key === "s") panels.openSkip();
    else return;
    event.preventDefault();
  });
}

// --- submit: kept until confirmed, retried with the same client_key -------------------------

export function createSubmitter({ task, store, buildPayload, validate, describeKept }) {
  let busy = false;
  const button = document.getElementById("submit-button");

  const submit = async () => {
    if (busy) return;
    const problem = validate ? validate() : "";
    if (problem) {
      showStatus("error", problem);
      return;
    }
    busy = true;
    button.disabled = true;
    button.setAttribute("aria-busy", "true");
    const payload = {
      ...buildPayload(),
      time_spent_ms: store.timeSpentMs(),
      client_key: store.state.clientKey,
    };
    store.save();
    showStatus("info", "Saving your answer…");
    const result = await postJson(task.urls.submit, payload);
    busy = false;
    button.disabled = false;
    button.removeAttribute("aria-busy");
    const kept = describeKept ? describeKept() : "What you entered is still here";
    if (result.kind === "ok") {
      store.clear();
      showStatus("ok", "Saved. Taking the next task…");
      document.body.dataset.submitted = "true";
      goNext(task);
    } else if (result.kind === "network" || result.kind === "server") {
      const why = result.kind === "network" ? "could not reach the server" : `the server answered ${result.status}`;
      showStatus(
        "error",
        `Not saved yet: ${why}. ${kept} and in this browser; nothing is lost. Retry when you are back online.`,
        [{ label: "Retry", id: "retry-button", onClick: submit }],
      );
      document.getElementById("retry-button").focus();
    } else if (result.kind === "conflict") {
      const detail = (result.data && result.data.detail) || "This task can no longer take an answer.";
      showStatus("error", `${detail} ${kept}, so you can copy it; it cannot be stored for this task.`, [
        {
          label: "Next task",
          id: "conflict-next",
          onClick: () => {
            store.clear();
            goNext(task);
          },
        },
      ]);
      document.body.dataset.conflict = "true";
    } else if (result.kind === "auth") {
      showStatus(
        "error",
        `Your session has expired. ${kept} and in this browser: log in again and you come back to this task with it.`,
        [{ label: "Log in again", href: task.urls.login, id: "relogin-link" }],
      );
    } else {
      const detail = (result.data && result.data.detail) || "The server refused this answer.";
      const fields = fieldMessages(result.data);
      showStatus("error", fields ? `${detail} ${fields}` : detail);
    }
  };

  button.addEventListener("click", submit);
  window.addEventListener("online", () => {
    const status = document.getElementById("status");
    if (status.dataset.level === "error" && document.getElementById("retry-button")) submit();
  });
  return submit;
}

// --- completion cards (ranking and evaluation) ----------------------------------------------

const LONG_TEXT_CHARS = 900;
const LIKERT_WORDS = { 1: "very bad", 4: "middling", 7: "excellent" };

export function buildCompletionCard({ completion, label, task, answer, onChange, draggable }) {
  const id = completion.id;
  const titleId = `response-title-${id}`;
  const card = el("article", {
    className: "completion",
    tabindex: "0",
    "aria-labelledby": titleId,
    dataset: { completionId: String(id), label },
  });
  const head = el("header", { className: "completion-head" });
  const title = el("h2", { id: titleId, className: "completion-title", text: `Response ${label}` });
  const badge = el("span", { className: "rank-badge", dataset: { role: "badge" } });
  head.append(title, badge);
  if (draggable) {
    head.append(
      el("span", {
        className: "drag-handle",
        draggable: "true",
        title: `Drag response ${label} into your ranking`,
        "aria-hidden": "true",
        dataset: { dragId: String(id) },
        text: "⠿ drag",
      }),
    );
  }
  card.append(head);

  const text = el("div", { className: "completion-text", dataset: { role: "text" } });
  text.textContent = completion.text; // text, never HTML
  card.append(text);
  if (completion.text.length > LONG_TEXT_CHARS || completion.text.split("\n").length > 14) {
    text.classList.add("collapsed");
    const toggle = el("button", {
      type: "button",
      className: "link expand",
      "aria-expanded": "false",
      "aria-label": `Show all of response ${label}`,
      text: "Show all",
    });
    toggle.addEventListener("click", () => toggleExpanded(card));
    card.append(toggle);
  }

  if (task.likertEnabled) {
    const fieldset = el("fieldset", { className: "likert" });
    fieldset.append(el("legend", { text: `Score for response ${label}: 1 = very bad, 7 = excellent` }));
    const row = el("div", { className: "likert-row" });
    for (let score = 1; score <= 7; score++) {
      const input = el("input", {
        type: "radio",
        name: `likert-${id}`,
        value: String(score),
        "aria-label": `Score ${score}${LIKERT_WORDS[score] ? ` (${LIKERT_WORDS[score]})` : ""} for response ${label}`,
      });
      if (answer.likert[id] === score) input.checked = true;
      input.addEventListener("change", () => {
        answer.likert[id] = score;
        onChange(`Response ${label} scored ${score}.`);
      });
      row.append(el("label", { className: "likert-option" }, input, el("span", { text: String(score) })));
    }
    fieldset.append(row);
    card.append(fieldset);
  }

  if (task.flags.length) {
    const chosen = new Set(answer.flags[id] || []);
    const details = el("details", { className: "flags" });
    const summary = el("summary", { dataset: { role: "flag-summary" } });
    details.append(summary);
    const list = el("div", { className: "flag-list", role: "group", "aria-label": `Flags for response ${label}` });
    for (const flag of task.flags) {
      const input = el("input", { type: "checkbox", value: flag.key, dataset: { flag: flag.key } });
      input.checked = chosen.has(flag.key);
      input.addEventListener("change", () => {
        const keys = task.flags.map((f) => f.key).filter((key) => list.querySelector(`[data-flag="${key}"]`).checked);
        if (keys.length) answer.flags[id] = keys;
        else delete answer.flags[id];
        updateFlagSummary(card, answer);
        onChange(`${flag.label}: ${input.checked ? "flagged" : "unflagged"} on response ${label}.`);
      });
      list.append(el("label", { className: "flag" }, input, el("span", { text: flag.label })));
    }
    details.append(list);
    card.append(details);
    if (chosen.size) details.open = true;
  }
  updateFlagSummary(card, answer);
  return card;
}

function updateFlagSummary(card, answer) {
  const summary = card.querySelector('[data-role="flag-summary"]');
  if (!summary) return;
  const count = (answer.flags[card.dataset.completionId] || []).length;
  summary.textContent = count ? `Flags (${count} set)` : "Flags";
}

export function toggleExpanded(card) {
  const text = card.querySelector('[data-role="text"]');
  const toggle = card.querySelector(".expand");
  if (!toggle) return;
  const collapsed = text.classList.toggle("collapsed");
  toggle.textContent = collapsed ? "Show all" : "Show less";
  toggle.setAttribute("aria-expanded", String(!collapsed));
}

export function setLikert(card, answer, score) {
  const input = card.querySelector(`input[type=radio][value="${score}"]`);
  if (!input) return false;
  input.checked = true;
  input.dispatchEvent(new Event("change", { bubbles: true }));
  return true;
}

export function openFlags(card) {
  const details = card.querySelector("details.flags");
  if (!details) return;
  details.open = true;
  const first = details.querySelector("input[type=checkbox]");
  if (first) first.focus();
}
