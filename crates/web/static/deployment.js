// A deployment's page: the log opens at its end (a failure in view); while the deployment
// runs, it follows the live stream — lines appended, and on each `phase` event the state
// badge, the phases table, the tab's title and the failure banner redrawn — and ticks the
// running phase's duration, all without reloading the page. Uses `followLog` and
// `refreshTimes` from panel.js (loaded before it).
"use strict";

(() => {
  const log = document.getElementById("log");
  if (!log) return;
  log.scrollTop = log.scrollHeight;

  const table = document.querySelector("#phases table");
  // The server's clock minus the browser's: a running phase's duration is counted on the
  // server's clock, whatever the browser's says.
  let skew = table && table.dataset.now ? Number(table.dataset.now) - Date.now() : 0;

  // A duration as the server writes it: "850 ms", "12.4 s", "3 min 5 s".
  function took(ms) {
    if (ms <= 0) return "0 ms";
    if (ms < 1000) return Math.floor(ms) + " ms";
    if (ms < 60000) return (ms / 1000).toFixed(1) + " s";
    return Math.floor(ms / 60000) + " min " + Math.floor((ms % 60000) / 1000) + " s";
  }

  function tick() {
    for (const cell of document.querySelectorAll("#phases td[data-since]")) {
      cell.textContent = took(Date.now() + skew - Number(cell.dataset.since)) + " so far";
    }
  }

  function phaseRow(phase) {
    const row = document.createElement("tr");
    if (phase.running) row.className = "running";
    const name = document.createElement("td");
    name.textContent = phase.name;
    const at = document.createElement("td");
    at.className = "muted small";
    const time = document.createElement("time");
    time.dateTime = phase.at;
    time.dataset.clock = "";
    at.append(time);
    const duration = document.createElement("td");
    duration.className = "num";
    duration.textContent = phase.took;
    if (phase.running) duration.dataset.since = String(phase.at_ms);
    row.append(name, at, duration);
    return row;
  }

  function showProgress(progress) {
    skew = progress.now - Date.now();
    const badge = document.getElementById("state");
    badge.textContent = progress.state;
    badge.className = "badge " + progress.tone;
    document.title = progress.title + " · Capstan";
    if (table) table.replaceChildren(...progress.phases.map(phaseRow));
    const banner = document.getElementById("error");
    banner.textContent = progress.banner;
    banner.hidden = !progress.banner;
    refreshTimes();
    tick();
  }

  // The final state as the `end` event has it, for a page whose last `phase` event did
  // not come (the server could not read the phases then): the badge, the title and the
  // error, and no phase still ticking.
  function showEnd(end) {
    const badge = document.getElementById("state");
    if (badge.textContent === end.state) return;
    badge.textContent = end.state;
    badge.className = "badge " + ({ live: "ok", failed: "bad" }[end.state] || "idle");
    const mark = { live: "✓ ", failed: "✗ " }[end.state] || "";
    const at = document.title.indexOf(" · Deployment");
    if (at >= 0) document.title = mark + end.state + document.title.slice(at);
    for (const cell of document.querySelectorAll("#phases td[data-since]")) {
      delete cell.dataset.since;
      cell.closest("tr").classList.remove("running");
    }
    const banner = document.getElementById("error");
    if (end.error && banner.hidden) {
      banner.textContent = end.error;
      banner.hidden = false;
    }
  }

  if (!log.dataset.stream) return;
  const ticking = setInterval(tick, 1000);
  const source = followLog(log, {
    phase: (event) => showProgress(JSON.parse(event.data)),
    // The last `phase` event came before this one: the page shows the end already,
    // unless that event could not be made.
    end: (event) => {
      source.close();
      clearInterval(ticking);
      showEnd(JSON.parse(event.data));
      const following = document.getElementById("following");
      if (following) following.remove();
      log.scrollTop = log.scrollHeight;
    },
    // The browser gave up on the stream (the deployment is gone: 404): nothing ticks on.
    error: () => {
      if (source.readyState === EventSource.CLOSED) clearInterval(ticking);
    },
  });
})();
