// The app page's live view of the app running: its output followed as it is written (all
// containers or one, from a tail the user picks, and on to the containers of each new
// deployment) and each container's CPU and memory use drawn as a small graph, polled
// while the tab is visible. Loaded on the app page only,
// after panel.js (whose formatSize it uses). App output is untrusted: it only ever
// reaches the page as text (textContent), never as markup.
"use strict";
{
  const MAX_LINES = 3000;
  const RETRY_MS = [1000, 3000, 10000, 30000];

  // Why a request of ours was refused, from the server's JSON error when it sent one.
  async function refusal(response) {
    if (response.redirected || (response.url && new URL(response.url).pathname === "/login")) {
      return "you are signed out: reload the page to sign in again";
    }
    try {
      const body = await response.json();
      if (body && typeof body.error === "string") return body.error;
    } catch (_) { /* not JSON */ }
    return "the server answered " + response.status;
  }

  // --- Output -----------------------------------------------------------------------
  const logs = document.getElementById("app-logs");
  const logState = document.getElementById("log-state");
  const containerChoice = document.getElementById("log-container");
  const tailChoice = document.getElementById("log-tail");
  // Told the engine names of the containers running now (by the use graphs' polls): when
  // they are not those of the choice, the output follows on (set below while it follows).
  let containersSeen = () => {};
  if (logs && logs.dataset.stream) {
    const RECHECK_MS = 5000;
    // Each open stream with the containers (as their lines show them) it follows.
    const streams = new Map();
    let followed = new Set();
    let generation = 0; // a new start (the user's choice, a retry) makes older answers moot
    let failures = 0;
    let retry = null;
    let recheck = null;
    let checking = null;
    let lines = 0;
    // Containers whose stream just ended: the engine may list one as running for a
    // moment after its output ends, so it is not followed again until a later check
    // (one that restarted is, then).
    const justEnded = new Set();

    const stuckToBottom = () => logs.scrollHeight - logs.scrollTop - logs.clientHeight < 40;
    const say = (text) => { logState.textContent = text; };
    const choices = () => [...containerChoice.options].filter((o) => o.value);

    function address(names) {
      const query = new URLSearchParams({ tail: tailChoice.value });
      if (names.length) query.set("container", names.join(","));
      return logs.dataset.stream + "?" + query;
    }

    function sayFollowing() {
      say(containerChoice.value
        ? "Following " + containerChoice.value + ", from its last " + tailChoice.value + " lines…"
        : "Following every container, from the last " + tailChoice.value + " lines of each…");
    }

    // Lines are added once per frame, all that came meanwhile at once (a tail of
    // thousands does not lay the page out thousands of times); a hidden tab draws no
    // frames, so what waits is bounded too: cut back to the view's size once it holds
    // twice that (not at each line, which would copy the whole view each time).
    let pending = [];
    let frame = null;

    function append(text) {
      pending.push(text);
      if (pending.length > 2 * MAX_LINES) pending = pending.slice(-MAX_LINES);
      if (frame === null) frame = requestAnimationFrame(flush);
    }

    function flush() {
      if (frame !== null) cancelAnimationFrame(frame);
      frame = null;
      const follow = stuckToBottom();
      const batch = document.createDocumentFragment();
      for (const text of pending.slice(-MAX_LINES)) {
        const line = document.createElement("span");
        line.textContent = text + "\n";
        batch.append(line);
      }
      lines += Math.min(pending.length, MAX_LINES);
      pending = [];
      logs.append(batch);
      while (lines > MAX_LINES && logs.firstChild) {
        logs.firstChild.remove();
        lines -= 1;
      }
      if (follow) logs.scrollTop = logs.scrollHeight;
    }

    function stop() {
      generation += 1;
      for (const source of streams.keys()) source.close();
      streams.clear();
      followed = new Set();
      clearTimeout(retry);
      clearTimeout(recheck);
      if (frame !== null) cancelAnimationFrame(frame);
      frame = null;
      pending = [];
    }

    // A stream closed: its containers are followed no more.
    function forget(source) {
      source.close();
      streams.delete(source);
      followed = new Set([...streams.values()].flat());
    }

    // Opens a stream of the containers `names` (none: every one running), whose lines
    // join the view.
    function open(names) {
      const url = address(names);
      const source = new EventSource(url);
      const mine = generation;
      streams.set(source, names.length ? names : choices().map((o) => o.value));
      for (const name of streams.get(source)) followed.add(name);
      source.addEventListener("open", () => { failures = 0; });
      source.addEventListener("log", (event) => append(event.data));
      source.addEventListener("end", () => {
        flush(); // the last lines before the end are shown
        const gone = streams.get(source) || [];
        forget(source);
        for (const name of gone) justEnded.add(name);
        setTimeout(() => {
          for (const name of gone) justEnded.delete(name);
        }, RECHECK_MS - 100);
        check(); // a new deployment's containers, or none
      });
      source.addEventListener("error", () => { if (mine === generation) failed(source, url); });
    }

    // The choice of containers as they run now: the user's one kept while it runs, else
    // every container.
    function setChoices(list) {
      const chosen = containerChoice.value;
      const all = document.createElement("option");
      all.value = "";
      all.textContent = list.length === 1 ? "Its one container" : "All " + list.length + " containers";
      const options = list.map((c) => {
        const option = document.createElement("option");
        option.value = c.shown;
        option.dataset.name = c.name;
        option.textContent = c.shown + " (" + c.kind + ")";
        return option;
      });
      containerChoice.replaceChildren(all, ...options);
      containerChoice.value = list.some((c) => c.shown === chosen) ? chosen : "";
    }

    // Asks which containers run now, refreshes the choice, and follows on to those of
    // the choice not followed yet (a new deployment's), after a line saying so. One
    // check at a time; while nothing runs, it checks again a little later.
    function check() {
      if (!checking) checking = checkNow().finally(() => { checking = null; });
      return checking;
    }

    async function checkNow() {
      clearTimeout(recheck);
      const mine = generation;
      let list = null;
      let problem = null;
      let final = false;
      try {
        const response = await fetch(logs.dataset.containers, {
          credentials: "same-origin", headers: { Accept: "application/json" },
        });
        const type = response.headers.get("content-type") || "";
        if (response.ok && !response.redirected && type.startsWith("application/json")) {
          list = await response.json();
        } else {
          problem = await refusal(response);
          final = response.redirected || response.status < 500;
        }
      } catch (_) {
        problem = "the server did not answer";
      }
      if (mine !== generation) return;
      if (list === null) {
        if (!streams.size) say("Not following: " + problem + ".");
        if (!final) recheck = setTimeout(check, RECHECK_MS);
        return;
      }
      setChoices(list);
      const wanted = containerChoice.value ? [containerChoice.value] : list.map((c) => c.shown);
      const fresh = wanted.filter((name) => !followed.has(name) && !justEnded.has(name));
      if (fresh.length) {
        const from = new Set(list.filter((c) => fresh.includes(c.shown) && c.deployment)
          .map((c) => "#" + c.deployment));
        append("— now following " + (from.size
          ? "deployment " + [...from].join(", ") + "'s containers"
          : fresh.join(", ")) + " —");
        open(fresh);
        sayFollowing();
      }
      const stopping = wanted.some((name) => justEnded.has(name));
      if (!streams.size && !stopping) {
        say("Nothing of this app runs now: its output shows here once it runs again.");
      }
      if (!streams.size || stopping) {
        recheck = setTimeout(check, RECHECK_MS);
      }
    }

    containersSeen = (names) => {
      const shown = new Set(choices().map((o) => o.dataset.name));
      if (names.length !== shown.size || names.some((name) => !shown.has(name))) check();
    };

    // A stream failed: say why when the server refused it (the same address read once
    // with fetch, which shows the status and message EventSource hides). A container
    // that stopped meanwhile is a change of containers; anything else is tried again a
    // little later unless the refusal is final.
    async function failed(source, url) {
      const mine = generation;
      forget(source);
      let reason = "the connection was lost";
      let status = 0;
      let redirected = false;
      try {
        const controller = new AbortController();
        const response = await fetch(url, { credentials: "same-origin", signal: controller.signal });
        if (response.ok && !response.redirected) {
          controller.abort();
        } else {
          reason = await refusal(response);
          ({ status, redirected } = response);
        }
      } catch (_) { /* the server is unreachable: try again later */ }
      if (mine !== generation) return;
      if (!redirected && (status === 404 || status === 409) && failures < RETRY_MS.length) {
        failures += 1;
        check();
        return;
      }
      stop();
      if (redirected || (status >= 400 && status < 500)) {
        say("Not following: " + reason + ".");
        return;
      }
      const wait = RETRY_MS[Math.min(failures, RETRY_MS.length - 1)];
      failures += 1;
      say("Not following: " + reason + "; trying again in " + Math.round(wait / 1000) + " s.");
      retry = setTimeout(follow, wait);
    }

    // (Re)starts following what the controls say, from an empty view: the tail arrives
    // first, then the new lines.
    function follow() {
      stop();
      logs.replaceChildren();
      lines = 0;
      sayFollowing();
      open(containerChoice.value ? [containerChoice.value] : []);
    }

    containerChoice.addEventListener("change", follow);
    tailChoice.addEventListener("change", follow);
    window.addEventListener("pagehide", stop);
    window.addEventListener("pageshow", (event) => { if (event.persisted) follow(); });
    follow();
  }

  // --- CPU and memory -----------------------------------------------------------------
  const usage = document.getElementById("usage");
  const usageState = document.getElementById("usage-state");
  if (usage && usage.dataset.source) {
    const EVERY_MS = 4000;
    const PAUSED = "Paused while this tab is hidden.";
    const KEEP = 40; // samples per container: under three minutes at EVERY_MS
    const history = new Map(); // container name -> { samples, figure }
    let timer = null;
    let polling = false;

    // The name a container's output lines carry, from the output's choices.
    const shownName = (name) => {
      for (const option of (containerChoice ? containerChoice.options : [])) {
        if (option.value && option.dataset.name === name) return option.value;
      }
      return name;
    };

    const SVG = "http://www.w3.org/2000/svg";
    const W = 320;
    const H = 90;
    const svgElement = (tag, attributes) => {
      const element = document.createElementNS(SVG, tag);
      for (const [key, value] of Object.entries(attributes)) element.setAttribute(key, value);
      return element;
    };

    function figureFor(name) {
      const figure = document.createElement("figure");
      figure.className = "usage-graph";
      figure.dataset.container = name;
      const caption = document.createElement("figcaption");
      const title = document.createElement("strong");
      title.textContent = shownName(name);
      const cpu = document.createElement("span");
      cpu.className = "cpu-figure";
      const memory = document.createElement("span");
      memory.className = "memory-figure";
      caption.append(title, " ", cpu, " ", memory);
      const svg = svgElement("svg", { viewBox: "0 0 " + W + " " + H, role: "img" });
      figure.append(caption, svg);
      usage.append(figure);
      return figure;
    }

    // One line of points (x by sample, y by value over its scale), with a dot per sample.
    function series(svg, kind, values, scale) {
      const step = W / (KEEP - 1);
      const x0 = W - step * (values.length - 1);
      const point = (value, i) => [x0 + i * step, H - 4 - (H - 8) * Math.min(value / scale, 1)];
      const points = values.map(point);
      svg.append(svgElement("polyline", {
        class: kind, points: points.map((p) => p[0].toFixed(1) + "," + p[1].toFixed(1)).join(" "),
      }));
      for (const [x, y] of points) {
        svg.append(svgElement("circle", { class: kind, cx: x.toFixed(1), cy: y.toFixed(1), r: 2 }));
      }
    }

    function draw(entry) {
      const { samples, figure } = entry;
      const last = samples[samples.length - 1];
      const cpuMax = Math.max(100, ...samples.map((s) => s.cpu));
      const memoryMax = Math.max(...samples.map((s) => s.memory)) * 1.25 || 1;
      const svg = figure.querySelector("svg");
      svg.replaceChildren();
      svg.append(svgElement("line", { class: "axis", x1: 0, y1: H - 4, x2: W, y2: H - 4 }));
      series(svg, "memory", samples.map((s) => s.memory), memoryMax);
      series(svg, "cpu", samples.map((s) => s.cpu), cpuMax);
      const title = svgElement("title", {});
      title.textContent = "CPU (blue, up to " + cpuMax.toFixed(0) + " %) and memory (green, up to "
        + formatSize(memoryMax) + "), one point every " + EVERY_MS / 1000 + " s";
      svg.prepend(title);
      figure.dataset.samples = String(samples.length);
      figure.querySelector("strong").textContent = shownName(figure.dataset.container);
      figure.querySelector(".cpu-figure").textContent = "CPU " + last.cpu.toFixed(1) + " %";
      figure.querySelector(".memory-figure").textContent = "memory " + formatSize(last.memory)
        + (last.limit ? " of " + formatSize(last.limit) : "");
    }

    function record(containers) {
      const seen = new Set();
      for (const c of containers) {
        seen.add(c.container);
        let entry = history.get(c.container);
        if (!entry) {
          entry = { samples: [], figure: figureFor(c.container) };
          history.set(c.container, entry);
        }
        entry.samples.push({ cpu: c.cpu_percent, memory: c.memory_bytes, limit: c.memory_limit_bytes });
        if (entry.samples.length > KEEP) entry.samples.shift();
        draw(entry);
      }
      for (const [name, entry] of history) {
        if (seen.has(name)) continue;
        entry.figure.remove();
        history.delete(name);
      }
    }

    async function poll() {
      clearTimeout(timer);
      if (document.hidden || polling) return;
      polling = true;
      let next = EVERY_MS;
      try {
        const response = await fetch(usage.dataset.source, {
          credentials: "same-origin", headers: { Accept: "application/json" },
        });
        const type = response.headers.get("content-type") || "";
        if (!response.ok || response.redirected || !type.startsWith("application/json")) {
          usageState.textContent = "Not updated: " + (await refusal(response)) + ".";
          next = response.redirected ? null : EVERY_MS * 3;
        } else {
          const containers = await response.json();
          record(containers);
          containersSeen(containers.map((c) => c.container));
          usageState.textContent = containers.length
            ? "Every " + EVERY_MS / 1000 + " s while this tab is shown; last at "
              + new Date().toLocaleTimeString(undefined, { hour12: false }) + "."
            : "Nothing is running now.";
        }
      } catch (_) {
        usageState.textContent = "Not updated: the server did not answer; trying again.";
        next = EVERY_MS * 3;
      } finally {
        polling = false;
      }
      if (next === null) return;
      if (document.hidden) usageState.textContent = PAUSED;
      else timer = setTimeout(poll, next);
    }

    document.addEventListener("visibilitychange", () => {
      if (document.hidden) {
        clearTimeout(timer);
        usageState.textContent = PAUSED;
      } else {
        poll();
      }
    });
    usageState.textContent = "Measuring (the engine samples for about a second)…";
    poll();
  }
}
