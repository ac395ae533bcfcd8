// The dashboard: a hash router over four pages. The API key is pasted once and kept in sessionStorage (this tab
// only, never in a URL); every call goes to the gateway's own API with it.
import { createClient } from "./client.js";
import { errorBox, h } from "./dom.js";
import { fleetPage, usagePage } from "./fleet.js";
import { jobPage, jobsPage } from "./jobs.js";

const KEY = "framefleet.apiKey";
const api = createClient({ getKey: () => sessionStorage.getItem(KEY) ?? "" });
const main = document.getElementById("main");
const forget = document.getElementById("forget-key");
let current = new AbortController();

function keyForm() {
  const input = h("input", { id: "api-key", type: "password", autocomplete: "off", placeholder: "ff_…", "aria-label": "API key" });
  const form = h(
    "form",
    { class: "key", id: "key-form" },
    h("h1", {}, "Sign in"),
    h("p", { class: "muted" }, "Paste your FrameFleet API key. It stays in this tab (sessionStorage) and is sent only to this gateway."),
    input,
    h("button", { type: "submit" }, "Use key"),
  );
  form.addEventListener("submit", (e) => {
    e.preventDefault();
    const key = input.value.trim();
    if (!key) return;
    sessionStorage.setItem(KEY, key);
    input.value = "";
    if (location.hash === "" || location.hash === "#/") location.hash = "#/jobs";
    else render();
  });
  main.replaceChildren(form);
  input.focus();
}

function render() {
  current.abort();
  current = new AbortController();
  const view = { signal: current.signal };
  const hash = location.hash.replace(/^#/, "") || "/jobs";
  for (const a of document.querySelectorAll("#nav a")) a.classList.toggle("active", hash.startsWith(a.getAttribute("href").slice(1)));
  const hasKey = Boolean(sessionStorage.getItem(KEY));
  forget.hidden = !hasKey;
  if (!hasKey) return keyForm();
  const m = /^\/jobs\/([^/]+)$/.exec(hash);
  try {
    if (m) jobPage(api, main, view, decodeURIComponent(m[1]));
    else if (hash === "/fleet") fleetPage(api, main, view);
    else if (hash === "/usage") usagePage(api, main, view);
    else jobsPage(api, main, view);
  } catch (err) {
    main.replaceChildren(errorBox(err));
  }
}

forget.addEventListener("click", () => {
  sessionStorage.removeItem(KEY);
  render();
});
window.addEventListener("hashchange", render);
render();
