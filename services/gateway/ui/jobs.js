// Jobs list (paged, filtered by status, live) and the job page (status, player, timeline, cost, logs).
import { ApiError } from "./client.js";
import { bytes, clock, duration, errorBox, h, money, progressBar, statusName, taskOf, terminal, time } from "./dom.js";
import { playOutput } from "./player.js";

const STATUSES = ["QUEUED", "PROVISIONING", "RUNNING", "SUCCEEDED", "FAILED", "CANCELED"];
const PAGE_SIZE = 20;
// At most this many WatchJob streams for one list page; the periodic refresh covers the rest.
const MAX_WATCHES = 10;
const REFRESH_MS = 10_000;

const jobLink = (id) => `#/jobs/${encodeURIComponent(id)}`;

export function jobsPage(api, root, view) {
  let tokens = [""];
  let filter = "";
  let watches = new Map();
  const table = h("tbody", { id: "jobs" });
  const info = h("span", { class: "muted", id: "jobs-info" });
  const error = h("div");
  const select = h("select", { id: "status-filter", "aria-label": "status filter" }, h("option", { value: "" }, "all statuses"), STATUSES.map((st) => h("option", { value: st }, st)));
  const older = h("button", { type: "button", id: "older" }, "Older →");
  const newer = h("button", { type: "button", id: "newer" }, "← Newer");

  const stopWatches = () => {
    for (const c of watches.values()) c.abort();
    watches = new Map();
  };

  const row = (job) => {
    const status = statusName(job.status);
    return h(
      "tr",
      { "data-job-id": job.id, "data-status": status },
      h("td", {}, h("a", { href: jobLink(job.id) }, job.id)),
      h("td", {}, taskOf(job.spec)),
      h("td", {}, h("span", { class: `status ${status}` }, status)),
      h("td", {}, progressBar(job.progress), " ", h("span", { class: "muted" }, `${Math.round(job.progress ?? 0)}%`)),
      h("td", { class: "num" }, job.attemptCount ?? 0),
      h("td", {}, time(job.createTime)),
      h("td", { class: "num" }, job.cost ? money(job.cost.amountMicros) : "—"),
    );
  };

  // One stream per visible unfinished job: status and progress arrive as they happen, with no polling.
  const watch = (job) => {
    if (watches.has(job.id) || watches.size >= MAX_WATCHES) return;
    const ctl = new AbortController();
    view.signal.addEventListener("abort", () => ctl.abort());
    watches.set(job.id, ctl);
    (async () => {
      let current = job;
      for await (const m of api.stream("JobService", "WatchJob", { jobId: job.id, afterSequence: String(job.lastEventSequence ?? 0) }, { signal: ctl.signal })) {
        const e = m.event ?? {};
        current = { ...(e.job ?? current), status: e.status ?? current.status, progress: e.progress ?? current.progress };
        table.querySelector(`tr[data-job-id="${CSS.escape(job.id)}"]`)?.replaceWith(row(current));
      }
    })()
      .catch(() => {})
      .finally(() => watches.delete(job.id));
  };

  const load = async () => {
    try {
      const res = await api.unary("JobService", "ListJobs", { pageSize: PAGE_SIZE, pageToken: tokens.at(-1), statuses: filter ? [`JOB_STATUS_${filter}`] : [] }, { signal: view.signal });
      const jobs = res.jobs ?? [];
      stopWatches();
      table.replaceChildren(...jobs.map(row));
      if (jobs.length === 0) table.append(h("tr", {}, h("td", { colspan: 7, class: "muted" }, "No jobs yet.")));
      for (const j of jobs) if (!terminal(j.status)) watch(j);
      older.disabled = !res.nextPageToken;
      older.dataset.token = res.nextPageToken ?? "";
      newer.disabled = tokens.length === 1;
      info.textContent = `page ${tokens.length} · updated ${new Date().toLocaleTimeString()}`;
      error.replaceChildren();
    } catch (err) {
      if (!view.signal.aborted) error.replaceChildren(errorBox(err));
    }
  };

  select.addEventListener("change", () => {
    filter = select.value;
    tokens = [""];
    void load();
  });
  older.addEventListener("click", () => {
    tokens.push(older.dataset.token);
    void load();
  });
  newer.addEventListener("click", () => {
    tokens.pop();
    void load();
  });
  const refresh = h("button", { type: "button", id: "refresh", onclick: () => void load() }, "Refresh");
  root.replaceChildren(
    h("h1", {}, "Jobs"),
    h("div", { class: "toolbar" }, select, refresh, newer, older, info),
    error,
    h("table", {}, h("thead", {}, h("tr", {}, ["Job", "Task", "Status", "Progress", "Attempts", "Created", "Cost"].map((c) => h("th", {}, c)))), table),
  );
  // A light refresh for new jobs; skipped while the tab is hidden.
  const timer = setInterval(() => document.visibilityState === "visible" && void load(), REFRESH_MS);
  view.signal.addEventListener("abort", () => {
    clearInterval(timer);
    stopWatches();
  });
  void load();
}

