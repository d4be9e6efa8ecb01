// The ranking page: order K responses best to worst, with ties, by keyboard or drag and drop.
import {
  AnswerStore,
  announce,
  buildCompletionCard,
  clearStatus,
  createSubmitter,
  el,
  installShortcuts,
  openFlags,
  readTaskData,
  setLikert,
  setUpPanels,
  showStatus,
  startCountdown,
  toggleExpanded,
} from "./task-common.js";
import * as model from "./ranking-model.js";

const task = readTaskData();
const ids = task.completions.map((c) => c.id);
const numberOf = new Map(ids.map((id, index) => [id, index + 1]));
const store = new AnswerStore(task.assignmentId, { groups: [], likert: {}, flags: {}, rationale: "" });
const answer = store.answer;
answer.groups = model.sanitize(answer.groups, new Set(ids));

const cardsRoot = document.getElementById("completions");
const tiersRoot = document.getElementById("tiers");
const poolRoot = document.getElementById("pool-chips");
const rationale = document.getElementById("rationale");
const cards = new Map();
let selected = null;

function changed(message) {
  store.save();
  if (message) announce(message);
}

// `about`: the id whose new place is announced, or a message of its own.
function setGroups(groups, about) {
  answer.groups = groups;
  renderRanking();
  changed(typeof about === "number" ? describePlace(about) : about);
}

function describePlace(id) {
  const at = model.locate(answer.groups, id);
  if (!at) return `Response ${numberOf.get(id)} is not ranked.`;
  const group = answer.groups[at[0]];
  const others = group.filter((other) => other !== id).map((other) => numberOf.get(other));
  const tie = others.length ? `, tied with ${others.join(" and ")}` : "";
  return `Response ${numberOf.get(id)} is ranked ${at[0] + 1}${tie}.`;
}

// --- rendering --------------------------------------------------------------------------------

function chip(id) {
  const node = el("span", {
    className: "chip",
    draggable: "true",
    role: "button",
    tabindex: "-1",
    "aria-label": `Response ${numberOf.get(id)}`,
    title: `Response ${numberOf.get(id)}: drag to rank, click to pick`,
    dataset: { dragId: String(id), completionId: String(id) },
    text: String(numberOf.get(id)),
  });
  if (id === selected) node.classList.add("selected");
  node.addEventListener("click", () => select(id, { focus: true }));
  return node;
}

function gap(index, last) {
  return el("div", {
    className: last ? "gap gap-last" : "gap",
    "aria-hidden": "true",
    dataset: { drop: "gap", index: String(index) },
    text: last ? "drop here for a new lowest rank" : "",
  });
}

function renderRanking() {
  tiersRoot.replaceChildren();
  answer.groups.forEach((group, index) => {
    tiersRoot.append(gap(index, false));
    const names = group.map((id) => numberOf.get(id));
    const tier = el("div", {
      className: group.length > 1 ? "tier tie" : "tier",
      role: "listitem",
      "aria-label": `Rank ${index + 1}: response${names.length > 1 ? "s" : ""} ${names.join(" and ")}${
        names.length > 1 ? " (tied)" : ""
      }`,
      dataset: { drop: "tier", index: String(index), tier: String(index) },
    });
    tier.append(el("span", { className: "tier-rank", "aria-hidden": "true", text: String(index + 1) }));
    const chips = el("span", { className: "tier-chips" });
    group.forEach((id) => chips.append(chip(id)));
    tier.append(chips);
    if (group.length > 1) tier.append(el("span", { className: "tie-label", "aria-hidden": "true", text: "tie" }));
    tiersRoot.append(tier);
  });
  tiersRoot.append(gap(answer.groups.length, true));

  poolRoot.replaceChildren();
  const unranked = ids.filter((id) => !model.locate(answer.groups, id));
  unranked.forEach((id) => poolRoot.append(chip(id)));
  if (!unranked.length) poolRoot.append(el("span", { className: "muted", text: "All ranked." }));

  for (const [id, card] of cards) {
    const at = model.locate(answer.groups, id);
    const badge = card.querySelector('[data-role="badge"]');
    badge.textContent = at ? `Rank ${at[0] + 1}${answer.groups[at[0]].length > 1 ? " · tie" : ""}` : "Not ranked";
    badge.classList.toggle("ranked", Boolean(at));
    card.classList.toggle("selected", id === selected);
    card.setAttribute("aria-current", id === selected ? "true" : "false");
    updateRankControls(card, id);
  }
}

function select(id, { focus = false } = {}) {
  selected = id;
  renderRanking();
  if (focus) {
    const card = cards.get(id);
    card.focus({ preventScroll: true });
    card.scrollIntoView({ block: "nearest" });
  }
}

// Buttons for every ranking move: for pointer users who do not drag, and for screen readers.
const CONTROLS = [
  ["add", "Rank", "Add response N at the bottom of your ranking", (g, id) => model.appendIfUnranked(g, id)],
  ["up", "▲", "Move response N up", model.moveUp],
  ["down", "▼", "Move response N down", model.moveDown],
  ["tie", "Tie ↑", "Tie response N with the row above, or untie it", model.toggleTie],
  ["remove", "✕", "Take response N out of the ranking", model.unrank],
];

