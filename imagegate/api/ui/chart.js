// The usage chart: stacked bars per time bucket, one colour per key × model, drawn as SVG
// by hand (no chart library). Colours come from classes in app.css (s0…s7), so they follow
// the theme and no inline style is needed (the CSP allows none).

const SVG = "http://www.w3.org/2000/svg";
const W = 640;
const H = 220;
const PAD = { left: 48, right: 8, top: 8, bottom: 28 };
const SERIES_CLASSES = 8;

function svg(tag, attrs = {}, text) {
  const node = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, String(v));
  if (text !== undefined) node.textContent = text;
  return node;
}

function value(row, metric) {
  return metric === "spend" ? Number(row.spend) : Number(row[metric]);
}

function label(start, step) {
  const d = new Date(start * 1000);
  return step < 86400
    ? `${String(d.getHours()).padStart(2, "0")}:00`
    : `${d.getMonth() + 1}/${d.getDate()}`;
}

// buckets: [[since, until], …]; reports: the /admin/usage answer for each bucket.
export function drawUsageChart(container, buckets, reports, metric, currency) {
  const series = new Map();
  reports.forEach((report, b) => {
    for (const row of report.data) {
      const name = `${row.key_name || row.key_id} · ${row.model || "—"}`;
      if (!series.has(name)) series.set(name, new Array(buckets.length).fill(0));
      series.get(name)[b] += value(row, metric);
    }
  });
  const totals = buckets.map((_, b) => [...series.values()].reduce((s, v) => s + v[b], 0));
  const max = Math.max(...totals, 0);
  const unit = metric === "spend" ? ` ${currency}` : "";
  const chart = svg("svg", {
    viewBox: `0 0 ${W} ${H}`, role: "img", class: "usage-svg",
    "aria-label": `${metric} per ${buckets.length} intervals, largest ${max}${unit}`,
  });
  const plotW = W - PAD.left - PAD.right;
  const plotH = H - PAD.top - PAD.bottom;
  const barW = plotW / buckets.length;
  chart.append(svg("line", { x1: PAD.left, y1: PAD.top + plotH, x2: W - PAD.right, y2: PAD.top + plotH, class: "axis" }));
  chart.append(svg("text", { x: PAD.left - 6, y: PAD.top + 10, class: "tick", "text-anchor": "end" }, String(+max.toFixed(4))));
  chart.append(svg("text", { x: PAD.left - 6, y: PAD.top + plotH, class: "tick", "text-anchor": "end" }, "0"));
  const step = buckets.length ? buckets[0][1] - buckets[0][0] : 3600;
  const every = Math.ceil(buckets.length / 8);
  buckets.forEach(([start], b) => {
    let y = PAD.top + plotH;
    [...series.entries()].forEach(([name, values], s) => {
      const v = values[b];
      if (!v || !max) return;
      const h = (v / max) * plotH;
      y -= h;
      const rect = svg("rect", {
        x: PAD.left + b * barW + 2, y, width: Math.max(barW - 4, 1), height: h,
        class: `bar s${s % SERIES_CLASSES}`, "data-testid": "usage-bar",
      });
      rect.append(svg("title", {}, `${name}: ${+v.toFixed(4)}${unit} (${label(start, step)})`));
      chart.append(rect);
    });
    if (b % every === 0) {
      chart.append(svg("text", { x: PAD.left + b * barW + barW / 2, y: H - 8, class: "tick", "text-anchor": "middle" }, label(start, step)));
    }
  });
  const legend = document.createElement("ul");
  legend.className = "legend";
  [...series.keys()].forEach((name, s) => {
    const item = document.createElement("li");
    const swatch = document.createElement("span");
    swatch.className = `swatch s${s % SERIES_CLASSES}`;
    item.append(swatch, document.createTextNode(name));
    legend.append(item);
  });
  if (!series.size) {
    const none = document.createElement("li");
    none.textContent = "No usage in this range.";
    legend.append(none);
  }
  container.replaceChildren(chart, legend);
}
