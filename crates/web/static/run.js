// A one-off command's page: the output opens at its end; while the command runs, it
// follows the live stream (lines appended as they come), then shows the final state, exit
// code and error and refreshes the facts card, without reloading the page. Uses
// `refreshTimes` from panel.js (loaded before it).
"use strict";

(() => {
  const log = document.getElementById("log");
  if (!log) return;
  log.scrollTop = log.scrollHeight;
  if (!log.dataset.stream) return;

  const source = new EventSource(log.dataset.stream);
  const stuckToBottom = () => log.scrollHeight - log.scrollTop - log.clientHeight < 40;
  // A stream the browser reconnects starts again after the page's last line: lines
  // already shown (each event's id is its sequence number) are skipped.
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
  source.addEventListener("end", async (event) => {
    source.close();
    const end = JSON.parse(event.data);
    const badge = document.getElementById("state");
    badge.textContent = end.state;
    badge.className = "badge " + ({ succeeded: "ok", failed: "bad", timed_out: "bad" }[end.state] || "idle");
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
      const facts = fresh.getElementById("phases");
      if (facts) document.getElementById("phases").replaceWith(facts);
      refreshTimes();
    } catch (_) { /* the facts stay as they were */ }
  });
})();
