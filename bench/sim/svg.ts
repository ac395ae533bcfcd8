// Small line charts as SVG text: one series per policy over the hours of the day. No dependencies.

export interface Series {
  name: string;
  points: Array<[number, number]>;
}

const colours = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e"];

export function lineChart(title: string, xLabel: string, yLabel: string, series: readonly Series[], w = 720, h = 360): string {
  const m = { l: 70, r: 160, t: 36, b: 46 };
  const xs = series.flatMap((s) => s.points.map((p) => p[0]));
  const ys = series.flatMap((s) => s.points.map((p) => p[1]));
  const x0 = Math.min(0, ...xs);
  const x1 = Math.max(1, ...xs);
  const y1 = niceCeil(Math.max(1e-9, ...ys));
  const px = (x: number) => m.l + ((x - x0) / (x1 - x0)) * (w - m.l - m.r);
  const py = (y: number) => h - m.b - (y / y1) * (h - m.t - m.b);
  const out = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${w}" height="${h}" viewBox="0 0 ${w} ${h}" font-family="sans-serif" font-size="12">`,
    `<rect width="${w}" height="${h}" fill="white"/>`,
    `<text x="${w / 2 - m.r / 2}" y="20" text-anchor="middle" font-size="14">${esc(title)}</text>`,
  ];
  for (let k = 0; k <= 5; k++) {
    const y = (y1 * k) / 5;
    out.push(`<line x1="${m.l}" x2="${w - m.r}" y1="${py(y)}" y2="${py(y)}" stroke="#ddd"/>`);
    out.push(`<text x="${m.l - 6}" y="${py(y) + 4}" text-anchor="end">${fmt(y)}</text>`);
  }
  for (let x = Math.ceil(x0); x <= x1; x += Math.max(1, Math.round((x1 - x0) / 12))) {
    out.push(`<text x="${px(x)}" y="${h - m.b + 16}" text-anchor="middle">${x}</text>`);
  }
  out.push(`<line x1="${m.l}" x2="${w - m.r}" y1="${h - m.b}" y2="${h - m.b}" stroke="#333"/>`);
  out.push(`<line x1="${m.l}" x2="${m.l}" y1="${m.t}" y2="${h - m.b}" stroke="#333"/>`);
  out.push(`<text x="${(m.l + w - m.r) / 2}" y="${h - 10}" text-anchor="middle">${esc(xLabel)}</text>`);
  out.push(`<text transform="translate(16 ${(m.t + h - m.b) / 2}) rotate(-90)" text-anchor="middle">${esc(yLabel)}</text>`);
  series.forEach((s, i) => {
    const c = colours[i % colours.length];
    const d = s.points.map(([x, y], k) => `${k ? "L" : "M"}${px(x).toFixed(1)},${py(y).toFixed(1)}`).join("");
    out.push(`<path d="${d}" fill="none" stroke="${c}" stroke-width="2"/>`);
    out.push(`<line x1="${w - m.r + 12}" x2="${w - m.r + 32}" y1="${m.t + 8 + i * 18}" y2="${m.t + 8 + i * 18}" stroke="${c}" stroke-width="3"/>`);
    out.push(`<text x="${w - m.r + 38}" y="${m.t + 12 + i * 18}">${esc(s.name)}</text>`);
  });
  out.push("</svg>");
  return `${out.join("\n")}\n`;
}

function niceCeil(v: number): number {
  const p = 10 ** Math.floor(Math.log10(v));
  for (const f of [1, 2, 2.5, 5, 10]) if (f * p >= v) return f * p;
  return 10 * p;
}

const fmt = (v: number) => (v >= 100 ? v.toFixed(0) : v >= 10 ? v.toFixed(1) : v.toFixed(2));
const esc = (s: string) => s.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;");
