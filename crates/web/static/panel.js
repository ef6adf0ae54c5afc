// Capstan's panel script: confirmations, buttons held while a form is sent (and freed
// when Back restores the page), relative times kept current, the settings form's source
// switch. (The deployment page's live log is in deployment.js.) Every action also works
// without it, as a plain form post.
"use strict";

const SIGNED_OUT = "capstan-signed-out";

document.addEventListener("submit", (event) => {
  const form = event.target;
  const submitter = event.submitter;
  // A button may ask its own question (two buttons of one form doing different things).
  const question = (submitter && submitter.dataset.confirm) || form.dataset.confirm;
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
  if (form.action.endsWith("/logout")) sessionStorage.setItem(SIGNED_OUT, "1");
  // A disabled button's name and value are not sent: carry the pressed one's in a hidden
  // field (replacing one a page restored from the back/forward cache still holds).
  for (const carried of form.querySelectorAll("input[data-carried]")) carried.remove();
  if (submitter && submitter.name) {
    const carried = document.createElement("input");
    carried.type = "hidden";
    carried.name = submitter.name;
    carried.value = submitter.value;
    carried.dataset.carried = "";
    form.append(carried);
  }
  for (const button of form.querySelectorAll("button:not(:disabled)")) {
    button.disabled = true;
    button.dataset.busy = "";
  }
});

// A page the browser restores from its back/forward cache comes back as it was left:
// free the buttons held while its form was sent, drop one-time messages (a new token's
// secret is shown once), and after signing out show nothing: reload, which signs in anew.
window.addEventListener("pageshow", (event) => {
  if (!event.persisted) {
    // A page of a session, fresh from the server: signed in (again).
    if (document.querySelector(".who")) sessionStorage.removeItem(SIGNED_OUT);
    return;
  }
  if (sessionStorage.getItem(SIGNED_OUT)) {
    document.body.hidden = true;
    window.location.reload();
    return;
  }
  for (const button of document.querySelectorAll("button[data-busy]")) {
    button.disabled = false;
    delete button.dataset.busy;
  }
  for (const once of document.querySelectorAll("[data-once]")) once.remove();
});

// A page that may answer a post (a form shown again with its problems) names the address
// that shows it by GET: made the history entry's address, Back to it or a reload asks for
// the page instead of sending the form again.
const here = document.body.dataset.here;
if (here) {
  const same = here === window.location.pathname;
  history.replaceState(history.state, "", same ? window.location.href : here + window.location.hash);
}

// Times: `<time datetime>` says how long ago in words, kept current (a `data-clock` one,
// the time of day in the browser's own zone); hovering shows the moment in the
// browser's own time zone. The words match the server's.
function ago(ms) {
  const secs = Math.max(0, Math.floor(ms / 1000));
  if (secs < 60) return "just now";
  if (secs < 3600) return Math.floor(secs / 60) + " min ago";
  if (secs < 86400) return Math.floor(secs / 3600) + " h ago";
  return Math.floor(secs / 86400) + " days ago";
}
// A size in the binary unit that reads best, as the server writes it (for numbers that
// arrive after the page, such as live memory use): "1.5 KiB", "73.4 GiB", "734 GiB".
function formatSize(bytes) {
  if (!(bytes >= 1024)) return Math.max(0, Math.floor(bytes || 0)) + " B";
  const units = ["KiB", "MiB", "GiB", "TiB", "PiB"];
  let value = bytes / 1024;
  let unit = 0;
  while (value >= 999.5 && unit + 1 < units.length) {
    value /= 1024;
    unit += 1;
  }
  return (value >= 99.95 ? value.toFixed(0) : value.toFixed(1)) + " " + units[unit];
}

function refreshTimes() {
  const now = Date.now();
  for (const time of document.querySelectorAll("time[datetime]")) {
    const at = Date.parse(time.dateTime);
    if (Number.isNaN(at)) continue;
    time.textContent = time.dataset.clock === undefined
      ? ago(now - at)
      : new Date(at).toLocaleTimeString(undefined, { hour12: false });
    time.title = new Date(at).toLocaleString(undefined, {
      year: "numeric", month: "short", day: "numeric",
      hour: "2-digit", minute: "2-digit", second: "2-digit", timeZoneName: "short",
    });
  }
}
refreshTimes();
setInterval(refreshTimes, 30000);

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

// A live log on a deployment's or a run's page (`<pre data-stream>`, opened at its end):
// follows the stream, appending each `log` line (its `[stream] ` prefix as its class) and
// staying at the bottom while the reader is there; a stream the browser reconnects starts
// again after the page's last line, so lines already shown (each event's id is its
// sequence number) are skipped. `handlers` maps other events (`end`, `error`, …) to
// functions of the event. Gives the EventSource.
function followLog(log, handlers) {
  const source = new EventSource(log.dataset.stream);
  const stuckToBottom = () => log.scrollHeight - log.scrollTop - log.clientHeight < 40;
  let shown = Number(new URL(log.dataset.stream, window.location.href).searchParams.get("after")) || 0;
  source.addEventListener("log", (event) => {
    const seq = Number(event.lastEventId);
    if (seq && seq <= shown) return;
    if (seq) shown = seq;
    const follow = stuckToBottom();
    const match = /^\[(\w+)\] /.exec(event.data);
    const line = document.createElement("span");
    if (match) line.className = match[1];
    line.textContent = event.data;
    log.append(line, "\n");
    if (follow) log.scrollTop = log.scrollHeight;
  });
  for (const [name, handle] of Object.entries(handlers)) source.addEventListener(name, handle);
  // The confirmation that started it ("Deployment #7 queued.") is stale once it ended.
  source.addEventListener("end", () => {
    const started = document.querySelector("#flash.notice");
    if (started) started.remove();
  });
  return source;
}
