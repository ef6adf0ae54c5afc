// The app page's live view of the app running: its output followed as it is written (all
// containers or one, from a tail the user picks) and each container's CPU and memory use
// drawn as a small graph, polled while the tab is visible. Loaded on the app page only,
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
  if (logs && logs.dataset.stream) {
    let source = null;
    let failures = 0;
    let retry = null;
    let lines = 0;

    const stuckToBottom = () => logs.scrollHeight - logs.scrollTop - logs.clientHeight < 40;
    const say = (text) => { logState.textContent = text; };

    function address() {
      const query = new URLSearchParams({ tail: tailChoice.value });
      if (containerChoice.value) query.set("container", containerChoice.value);
      return logs.dataset.stream + "?" + query;
    }

    // Lines are added once per frame, all that came meanwhile at once (a tail of
    // thousands does not lay the page out thousands of times); a hidden tab draws no
    // frames, so what waits is bounded too.
    let pending = [];
    let frame = null;

    function append(text) {
      pending.push(text);
      if (pending.length > MAX_LINES) pending = pending.slice(-MAX_LINES);
      if (frame === null) frame = requestAnimationFrame(flush);
    }

    function flush() {
      frame = null;
      const follow = stuckToBottom();
      const batch = document.createDocumentFragment();
      for (const text of pending) {
        const line = document.createElement("span");
        line.textContent = text + "\n";
        batch.append(line);
      }
      lines += pending.length;
      pending = [];
      logs.append(batch);
      while (lines > MAX_LINES && logs.firstChild) {
        logs.firstChild.remove();
        lines -= 1;
      }
      if (follow) logs.scrollTop = logs.scrollHeight;
    }

    function stop() {
      if (source) source.close();
      source = null;
      clearTimeout(retry);
      if (frame !== null) cancelAnimationFrame(frame);
      frame = null;
      pending = [];
    }

    // The stream failed: say why when the server refused it (the same address read once
    // with fetch, which shows the status and message EventSource hides), and try again
    // a little later unless the refusal is final.
    async function failed(url) {
      stop();
      let reason = "the connection was lost";
      let final = false;
      try {
        const controller = new AbortController();
        const response = await fetch(url, { credentials: "same-origin", signal: controller.signal });
        if (response.ok && !response.redirected) {
          controller.abort();
        } else {
          reason = await refusal(response);
          final = response.status >= 400 && response.status < 500 || response.redirected;
        }
      } catch (_) { /* the server is unreachable: try again later */ }
      if (url !== address()) return; // the user chose something else meanwhile
      if (final) {
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
      const url = address();
      say(containerChoice.value
        ? "Following " + containerChoice.value + ", from its last " + tailChoice.value + " lines…"
        : "Following every container, from the last " + tailChoice.value + " lines of each…");
      source = new EventSource(url);
      source.addEventListener("open", () => { failures = 0; });
      source.addEventListener("log", (event) => append(event.data));
      source.addEventListener("end", () => {
        if (frame !== null) cancelAnimationFrame(frame);
        flush(); // the last lines before the end are shown
        stop();
        say("Every container followed here has stopped: reload the page to follow the ones running now.");
      });
      source.addEventListener("error", () => { failed(url); });
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
    poll();
  }
}
