// The app page's certificate badges, asked once the page is shown (GET
// /apps/{app}/certificates), so the page itself never waits on the proxy's ACME store.
// Loaded on the app page only when some domain's certificate is Traefik's to say.
"use strict";
{
  const list = document.getElementById("domains");

  // Sets one domain's badge: its state, words, colour and detail, as text only.
  function show(item, state, label, tone, detail) {
    item.dataset.cert = state;
    const badge = item.querySelector(".badge");
    badge.className = tone ? "badge " + tone : "badge";
    badge.textContent = label;
    item.querySelector(".cert-detail").textContent = detail;
  }

  // Every badge still waiting says why the certificates are unknown.
  function unknown(why) {
    for (const item of list.querySelectorAll("li[data-cert='']")) {
      show(item, "unknown", "certificate unknown", "", "certificate unknown: " + why);
    }
  }

  async function ask() {
    let response;
    try {
      response = await fetch(list.dataset.certificates, {
        headers: { Accept: "application/json" },
        credentials: "same-origin",
      });
    } catch (_) {
      unknown("the panel did not answer");
      return;
    }
    let body = null;
    try { body = await response.json(); } catch (_) { /* not JSON: signed out */ }
    if (!response.ok || !Array.isArray(body)) {
      unknown(body && typeof body.error === "string" ? body.error
        : response.redirected ? "you are signed out: reload the page to sign in again"
        : "the server answered " + response.status);
      return;
    }
    const items = new Map([...list.querySelectorAll("li")].map((li) => [li.dataset.domain, li]));
    for (const c of body) {
      const item = items.get(c.domain);
      if (item) show(item, c.state, c.label, c.badge, c.detail);
    }
    unknown("the proxy did not say");
  }

  if (list && list.dataset.certificates) ask();
}
