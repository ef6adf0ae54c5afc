// Capstan's panel script: confirmations, the settings form's source switch, and the live
// deployment log. Every action also works without it, as a plain form post.
"use strict";

document.addEventListener("submit", (event) => {
  const form = event.target;
  const question = form.dataset.confirm;
  if (question && !window.confirm(question)) {
    event.preventDefault();
    return;
  }
  const typed = form.querySelector("[data-must-equal]");
  if (typed && typed.value.trim() !== typed.dataset.mustEqual) {
    event.preventDefault();
    typed.setCustomValidity("Type " + typed.dataset.mustEqual + " to confirm");
    typed.reportValidity();
    return;
  }
  for (const button of form.querySelectorAll("button")) button.disabled = true;
});

document.addEventListener("input", (event) => {
  if (event.target.dataset.mustEqual !== undefined) event.target.setCustomValidity("");
});

// Shows only the fields of the chosen source kind.
function applySwitch(select) {
  const name = select.dataset.switch;
  for (const input of document.querySelectorAll("[data-when^='" + name + "=']")) {
    const wanted = input.dataset.when.split("=")[1];
    const label = input.closest("label") || input;
    label.hidden = select.value !== wanted;
  }
}
for (const select of document.querySelectorAll("select[data-switch]")) {
  applySwitch(select);
  select.addEventListener("change", () => applySwitch(select));
}

// Follows a running deployment: appends lines as they come, then shows the final state
// and error, and refreshes the phases, without reloading the page.
const log = document.getElementById("log");
if (log && log.dataset.stream) {
  const source = new EventSource(log.dataset.stream);
  const stuckToBottom = () => log.scrollHeight - log.scrollTop - log.clientHeight < 40;
  log.scrollTop = log.scrollHeight;
  source.addEventListener("log", (event) => {
    const follow = stuckToBottom();
    const match = /^\[(\w+)\] /.exec(event.data);
    const line = document.createElement("span");
    if (match) line.className = match[1];
    line.textContent = event.data;
    log.append(line, "\n");
    if (follow) log.scrollTop = log.scrollHeight;
  });
  source.addEventListener("end", async (event) => {
    source.close();
    const end = JSON.parse(event.data);
    const badge = document.getElementById("state");
    badge.textContent = end.state;
    badge.className = "badge " + ({ live: "ok", failed: "bad" }[end.state] || "idle");
    const following = document.getElementById("following");
    if (following) following.remove();
    if (end.error) {
      const error = document.getElementById("error");
      error.textContent = end.error;
      error.hidden = false;
    }
    try {
      const page = await fetch(window.location.href, { credentials: "same-origin" });
      const fresh = new DOMParser().parseFromString(await page.text(), "text/html");
      const phases = fresh.getElementById("phases");
      if (phases) document.getElementById("phases").replaceWith(phases);
    } catch (_) { /* the phases stay as they were */ }
  });
}
