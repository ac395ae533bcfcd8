// Fleet page (operator keys): instances, queue depth and fleet $/hour over time.
import { bars, niceMax, stepPath } from "./chart.js";
import { duration, errorBox, h, money, s, statusName } from "./dom.js";

const REFRESH_MS = 15_000;
const W = 720;
const H = 220;
const PAD = 32;

function priceChart(samples) {
  const points = samples.map((x) => ({ x: x.time, y: x.pricePerHourMicros / 1e6 }));
  const top = niceMax(Math.max(0, ...points.map((p) => p.y)));
  const svg = s("svg", { class: "chart", id: "fleet-chart", viewBox: `0 0 ${W} ${H}`, role: "img", "aria-label": "fleet dollars per hour over time" });
  svg.append(
    s("line", { class: "axis", x1: PAD, y1: H - PAD, x2: W - PAD, y2: H - PAD }),
    s("line", { class: "axis", x1: PAD, y1: PAD, x2: W - PAD, y2: PAD }),
    s("text", { x: 4, y: PAD + 4 }, `$${top}/h`),
    s("text", { x: 4, y: H - PAD + 4 }, "$0"),
  );
  if (points.length === 0) {
    svg.append(s("text", { x: W / 2 - 60, y: H / 2 }, "no samples yet"));
    return svg;
  }
  svg.append(
    s("path", { class: "line", d: stepPath(points, { width: W, height: H, pad: PAD, yMax: top }) }),
    s("text", { x: PAD, y: H - 8 }, new Date(points[0].x).toLocaleTimeString()),
    s("text", { x: W - PAD - 60, y: H - 8 }, new Date(points.at(-1).x).toLocaleTimeString()),
  );
  return svg;
}

export function fleetPage(api, root, view) {
  const status = h("div", { class: "totals", id: "fleet-status" });
  const table = h("tbody", { id: "instances" });
  const chart = h("div", { id: "fleet-chart-box" });
  const error = h("div", { id: "fleet-error" });
  root.replaceChildren(
    h("h1", {}, "Fleet"),
    error,
    status,
    h("h2", {}, "Instances"),
    h("table", {}, h("thead", {}, h("tr", {}, ["Instance", "Provider", "GPU", "State", "Price/h", "Jobs", "Utilisation", "Idle for"].map((c) => h("th", {}, c)))), table),
    h("h2", {}, "Fleet $/hour"),
    h("p", { class: "muted" }, "Sampled by this gateway replica since it started."),
    chart,
  );
  const load = async () => {
    try {
      const [fleet, history] = await Promise.all([api.getJson("/v1/fleet", { signal: view.signal }), api.getJson("/v1/fleet/history", { signal: view.signal })]);
      const now = Date.parse(fleet.serverTime);
      const st = fleet.status ?? {};
      status.replaceChildren(
        ...[
          ["Queued jobs", st.queuedJobs],
          ["Running jobs", st.runningJobs],
          ["Ready", st.instancesReady],
          ["Idle", st.instancesIdle],
          ["Provisioning", st.instancesProvisioning],
          ["Fleet $/hour", money(st.fleetPricePerHourMicros)],
        ].map(([k, v]) => h("div", {}, h("strong", {}, v ?? 0), h("span", { class: "muted" }, k))),
      );
      const instances = fleet.instances ?? [];
      table.replaceChildren(
        ...instances.map((i) => {
          const jobs = (i.jobIds ?? []).length;
          const max = i.maxConcurrentJobs || 1;
          return h(
            "tr",
            { "data-instance-id": i.id },
            h("td", {}, h("code", {}, i.id)),
            h("td", {}, i.provider),
            h("td", {}, `${i.gpuCount ?? 1}× ${i.gpuName || "—"}`),
            h("td", {}, h("span", { class: "status" }, statusName(i.state))),
            h("td", { class: "num" }, money(i.pricePerHourMicros)),
            h("td", { class: "num" }, `${jobs}/${max}`),
            h("td", { class: "num" }, `${Math.round((jobs / max) * 100)}%`),
            h("td", { class: "num" }, i.idleSince ? duration((now - Date.parse(i.idleSince)) / 1000) : "busy"),
          );
        }),
      );
      if (instances.length === 0) table.append(h("tr", {}, h("td", { colspan: 8, class: "muted" }, "No live instances.")));
      chart.replaceChildren(priceChart(history.samples ?? []));
      error.replaceChildren();
    } catch (err) {
      if (!view.signal.aborted) error.replaceChildren(errorBox(err));
    }
  };
  const timer = setInterval(() => document.visibilityState === "visible" && void load(), REFRESH_MS);
  view.signal.addEventListener("abort", () => clearInterval(timer));
  void load();
}

// Usage page: the caller's account, per UTC day.
export function usagePage(api, root, view) {
  const totals = h("div", { class: "totals", id: "usage-totals" });
  const chart = h("div", { id: "usage-chart-box" });
  const error = h("div");
  root.replaceChildren(h("h1", {}, "Usage, last 30 days"), error, totals, chart);
  (async () => {
    try {
      const u = await api.getJson("/v1/usage?days=30", { signal: view.signal });
      totals.replaceChildren(
        h("div", {}, h("strong", { id: "usage-total-charge" }, money(u.totalChargeMicros)), h("span", { class: "muted" }, "charged")),
        h("div", {}, h("strong", {}, duration(u.totalGpuSeconds)), h("span", { class: "muted" }, "GPU time")),
        h("div", {}, h("strong", {}, u.jobCount), h("span", { class: "muted" }, "jobs")),
      );
      const days = u.days ?? [];
      const values = days.map((d) => d.chargeMicros / 1e6);
      const top = niceMax(Math.max(0, ...values));
      const svg = s("svg", { class: "chart", id: "usage-chart", viewBox: `0 0 ${W} ${H}`, role: "img", "aria-label": "charge per day" });
      svg.append(s("line", { class: "axis", x1: PAD, y1: H - PAD, x2: W - PAD, y2: H - PAD }), s("text", { x: 4, y: PAD + 4 }, `$${top}`), s("text", { x: 4, y: H - PAD + 4 }, "$0"));
      bars(values, { width: W, height: H, pad: PAD, yMax: top }).forEach((b, i) => {
        const d = days[i];
        svg.append(s("rect", { class: "day", x: b.x, y: b.y, width: b.width, height: b.height, "data-date": d.date, "data-value": d.chargeMicros }, s("title", {}, `${d.date}: ${money(d.chargeMicros)}, ${d.jobCount} jobs`)));
      });
      if (days.length) {
        svg.append(s("text", { x: PAD, y: H - 8 }, days[0].date), s("text", { x: W - PAD - 70, y: H - 8 }, days.at(-1).date));
      }
      chart.replaceChildren(svg);
      if (u.truncated) chart.append(h("p", { class: "muted" }, "Only the first entries of a very busy period are counted."));
    } catch (err) {
      if (!view.signal.aborted) error.replaceChildren(errorBox(err));
    }
  })();
}
