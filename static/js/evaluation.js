// The A/B evaluation page: which of two responses is better, a tie, or both bad.
import {
  AnswerStore,
  announce,
  buildCompletionCard,
  clearStatus,
  createSubmitter,
  installShortcuts,
  openFlags,
  readTaskData,
  setLikert,
  setUpPanels,
  showStatus,
  startCountdown,
  toggleExpanded,
} from "./task-common.js";

const task = readTaskData();
const [first, second] = task.completions;
const LABELS = ["A", "B"];
const store = new AnswerStore(task.assignmentId, {
  verdict: "",
  bothBad: false,
  likert: {},
  flags: {},
  rationale: "",
});
const answer = store.answer;
const cards = new Map();
let selected = null;

function changed(message) {
  store.save();
  if (message) announce(message);
}

function select(id, focus) {
  selected = id;
  for (const [cid, card] of cards) {
    card.classList.toggle("selected", cid === id);
    card.setAttribute("aria-current", cid === id ? "true" : "false");
  }
  if (focus) cards.get(id).focus();
}

const root = document.getElementById("completions");
task.completions.forEach((completion, index) => {
  const card = buildCompletionCard({ completion, label: LABELS[index], task, answer, onChange: changed });
  card.addEventListener("focusin", () => selected !== completion.id && select(completion.id, false));
  cards.set(completion.id, card);
  root.append(card);
});

const verdictInputs = [...document.querySelectorAll('input[name="verdict"]')];
const bothBad = document.getElementById("both-bad");
const rationale = document.getElementById("rationale");
for (const input of verdictInputs) {
  input.checked = input.value === answer.verdict;
  input.addEventListener("change", () => {
    answer.verdict = input.value;
    changed();
  });
}
bothBad.checked = Boolean(answer.bothBad);
bothBad.addEventListener("change", () => {
  answer.bothBad = bothBad.checked;
  changed();
});
rationale.value = answer.rationale || "";
rationale.addEventListener("input", () => {
  answer.rationale = rationale.value;
  changed();
});

function setVerdict(value) {
  const input = verdictInputs.find((i) => i.value === value);
  input.checked = true;
  answer.verdict = value;
  changed(input.parentElement.textContent.trim());
}

const panels = setUpPanels(task, store);
installShortcuts(panels, (event) => {
  const key = event.key;
  const inCard = event.target.closest && event.target.closest(".completion");
  if (key === "Escape" && inCard && event.target !== inCard) {
    inCard.focus();
    return true;
  }
  if (event.shiftKey && /^Digit[1-7]$/.test(event.code) && task.likertEnabled) {
    if (selected === null) {
      announce("Pick a response first: press a or b.");
      return true;
    }
    setLikert(cards.get(selected), answer, Number(event.code.slice(5)));
    return true;
  }
  if (event.ctrlKey && key === "Enter") {
    submit();
    return true;
  }
  if (event.ctrlKey || event.shiftKey) return false;
  if (key === "1" || key === "2" || key === "3") {
    setVerdict({ 1: "a", 2: "b", 3: "tie" }[key]);
    return true;
  }
  if (key === "x") {
    bothBad.checked = !bothBad.checked;
    answer.bothBad = bothBad.checked;
    changed(bothBad.checked ? "Both marked bad." : "Both bad unmarked.");
    return true;
  }
  if (key === "a" || key === "b") {
    select((key === "a" ? first : second).id, true);
    return true;
  }
  if ((key === "f" || key === "e") && selected !== null) {
    if (key === "f") openFlags(cards.get(selected));
    else toggleExpanded(cards.get(selected));
    return true;
  }
  if (key === "r") {
    rationale.focus();
    return true;
  }
  if (key === "Enter" && !(event.target.matches && event.target.matches("button, a, summary"))) {
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

const submit = createSubmitter({
  task,
  store,
  validate: () => (answer.verdict ? "" : "Say which is better (1, 2) or that they tie (3)."),
  buildPayload() {
    const [a, b] = [first.id, second.id];
    const ranking = { a: [[a], [b]], b: [[b], [a]], tie: [[a, b]] }[answer.verdict];
    const likert = {};
    const flags = {};
    for (const id of [a, b]) {
      if (answer.likert[id]) likert[id] = answer.likert[id];
      if ((answer.flags[id] || []).length) flags[id] = answer.flags[id];
    }
    return { ranking, likert, flags, both_bad: Boolean(answer.bothBad), rationale: answer.rationale || "" };
  },
  describeKept: () => "Your verdict, scores, flags and rationale are still on this page",
});

startCountdown(task);
if (store.restored && answer.verdict) showStatus("info", "Your unsent answer was restored from this browser.");
else clearStatus();
document.body.dataset.ready = "true";