function rankControls(id) {
  const group = el("div", { className: "rank-controls", role: "group", "aria-label": `Ranking of response ${numberOf.get(id)}` });
  for (const [action, text, label, apply] of CONTROLS) {
    const button = el("button", {
      type: "button",
      className: `rank-${action}`,
      "aria-label": label.replace("N", String(numberOf.get(id))),
      title: label.replace("N", String(numberOf.get(id))),
      dataset: { rankAction: action },
      text,
    });
    button.addEventListener("click", () => {
      selected = id;
      setGroups(apply(answer.groups, id), id);
      const next = button.disabled ? cards.get(id) : button;
      next.focus({ preventScroll: true });
    });
    group.append(button);
  }
  return group;
}

function updateRankControls(card, id) {
  const at = model.locate(answer.groups, id);
  const buttons = Object.fromEntries(
    [...card.querySelectorAll("[data-rank-action]")].map((b) => [b.dataset.rankAction, b]),
  );
  buttons.add.hidden = Boolean(at);
  for (const action of ["up", "down", "tie", "remove"]) buttons[action].hidden = !at;
  if (!at) return;
  const [i] = at;
  const tied = answer.groups[i].length > 1;
  buttons.up.disabled = i === 0 && !tied;
  buttons.down.disabled = i === answer.groups.length - 1 && !tied;
  buttons.tie.disabled = i === 0 && !tied;
  buttons.tie.textContent = tied ? "Untie" : "Tie ↑";
  buttons.tie.setAttribute("aria-pressed", String(tied));
}

task.completions.forEach((completion, index) => {
  const card = buildCompletionCard({
    completion,
    label: String(index + 1),
    task,
    answer,
    onChange: changed,
    draggable: true,
  });
  card.querySelector(".completion-head").after(rankControls(completion.id));
  card.addEventListener("focusin", () => {
    if (selected !== completion.id) select(completion.id);
  });
  card.addEventListener("click", (event) => {
    if (!event.target.closest("input, label, button, summary, a")) select(completion.id, { focus: true });
  });
  cards.set(completion.id, card);
  cardsRoot.append(card);
});
rationale.value = answer.rationale || "";
rationale.addEventListener("input", () => {
  answer.rationale = rationale.value;
  changed();
});
renderRanking();

// --- compare two responses side by side, full length ----------------------------------------

let comparing = [];
const compareBar = el("div", { className: "compare-bar", role: "status", hidden: true });
cardsRoot.before(compareBar);

function renderCompare() {
  const active = comparing.length === 2;
  cardsRoot.classList.toggle("comparing", active);
  for (const [id, card] of cards) {
    const picked = comparing.includes(id);
    card.classList.toggle("compare-hidden", active && !picked);
    card.classList.toggle("compare-picked", picked);
    const button = card.querySelector("[data-compare]");
    button.setAttribute("aria-pressed", String(picked));
    const text = card.querySelector('[data-role="text"]');
    if (active && picked && text.classList.contains("collapsed")) toggleExpanded(card);
  }
  compareBar.replaceChildren();
  if (comparing.length === 0) {
    compareBar.hidden = true;
    return;
  }
  const names = comparing.map((id) => numberOf.get(id)).join(" and ");
  compareBar.append(
    el("span", {
      text: active
        ? `Comparing responses ${names} side by side. `
        : `Response ${names} picked for comparing: pick one more with c. `,
    }),
  );
  const done = el("button", { type: "button", className: "link", text: "Show all responses (Esc)" });
  done.addEventListener("click", () => setCompare([]));
  compareBar.append(done);
  compareBar.hidden = false;
}

function setCompare(ids) {
  comparing = ids;
  renderCompare();
}

function toggleCompare(id) {
  if (comparing.includes(id)) setCompare(comparing.filter((other) => other !== id));
  else setCompare([...comparing, id].slice(-2));
}

for (const [id, card] of cards) {
  const button = el("button", {
    type: "button",
    className: "compare-toggle",
    "aria-pressed": "false",
    "aria-label": `Compare response ${numberOf.get(id)} side by side with another`,
    dataset: { compare: String(id) },
    text: "⇆ compare",
  });
  button.addEventListener("click", () => toggleCompare(id));
  card.querySelector(".completion-head").append(button);
}

// --- drag and drop (native HTML5) -------------------------------------------------------------

