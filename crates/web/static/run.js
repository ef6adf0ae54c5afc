// A one-off command's page: the output opens at its end; while the command runs, it
// follows the live stream (lines appended as they come), then shows the final state, exit
// code and error and refreshes the facts card, without reloading the page. Uses
// `followLog` and `refreshTimes` from panel.js (loaded before it).
"use strict";

(() => {
  const log = document.getElementById("log");
  if (!log) return;
  log.scrollTop = log.scrollHeight;
  if (!log.dataset.stream) return;

  const source = followLog(log, { end: showEnd });

  async function showEnd(event) {
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
  }
})();
