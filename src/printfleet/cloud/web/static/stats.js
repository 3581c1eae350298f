// The statistics page (#/stats): ended jobs per printer, submitter or model from
// GET /api/v1/stats, as a table and two bar charts drawn by hand (no library, no build step),
// and the same figures as CSV to download.

import { ApiError, api, authHeaders } from "./api.js";

const SVG = "http://www.w3.org/2000/svg";
const OUTCOMES = ["completed", "failed", "cancelled", "expired", "rejected"];
const DAY_MS = 24 * 3600 * 1000;
const PERIODS = [
  [7, "Last 7 days"],
  [30, "Last 30 days"],
  [90, "Last 90 days"],
  [0, "All time"],
];

function svgEl(name, attributes = {}) {
  const node = document.createElementNS(SVG, name);
  for (const [key, value] of Object.entries(attributes)) node.setAttribute(key, String(value));
  return node;
}

// One horizontal bar per group; `parts` gives each bar's segments as [class, value] pairs.
export function drawBars(svg, groups, parts, unit) {
  const rowHeight = 26;
  const pad = { left: 160, right: 70, top: 8, bottom: 8 };
  const width = 600;
  const height = pad.top + pad.bottom + Math.max(1, groups.length) * rowHeight;
  svg.setAttribute("viewBox", `0 0 ${width} ${height}`);
  svg.replaceChildren();
  svg.dataset.bars = String(groups.length);
  const totals = groups.map((g) => parts(g).reduce((sum, [, v]) => sum + v, 0));
  const top = Math.max(...totals, 0) || 1;
  const scale = (v) => (v / top) * (width - pad.left - pad.right);
  groups.forEach((group, i) => {
    const y = pad.top + i * rowHeight;
    const label = svgEl("text", { x: pad.left - 8, y: y + 17, "text-anchor": "end" });
    label.textContent = group.key.length > 22 ? `${group.key.slice(0, 21)}…` : group.key;
    svg.append(label);
    let x = pad.left;
    for (const [cls, value] of parts(group)) {
      if (value <= 0) continue;
      const bar = svgEl("rect", { x, y: y + 4, width: scale(value), height: rowHeight - 8, class: `bar ${cls}` });
      const title = svgEl("title");
      title.textContent = `${group.key}: ${cls} ${value}`;
      bar.append(title);
      svg.append(bar);
      x += scale(value);
    }
    const total = svgEl("text", { x: x + 6, y: y + 17 });
    total.textContent = `${Number(totals[i].toFixed(2))} ${unit}`;
    svg.append(total);
  });
}

export function statsView(main, { h, toast, setTitle }) {
  const by = h(
    "select",
    { id: "stats-by" },
    ["printer", "user", "model"].map((value) => h("option", { value }, `By ${value}`)),
  );
  const period = h(
    "select",
    { id: "stats-period" },
    PERIODS.map(([days, label]) => h("option", { value: days, selected: days === 30 }, label)),
  );
  const download = h("button", { type: "button", class: "secondary" }, "Download CSV");
  const summary = h("p", { class: "stats-summary" });
  const table = h("table", { class: "stats" });
  const jobsChart = svgEl("svg", { class: "bars", role: "img", "aria-label": "Jobs by outcome" });
  const hoursChart = svgEl("svg", { class: "bars", role: "img", "aria-label": "Print hours" });
  const note = h("p", { class: "note" });
  main.append(
    h("h1", {}, "Statistics"),
    h(
      "div",
      { class: "stats-controls" },
      h("label", { for: "stats-by" }, "Group"),
      by,
      h("label", { for: "stats-period" }, "Period"),
      period,
      download,
    ),
    summary,
    h("h2", {}, "Jobs by outcome"),
    h("p", { class: "legend" }, OUTCOMES.map((o) => h("span", { class: `key ${o}` }, o))),
    jobsChart,
    h("h2", {}, "Print hours"),
    hoursChart,
    h("h2", {}, "Figures"),
    table,
    note,
  );
  setTitle("Statistics");

  function query() {
    const params = new URLSearchParams({ by: by.value });
    const days = Number(period.value);
    if (days) params.set("since", String(Date.now() - days * DAY_MS));
    return params;
  }

  async function update() {
    const stats = await api.get(`/api/v1/stats?${query()}`);
    const money = (v) => `${v.toFixed(2)} ${stats.currency}`;
    const total = stats.total;
    summary.textContent =
      `${total.total_jobs} ended jobs, ${total.print_hours.toFixed(2)} print hours, ` +
      `${total.energy_kwh.toFixed(2)} kWh, ${money(total.cost)}` +
      (total.success_rate === null ? "" : `, ${Math.round(total.success_rate * 100)}% succeeded`);
    drawBars(jobsChart, stats.groups, (g) => OUTCOMES.map((o) => [o, g.jobs[o] || 0]), "jobs");
    drawBars(hoursChart, stats.groups, (g) => [["hours", g.print_hours]], "h");
    const filament = (g) =>
      [
        ...Object.entries(g.filament_g).map(([material, grams]) => `${grams} g ${material}`),
        g.filament_mm ? `${(g.filament_mm / 1000).toFixed(2)} m` : null,
        g.filament_unknown_jobs ? `${g.filament_unknown_jobs} without grams` : null,
      ]
        .filter(Boolean)
        .join(", ") || "—";
    const headings = [stats.by, ...OUTCOMES, "success", "hours", "filament", "kWh", `cost (${stats.currency})`];
    table.replaceChildren(
      h("thead", {}, h("tr", {}, headings.map((text) => h("th", { scope: "col" }, text)))),
      h(
        "tbody",
        {},
        [...stats.groups, total].map((g) =>
          h(
            "tr",
            { dataset: { group: g.key } },
            h("th", { scope: "row" }, g.key),
            OUTCOMES.map((o) => h("td", {}, g.jobs[o] || 0)),
            h("td", {}, g.success_rate === null ? "—" : `${Math.round(g.success_rate * 100)}%`),
            h("td", {}, g.print_hours.toFixed(2)),
            h("td", {}, filament(g)),
            h("td", {}, g.energy_kwh.toFixed(2)),
            h("td", {}, g.cost.toFixed(2)),
          ),
        ),
      ),
    );
    const rates = stats.rates;
    note.textContent =
      `Print hours run from the start sent to the end. Energy: ${rates.power_w} W per printer ` +
      `unless its model has its own, at ${rates.price_per_kwh} ${stats.currency}/kWh. Filament: ` +
      `from the files' slicer metadata, completed jobs only; grams only where it gave them, ` +
      `at ${rates.material_price_per_kg} ${stats.currency}/kg unless the material has its own.`;
  }

  async function saveCsv() {
    const response = await fetch(`/api/v1/stats?${query()}`, {
      headers: { ...authHeaders(), Accept: "text/csv" },
    });
    if (!response.ok) throw new ApiError(response.status, null, `${response.status} ${response.statusText}`);
    const link = h("a", { href: URL.createObjectURL(await response.blob()), download: "printfleet-stats.csv" });
    link.click();
    URL.revokeObjectURL(link.href);
  }

  const refill = () => update().catch((failure) => toast(failure.message, true));
  by.addEventListener("change", refill);
  period.addEventListener("change", refill);
  download.addEventListener("click", () => saveCsv().catch((failure) => toast(failure.message, true)));
  refill();
  // Ended jobs change slowly: the page refills when asked, not on every live event.
  return { update: () => {} };
}