let dragged = null;
document.addEventListener("dragstart", (event) => {
  const source = event.target.closest && event.target.closest("[data-drag-id]");
  if (!source) return;
  dragged = Number(source.dataset.dragId);
  event.dataTransfer.setData("text/plain", String(dragged));
  event.dataTransfer.effectAllowed = "move";
  document.body.classList.add("dragging");
});
document.addEventListener("dragend", () => {
  dragged = null;
  document.body.classList.remove("dragging");
  document.querySelectorAll(".drop-over").forEach((node) => node.classList.remove("drop-over"));
});
document.addEventListener("dragover", (event) => {
  const zone = event.target.closest && event.target.closest("[data-drop]");
  if (!zone || dragged === null) return;
  event.preventDefault();
  event.dataTransfer.dropEffect = "move";
  document.querySelectorAll(".drop-over").forEach((node) => node !== zone && node.classList.remove("drop-over"));
  zone.classList.add("drop-over");
});
document.addEventListener("drop", (event) => {
  const zone = event.target.closest && event.target.closest("[data-drop]");
  if (!zone) return;
  event.preventDefault();
  const id = Number(event.dataTransfer.getData("text/plain") || dragged);
  if (!numberOf.has(id)) return;
  const index = Number(zone.dataset.index);
  selected = id;
  if (zone.dataset.drop === "gap") setGroups(model.insertGroup(answer.groups, id, index), id);
  else if (zone.dataset.drop === "tier") setGroups(model.joinGroup(answer.groups, id, index), id);
  else setGroups(model.unrank(answer.groups, id), `Response ${numberOf.get(id)} taken out of the ranking.`);
  document.body.classList.remove("dragging");
});

// --- keyboard ---------------------------------------------------------------------------------

const panels = setUpPanels(task, store);

function requireSelection() {
  if (selected !== null) return true;
  announce("Pick a response first: press its number.");
  return false;
}

installShortcuts(panels, (event) => {
  const key = event.key;
  const inCard = event.target.closest && event.target.closest(".completion");
  const onControl = event.target.matches && event.target.matches("button, summary, a, [role=button]");
  if (key === "Escape" && inCard && event.target !== inCard) {
    inCard.focus();
    return true;
  }
  if (event.shiftKey && /^Digit[1-7]$/.test(event.code) && task.likertEnabled) {
    if (!requireSelection()) return true;
    setLikert(cards.get(selected), answer, Number(event.code.slice(5)));
    return true;
  }
  if (event.ctrlKey && key === "Enter") {
    submit();
    return true;
  }
  if (event.ctrlKey || event.shiftKey) return false;
  if (/^[1-9]$/.test(key)) {
    const id = ids[Number(key) - 1];
    if (id === undefined) return true;
    const wasRanked = Boolean(model.locate(answer.groups, id));
    selected = id;
    if (!wasRanked) setGroups(model.appendIfUnranked(answer.groups, id), id);
    else announce(describePlace(id));
    select(id, { focus: true });
    return true;
  }
  // Arrow keys on radio buttons change the score: leave them to the browser there.
  const arrowsFree = !(event.target.matches && event.target.matches("input"));
  if ((key === "ArrowUp" || key === "k") && (arrowsFree || key === "k")) {
    if (!requireSelection()) return true;
    setGroups(model.moveUp(answer.groups, selected), selected);
    return true;
  }
  if ((key === "ArrowDown" || key === "j") && (arrowsFree || key === "j")) {
    if (!requireSelection()) return true;
    setGroups(model.moveDown(answer.groups, selected), selected);
    return true;
  }
  if (key === "t" || key === "=") {
    if (!requireSelection()) return true;
    setGroups(model.toggleTie(answer.groups, selected), selected);
    return true;
  }
  if (key === "0" || key === "Backspace" || key === "Delete") {
    if (!requireSelection()) return true;
    setGroups(model.unrank(answer.groups, selected), selected);
    return true;
  }
  if (key === "f") {
    if (!requireSelection()) return true;
    openFlags(cards.get(selected));
    return true;
  }
  if (key === "e") {
    if (!requireSelection()) return true;
    toggleExpanded(cards.get(selected));
    return true;
  }
  if (key === "c") {
    if (!requireSelection()) return true;
    toggleCompare(selected);
    return true;
  }
  if (key === "Escape" && comparing.length) {
    setCompare([]);
    return true;
  }
  if (key === "r") {
    rationale.focus();
    return true;
  }
  if (key === "Enter" && !onControl) {
    submit();
    return true;
  }
  return false;
});

rationale.addEventListener("keydown", (event) => {
  if (event.key === "Enter" && event.ctrlKey) {
    event.preventDefault();
    submit();
  }
});

// --- submit -----------------------------------------------------------------------------------

const submit = createSubmitter({
  task,
  store,
  validate() {
    const missing = ids.filter((id) => !model.locate(answer.groups, id)).map((id) => numberOf.get(id));
    if (missing.length) {
      return `Rank every response first: ${missing.length === 1 ? "response" : "responses"} ${missing.join(", ")} ${
        missing.length === 1 ? "is" : "are"
      } not ranked yet.`;
    }
    return "";
  },
  buildPayload() {
    const likert = {};
    for (const id of ids) if (answer.likert[id]) likert[id] = answer.likert[id];
    const flags = {};
    for (const id of ids) if ((answer.flags[id] || []).length) flags[id] = answer.flags[id];
    return { ranking: answer.groups, likert, flags, rationale: answer.rationale || "" };
  },
  describeKept: () => "Your ranking, scores, flags and rationale are still on this page",
});

startCountdown(task);
if (store.restored && (answer.groups.length || Object.keys(answer.likert).length)) {
  showStatus("info", "Your unsent answer to this task was restored from this browser.");
} else {
  clearStatus();
}
document.body.dataset.ready = "true";
