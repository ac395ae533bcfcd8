// DOM and formatting helpers. Text always goes in as text (never HTML), so API data cannot inject markup.

export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  setAttrs(el, attrs);
  for (const c of children.flat()) if (c !== null && c !== undefined && c !== false) el.append(c instanceof Node ? c : String(c));
  return el;
}

const SVG_NS = "http://www.w3.org/2000/svg";
export function s(tag, attrs = {}, ...children) {
  const el = document.createElementNS(SVG_NS, tag);
  setAttrs(el, attrs);
  for (const c of children.flat()) if (c !== null && c !== undefined) el.append(c instanceof Node ? c : String(c));
  return el;
}

function setAttrs(el, attrs) {
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith("on") && typeof v === "function") el.addEventListener(k.slice(2), v);
    else el.setAttribute(k, v === true ? "" : String(v));
  }
}

/** "JOB_STATUS_SUCCEEDED" → "SUCCEEDED". */
export const statusName = (s) => String(s ?? "").replace(/^(JOB_STATUS_|INSTANCE_STATE_|JOB_EVENT_TYPE_)/, "") || "UNSPECIFIED";
export const terminal = (s) => ["SUCCEEDED", "FAILED", "CANCELED"].includes(statusName(s));

/** Micro-dollars (number or int64 string) as dollars; small amounts keep their digits (down to one micro-dollar). */
export function money(micros) {
  const usd = Number(micros ?? 0) / 1e6;
  const abs = Math.abs(usd);
  return `$${usd === 0 || abs >= 1 ? usd.toFixed(2) : abs >= 0.01 ? usd.toFixed(4) : usd.toFixed(6)}`;
}

export function bytes(n) {
  const v = Number(n ?? 0);
  if (v < 1024) return `${v} B`;
  if (v < 1024 ** 2) return `${(v / 1024).toFixed(1)} KiB`;
  if (v < 1024 ** 3) return `${(v / 1024 ** 2).toFixed(1)} MiB`;
  return `${(v / 1024 ** 3).toFixed(2)} GiB`;
}

export function duration(seconds) {
  const v = Math.max(0, Math.round(Number(seconds ?? 0)));
  if (v < 60) return `${v} s`;
  if (v < 3600) return `${Math.floor(v / 60)} min ${v % 60} s`;
  return `${Math.floor(v / 3600)} h ${Math.floor((v % 3600) / 60)} min`;
}

export const time = (iso) => (iso ? new Date(iso).toLocaleString() : "—");
export const clock = (iso) => (iso ? new Date(iso).toLocaleTimeString() : "—");

export function progressBar(pct, wide = false) {
  const v = Math.max(0, Math.min(100, Number(pct ?? 0)));
  const bar = h("span", { class: `bar${wide ? " wide" : ""}`, role: "progressbar", "aria-valuenow": Math.round(v), "aria-valuemin": 0, "aria-valuemax": 100 }, h("span"));
  bar.firstChild.style.width = `${v}%`;
  return bar;
}

export function errorBox(err) {
  return h("p", { class: "error", role: "alert" }, err?.message ?? String(err));
}

/** The task of a JobSpec: the one task field it sets ("caption", "imageToVideo", ...). */
export function taskOf(spec) {
  const tasks = ["caption", "imageToVideo", "addAudio", "comfyWorkflow", "sceneVideo"];
  return tasks.find((k) => spec?.[k]) ?? "—";
}