export function jobPage(api, root, view, jobId) {
  const title = h("h1", {}, "Job ", h("code", {}, jobId));
  const facts = h("dl", { class: "facts", id: "job-facts" });
  const statusEl = h("span", { id: "job-status", class: "status" }, "…");
  const bar = h("div", { id: "job-progress" });
  const video = h("video", { id: "player", controls: true, muted: true, playsinline: true });
  const playback = h("p", { id: "playback", class: "muted" }, "waiting for output");
  const timeline = h("ol", { class: "timeline", id: "timeline" });
  const logs = h("pre", { class: "logs", id: "logs" });
  const cost = h("div", { id: "cost" }, h("p", { class: "muted" }, "no charges yet"));
  const error = h("div");
  const cancel = h("button", { type: "button", id: "cancel", hidden: true }, "Cancel job");
  let job;
  let finished;
  const jobEnded = new Promise((resolve) => (finished = resolve));

  const log = (line) => {
    logs.append(`${line}\n`);
    logs.scrollTop = logs.scrollHeight;
  };

  const showJob = (j) => {
    job = j;
    const status = statusName(j.status);
    statusEl.textContent = status;
    statusEl.className = `status ${status}`;
    bar.replaceChildren(progressBar(j.progress, true), " ", `${Math.round(j.progress ?? 0)}%`);
    const o = j.output;
    const rows = [
      ["Task", taskOf(j.spec)],
      ["Attempts", j.attemptCount ?? 0],
      ["Created", time(j.createTime)],
      ["Started", time(j.startTime)],
      ["Ended", time(j.endTime)],
      ["Instance", j.instanceId || "—"],
      ["Error", j.error ? `${j.error.code}: ${j.error.message}` : "—"],
      ["Output", o ? `${bytes(o.sizeBytes)} · ${o.width}×${o.height} · ${Number(o.durationSeconds ?? 0).toFixed(1)} s · ${o.codec} (${o.encoder})` : "—"],
      ["Cost", j.cost ? `${money(j.cost.amountMicros)} · ${duration(j.cost.gpuSeconds)} GPU` : "—"],
    ];
    facts.replaceChildren(...rows.flatMap(([k, v]) => [h("dt", {}, k), h("dd", { "data-fact": k.toLowerCase() }, v)]));
    cancel.hidden = terminal(j.status);
  };

  const loadCost = async () => {
    // Billing records the charges shortly after the job ends: ask a few times, then leave it.
    for (let i = 0; i < 20 && !view.signal.aborted; i++) {
      try {
        const c = await api.getJson(`/v1/jobs/${encodeURIComponent(jobId)}/cost`, { signal: view.signal });
        if ((c.lines ?? []).length > 0) {
          cost.replaceChildren(costTable(c));
          return;
        }
      } catch (err) {
        if (view.signal.aborted) return;
        cost.replaceChildren(errorBox(err));
        if (!(err instanceof ApiError) || err.code !== "unavailable") return;
      }
      await new Promise((r) => setTimeout(r, 3000));
    }
  };

  const follow = async () => {
    try {
      showJob((await api.unary("JobService", "GetJob", { jobId }, { signal: view.signal })).job);
    } catch (err) {
      error.replaceChildren(errorBox(err));
      return;
    }
    void playOutput({
      api,
      jobId,
      video,
      codecHint: job.output?.codec ?? "",
      waitFinished: () => jobEnded.then((s) => (s === "SUCCEEDED" ? undefined : Promise.reject(new Error(`the job ended ${s} without an output`)))),
      signal: view.signal,
      report: (t) => (playback.textContent = t),
    }).catch((err) => !view.signal.aborted && (playback.textContent = `no playback: ${err.message}`));
    try {
      // From the first event: the whole history, then live until the job ends.
      for await (const m of api.stream("JobService", "WatchJob", { jobId, afterSequence: "0" }, { signal: view.signal })) {
        const e = m.event ?? {};
        const type = statusName(e.type);
        const status = statusName(e.status);
        log(`${clock(e.time)}  #${e.sequence}  ${type.padEnd(14)} ${status.padEnd(12)} ${Math.round(e.progress ?? 0)}%${e.message ? `  ${e.message}` : ""}`);
        if (type === "STATUS_CHANGED") {
          timeline.append(h("li", { "data-status": status }, h("span", { class: `status ${status}` }, status), " ", h("span", { class: "muted" }, time(e.time)), e.message ? ` — ${e.message}` : ""));
        }
        showJob({ ...(e.job ?? job), status: e.status ?? job.status, progress: e.progress ?? job.progress });
      }
      showJob((await api.unary("JobService", "GetJob", { jobId }, { signal: view.signal })).job);
      if (job.error) log(`error: ${job.error.code}: ${job.error.message}`);
      log(`ended ${statusName(job.status)} after ${job.attemptCount ?? 0} attempt(s)`);
      finished(statusName(job.status));
      void loadCost();
    } catch (err) {
      if (!view.signal.aborted) error.replaceChildren(errorBox(err));
    }
  };

  cancel.addEventListener("click", async () => {
    try {
      showJob((await api.unary("JobService", "CancelJob", { jobId, reason: "canceled from the dashboard" })).job);
    } catch (err) {
      error.replaceChildren(errorBox(err));
    }
  });

  root.replaceChildren(
    h("p", {}, h("a", { href: "#/jobs" }, "← Jobs")),
    title,
    error,
    h("div", { class: "toolbar" }, statusEl, bar, cancel),
    h("div", { class: "grid" }, h("div", { class: "card" }, video, playback), h("div", { class: "card" }, facts)),
    h("div", { class: "grid" }, h("div", {}, h("h2", {}, "Events"), timeline), h("div", {}, h("h2", {}, "Cost"), cost)),
    h("h2", {}, "Logs"),
    h("p", { class: "muted" }, "Every event of the job (status changes and progress), then its error and attempt count."),
    logs,
  );
  void follow();
}

function costTable(c) {
  return h(
    "table",
    { id: "cost-lines" },
    h("thead", {}, h("tr", {}, ["Kind", "Attempt", "GPU", "Seconds", "Price/h", "Charge"].map((x) => h("th", {}, x)))),
    h(
      "tbody",
      {},
      // Each line's note (how it was worked out) goes on a row of its own below it: notes are sentences.
      (c.lines ?? []).flatMap((l) => [
        h(
          "tr",
          { "data-kind": l.kind },
          h("td", {}, l.kind),
          h("td", { class: "num" }, l.attempt ?? 0),
          h("td", {}, l.gpuName || "—"),
          h("td", { class: "num" }, Number(l.seconds ?? 0).toFixed(1)),
          h("td", { class: "num" }, money(l.pricePerHourMicros)),
          h("td", { class: "num" }, money(l.chargeMicros)),
        ),
        ...(l.note ? [h("tr", { class: "note" }, h("td", { class: "muted", colspan: 6 }, l.note))] : []),
      ]),
      h("tr", {}, h("th", { colspan: 5 }, "Total"), h("th", { class: "num", id: "cost-total" }, money(c.totalChargeMicros))),
    ),
  );
}
