// A small SVG line chart of temperatures over the last minutes: measured lines solid, targets
// dashed. Drawn by hand so the dashboard needs no library and no build step.

const SVG = "http://www.w3.org/2000/svg";

function el(name, attributes = {}) {
  const node = document.createElementNS(SVG, name);
  for (const [key, value] of Object.entries(attributes)) node.setAttribute(key, String(value));
  return node;
}

// samples: [{at: ms, hotend, hotendTarget, bed, bedTarget}] oldest first.
export function drawTemperatureChart(svg, samples, windowMs, now = Date.now()) {
  const width = 600;
  const height = 220;
  const pad = { left: 44, right: 12, top: 12, bottom: 28 };
  svg.setAttribute("viewBox", `0 0 ${width} ${height}`);
  svg.replaceChildren();
  const start = now - windowMs;
  const shown = samples.filter((s) => s.at >= start);
  // What is drawn, for tests and for anyone inspecting the page.
  svg.dataset.points = String(shown.length);
  svg.dataset.oldest = shown.length ? String(shown[0].at) : "";
  let top = 50;
  for (const s of shown) top = Math.max(top, s.hotend, s.hotendTarget, s.bed, s.bedTarget);
  top = Math.ceil((top + 10) / 50) * 50;
  const x = (at) => pad.left + ((at - start) / windowMs) * (width - pad.left - pad.right);
  const y = (c) => height - pad.bottom - (c / top) * (height - pad.top - pad.bottom);

  const grid = el("g", { class: "grid" });
  for (let c = 0; c <= top; c += top > 200 ? 100 : 50) {
    grid.append(el("line", { x1: pad.left, x2: width - pad.right, y1: y(c), y2: y(c) }));
    const label = el("text", { x: pad.left - 6, y: y(c) + 4, "text-anchor": "end" });
    label.textContent = `${c}°`;
    grid.append(label);
  }
  const minutes = Math.round(windowMs / 60000);
  for (let m = 0; m <= minutes; m += Math.max(1, Math.round(minutes / 5))) {
    const label = el("text", { x: x(start + m * 60000), y: height - 8, "text-anchor": "middle" });
    label.textContent = m === minutes ? "now" : `-${minutes - m}m`;
    grid.append(label);
  }
  svg.append(grid);

  const series = [
    ["hotend", "hotend"],
    ["hotendTarget", "hotend target"],
    ["bed", "bed"],
    ["bedTarget", "bed target"],
  ];
  for (const [key, cls] of series) {
    if (shown.length === 0) continue;
    const points = shown.map((s) => `${x(s.at).toFixed(1)},${y(s[key]).toFixed(1)}`).join(" ");
    svg.append(el("polyline", { points, class: `series ${cls.replace(" ", "-")}` }));
  }
  if (shown.length === 0) {
    const empty = el("text", { x: width / 2, y: height / 2, "text-anchor": "middle" });
    empty.textContent = "Waiting for the printer's first report…";
    svg.append(empty);
  }
}
