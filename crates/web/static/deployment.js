// A deployment's page: the log opens at its end (a failure in view); while the deployment
// runs, it follows the live stream — lines appended, and on each `phase` event the state
// badge, the phases table, the tab's title and the failure banner redrawn — and ticks the
// running phase's duration, all without reloading the page. Uses `refreshTimes` from
// panel.js (loaded before it).
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

  if (!log.dataset.stream) return;
  const ticking = setInterval(tick, 1000);
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
  source.addEventListener("phase", (event) => showProgress(JSON.parse(event.data)));
  // The last `phase` event came before this one: the page already shows the end.
  source.addEventListener("end", () => {
    source.close();
    clearInterval(ticking);
    const following = document.getElementById("following");
    if (following) following.remove();
    log.scrollTop = log.scrollHeight;
  });
})();
