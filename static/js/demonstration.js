// The demonstration page: write the ideal answer; the draft is saved in the browser as you type.
import {
  AnswerStore,
  clearStatus,
  createSubmitter,
  installShortcuts,
  readTaskData,
  setUpPanels,
  showStatus,
  startCountdown,
} from "./task-common.js";

const task = readTaskData();
const store = new AnswerStore(task.assignmentId, { text: "" });
const answer = store.answer;
const textarea = document.getElementById("demonstration-text");
const count = document.getElementById("demo-count");
const draftStatus = document.getElementById("draft-status");
const limit = task.demonstrationMaxLength;

function updateCount() {
  const n = textarea.value.length;
  count.textContent = `${n.toLocaleString()} / ${limit.toLocaleString()} characters`;
  count.classList.toggle("warn", n > limit * 0.9);
}

let saveTimer = null;
textarea.value = answer.text || "";
updateCount();
textarea.addEventListener("input", () => {
  answer.text = textarea.value;
  updateCount();
  window.clearTimeout(saveTimer);
  saveTimer = window.setTimeout(() => {
    const ok = store.save();
    const time = new Date().toLocaleTimeString([], { hour: "2-digit", minute: "2-digit", second: "2-digit" });
    draftStatus.textContent = ok ? `Draft saved in this browser at ${time}` : "Draft kept on this page only";
  }, 400);
});

const panels = setUpPanels(task, store);
installShortcuts(panels, (event) => {
  if (event.ctrlKey && event.key === "Enter") {
    submit();
    return true;
  }
  if (!event.ctrlKey && !event.shiftKey && event.key === "w") {
    textarea.focus();
    return true;
  }
  return false;
});
textarea.addEventListener("keydown", (event) => {
  if (event.key === "Enter" && event.ctrlKey) {
    event.preventDefault();
    submit();
  }
});

const submit = createSubmitter({
  task,
  store,
  validate: () => (textarea.value.trim() ? "" : "Write the answer first; it may not be empty."),
  buildPayload() {
    answer.text = textarea.value;
    return { text: textarea.value };
  },
  describeKept: () => "Your text is still on this page",
});

startCountdown(task);
if (store.restored && answer.text) {
  showStatus("info", "Your draft for this task was restored from this browser.");
  draftStatus.textContent = "Draft restored";
} else {
  clearStatus();
  textarea.focus();
}
document.body.dataset.ready = "true";
