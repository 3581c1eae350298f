// The printfleet dashboard: one page, views chosen by the URL fragment (#/, #/printers/ID,
// #/jobs, #/pools, #/alerts, #/stats, #/settings). Views build their skeleton once and refill only their live
// parts, so a form being typed in is never wiped by an update.

import { api, session, whenUnauthenticated } from "./api.js";
import { drawTemperatureChart } from "./chart.js";
import { LiveFeed } from "./live.js";
import { poolsView } from "./pools.js";
import { statsView } from "./stats.js";

const CHART_WINDOW_MS = 10 * 60 * 1000;
const POLL_LIVE_MS = 3000;
const POLL_FALLBACK_MS = 1000;
const BASE_TITLE = "printfleet";
const TERMINAL = new Set(["completed", "failed", "cancelled", "rejected", "expired"]);
const WAITING = new Set(["queued", "staged"]);

const state = {
  printers: [],
  alerts: [],
  waiting: [], // jobs waiting to start (queued, staged), for the printers' cards
  samples: new Map(), // printer id -> [{at, hotend, hotendTarget, bed, bedTarget}]
  view: null,
  liveMode: null,
  pageTitle: null, // the view's own part of the document title
};

// ---------------------------------------------------------------------------------------------
// Small helpers.

function h(tag, attributes = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attributes)) {
    if (value === false || value === null || value === undefined) continue;
    if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else if (key === "class") node.className = value;
    else if (key === "dataset") Object.assign(node.dataset, value);
    else if (value === true) node.setAttribute(key, "");
    else node.setAttribute(key, String(value));
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

const degrees = (value) => (value === null || value === undefined ? "–" : `${value.toFixed(1)} °C`);

function duration(seconds) {
  if (seconds === null || seconds === undefined) return "–";
  const s = Math.max(0, Math.round(seconds));
  if (s < 60) return `${s} s`;
  const m = Math.round(s / 60);
  if (m < 60) return `${m} min`;
  return `${Math.floor(m / 60)} h ${m % 60} min`;
}

function age(seconds) {
  if (seconds === null || seconds === undefined) return "never";
  return seconds < 10 ? `${seconds.toFixed(1)} s ago` : `${duration(seconds)} ago`;
}

const clock = (ms) => (ms ? new Date(ms).toLocaleString() : "–");

const PLATE_LABELS = {
  clear: "Clear",
  occupied: "Occupied",
  needs_confirmation: "Needs confirmation",
  unchecked: "Not checked (check off)",
};

function printerState(printer) {
  if (!printer.online) return "offline";
  if (printer.fault) return "error";
  return printer.status || "unknown";
}

const STATE_LABELS = {
  idle: "Idle",
  printing: "Printing",
  paused: "Paused",
  error: "Fault",
  offline: "Offline",
  unknown: "Not reported yet",
};

function badge(kind, text) {
  return h("span", { class: `badge ${kind}` }, text);
}

function toast(message, isError = false) {
  const node = document.getElementById("toast");
  node.textContent = message;
  node.className = isError ? "toast error shown" : "toast shown";
  clearTimeout(toast.timer);
  toast.timer = setTimeout(() => (node.className = "toast"), 5000);
}

// A modal confirmation (native <dialog>: focus stays inside, Escape cancels).
function confirmDialog({ title, text, ok, danger = false }) {
  const dialog = document.getElementById("confirm");
  document.getElementById("confirm-title").textContent = title;
  document.getElementById("confirm-text").textContent = text;
  const button = document.getElementById("confirm-ok");
  button.textContent = ok;
  button.className = danger ? "danger" : "";
  dialog.returnValue = "cancel";
  return new Promise((resolve) => {
    dialog.addEventListener("close", () => resolve(dialog.returnValue === "ok"), { once: true });
    dialog.showModal();
    dialog.querySelector("button[value=cancel]").focus();
  });
}

// Live updates rebuild lists every second or so. Whatever had keyboard focus inside one (a
// printer's link, a job's Cancel button) gets it back in the rebuilt list, found by its row's
// id and its label, so keyboard users are not thrown back to the top of the page.
const ROW_KEYS = ["printerId", "jobId", "alertId", "channelId", "tokenId"];

function replaceKeepingFocus(container, ...children) {
  const active = document.activeElement;
  let key = null;
  if (active && active !== container && container.contains(active)) {
    const row = active.closest("[data-printer-id],[data-job-id],[data-alert-id],[data-channel-id],[data-token-id]");
    const name = row ? ROW_KEYS.find((k) => row.dataset[k] !== undefined) : null;
    key = {
      row: name ? [name, row.dataset[name]] : null,
      tag: active.tagName,
      label: active.getAttribute("aria-label") || active.textContent,
    };
  }
  container.replaceChildren(...children);
  if (!key) return;
  let scope = container;
  if (key.row) {
    const attribute = "data-" + key.row[0].replace(/[A-Z]/g, (c) => "-" + c.toLowerCase());
    scope = container.querySelector(`[${attribute}="${CSS.escape(key.row[1])}"]`);
    if (!scope) return;
  }
  for (const candidate of scope.querySelectorAll(key.tag)) {
    if ((candidate.getAttribute("aria-label") || candidate.textContent) === key.label) {
      candidate.focus({ preventScroll: true });
      return;
    }
  }
}

// Setting the same text again can make screen readers repeat a live region.
function setText(node, text) {
  if (node.textContent !== text) node.textContent = text;
}

async function act(label, action) {
  try {
    await action();
    toast(label);
    scheduleRefresh(0);
  } catch (error) {
    toast(error.message, true);
  }
}

// ---------------------------------------------------------------------------------------------
// Why a job waits, and what releases it. A cloud that says no `wait` shows its reason as before.

function confirmPlate(printer) {
  return confirmDialog({
    title: "Is the plate clear?",
    text: `Confirm only if you know the plate of ${printer.name} is empty: the next print may start on it at once.`,
    ok: "Yes, the plate is clear",
  }).then((ok) =>
    ok ? act("Plate confirmed clear", () => api.post(`/api/v1/printers/${encodeURIComponent(printer.id)}/confirm-plate`)) : null,
  );
}

function simulate(printer, body, label) {
  return act(label, () => api.post(`/api/v1/printers/${encodeURIComponent(printer.id)}/simulate`, body));
}

const escapeRegExp = (text) => text.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");

// The printer a waiting job's reason is about: the one it is pinned or assigned to, else the
// one its reason names (a job for any printer of a model or pool waits on a particular one).
function printerOfWait(job) {
  const id = job.assigned_printer || job.printer_id;
  if (id) return state.printers.find((p) => p.id === id) || null;
  const text = (job.wait && job.wait.text) || job.reason || "";
  return (
    state.printers.find((p) =>
      [p.id, p.name].some((word) => new RegExp(`(^|[^\\w-])${escapeRegExp(word)}($|[^\\w-])`).test(text)),
    ) || null
  );
}

// The wait's sentence, styled by its code, and the control that releases it where one exists.
function waitInfo(job) {
  const wait = job.wait;
  if (!wait || !wait.code) return job.reason ? [job.reason] : [];
  const expired = job.state === "expired";
  const nodes = [h("span", { class: `wait ${wait.code}`, dataset: { wait: wait.code } }, expired ? job.reason || wait.text : wait.text)];
  if (expired || !WAITING.has(job.state)) return nodes;
  const printer = printerOfWait(job);
  const name = printer ? printer.name : "the printer";
  const operator = printer !== null && printer.role !== "viewer";
  const release = (...children) => nodes.push(h("span", { class: "release" }, ...children));
  if (wait.code === "plate_unconfirmed" && operator) {
    release(
      h("button", { type: "button", class: "small", "aria-label": `Confirm plate clear on ${name}`, onclick: () => confirmPlate(printer) }, "Confirm plate clear"),
    );
  } else if (wait.code === "plate_occupied") {
    release(
      `Remove the print from ${name}`,
      operator && printer.simulated
        ? h(
            "button",
            {
              type: "button",
              class: "small secondary",
              "aria-label": `Take the print off ${name} (simulated)`,
              onclick: () => simulate(printer, { action: "remove_print" }, "Print taken off (simulated)"),
            },
            "Take the print off (simulated)",
          )
        : null,
    );
  } else if (wait.code === "settings_pending") {
    release(`Nothing to press: it waits for ${name} to apply its settings`);
  } else if (wait.code === "material_mismatch") {
    release(
      printer
        ? h("a", { href: `#/printers/${encodeURIComponent(printer.id)}/materials` }, `Materials of ${name}`)
        : h("a", { href: "#/" }, "Materials in the fleet"),
    );
  } else if (wait.code === "heat_up_slot") {
    const cap = wait.text.match(/(\d+) of (\d+)/);
    if (cap) release(badge("info cap", `Heat-up cap: ${cap[1]} of ${cap[2]} heating`));
  }
  return nodes;
}

// ---------------------------------------------------------------------------------------------
// Data and live updates.

function recordSample(id, hotend, bed) {
  if (!hotend || !bed) return;
  const list = state.samples.get(id) || [];
  list.push({
    at: Date.now(),
    hotend: hotend.current_c,
    hotendTarget: hotend.target_c,
    bed: bed.current_c,
    bedTarget: bed.target_c,
  });
  const oldest = Date.now() - CHART_WINDOW_MS - 60_000;
  while (list.length && list[0].at < oldest) list.shift();
  state.samples.set(id, list);
}

// A printer page's chart starts with what the cloud stored before the page was opened
// (GET .../telemetry); live samples carry on from there. Stored points older than the first
// live one are put in front; the rest the live samples already cover. A cloud without the
// route (or a failed request) leaves the chart to live samples alone.
async function loadHistory(id) {
  let points;
  try {
    const seconds = CHART_WINDOW_MS / 1000;
    points = await api.get(`/api/v1/printers/${encodeURIComponent(id)}/telemetry?last_s=${seconds}`);
  } catch {
    return;
  }
  const live = state.samples.get(id) || [];
  const firstLive = live.length ? live[0].at : Infinity;
  const stored = points
    .filter((p) => p.at < firstLive)
    .map((p) => ({
      at: p.at,
      hotend: p.hotend.current_c,
      hotendTarget: p.hotend.target_c,
      bed: p.bed.current_c,
      bedTarget: p.bed.target_c,
    }));
  state.samples.set(id, stored.concat(live));
}

// Alerts that need attention: nobody acknowledged them and their condition has not cleared.
const unacked = () => state.alerts.filter((alert) => !alert.acked_at && !alert.resolved_at);
// How long an alert lasted, from its duration_s: "40 s", "2 min", "3 h".
const lasted = (seconds) =>
  seconds < 120 ? `${Math.round(seconds)} s` : seconds < 7200 ? `${Math.round(seconds / 60)} min` : `${Math.round(seconds / 3600)} h`;

async function refreshCore() {
  const [printers, alerts] = await Promise.all([
    api.get("/api/v1/printers"),
    api.get("/api/v1/alerts"),
  ]);
  state.printers = printers;
  state.alerts = alerts;
  for (const printer of printers) {
    if (printer.temperatures) {
      recordSample(printer.id, printer.temperatures.hotend, printer.temperatures.bed);
    }
  }
  showAlertCount();
}

let refreshing = null;
let again = false;
async function refresh() {
  if (!session.token) return;
  if (refreshing) {
    again = true;
    return;
  }
  refreshing = (async () => {
    try {
      await refreshCore();
      if (state.view && state.view.update) await state.view.update();
    } catch (error) {
      if (error.status !== 401) setLiveMode("offline", error.message);
    }
  })();
  await refreshing;
  refreshing = null;
  if (again) {
    again = false;
    scheduleRefresh(0);
  }
}

let refreshTimer = null;
function scheduleRefresh(delay = 50) {
  clearTimeout(refreshTimer);
  refreshTimer = setTimeout(refresh, delay);
}

let pollTimer = null;
function startPolling() {
  clearInterval(pollTimer);
  const period = state.liveMode === "live" ? POLL_LIVE_MS : POLL_FALLBACK_MS;
  pollTimer = setInterval(refresh, period);
}

function setLiveMode(mode, detail) {
  const node = document.getElementById("live-mode");
  const labels = { live: "Live", polling: "Polling", offline: "Cloud unreachable" };
  node.textContent = labels[mode] || mode;
  node.className = `live ${mode}`;
  node.title = detail || (mode === "live" ? "Updates arrive as events" : "Updated every second");
  if (mode !== "offline" && mode !== state.liveMode) {
    state.liveMode = mode;
    startPolling();
  }
}

const feed = new LiveFeed(
  (event) => {
    if (event.event === "printer_telemetry" && event.data && event.data.printer_id) {
      const data = event.data.data || {};
      recordSample(event.data.printer_id, data.hotend, data.bed);
    }
    scheduleRefresh(event.event === "printer_telemetry" ? 500 : 0);
  },
  (mode) => setLiveMode(mode),
);

// The unacknowledged count goes in the title, the nav and the favicon, so a tab in the
// background still says something needs a person.
let faviconDrawn = null;
function showAlertCount() {
  const count = unacked().length;
  const page = state.pageTitle ? `${state.pageTitle} · ${BASE_TITLE}` : BASE_TITLE;
  document.title = count ? `(${count}) ${page}` : page;
  const counter = document.getElementById("alert-count");
  counter.hidden = count === 0;
  counter.textContent = String(count);
  counter.setAttribute("aria-label", `${count} unacknowledged`);
  if (faviconDrawn === count) return;
  faviconDrawn = count;
  const canvas = document.createElement("canvas");
  canvas.width = canvas.height = 64;
  const g = canvas.getContext("2d");
  g.fillStyle = "#1d4ed8";
  g.beginPath();
  g.roundRect(4, 4, 56, 56, 12);
  g.fill();
  g.fillStyle = "#fff";
  g.font = "bold 30px sans-serif";
  g.textAlign = "center";
  g.textBaseline = "middle";
  g.fillText("pf", 32, 34);
  if (count) {
    g.fillStyle = "#b91c1c";
    g.beginPath();
    g.arc(46, 18, 18, 0, Math.PI * 2);
    g.fill();
    g.fillStyle = "#fff";
    g.font = "bold 24px sans-serif";
    g.fillText(count > 9 ? "9+" : String(count), 46, 19);
  }
  const link = document.getElementById("favicon");
  link.type = "image/png";
  link.href = canvas.toDataURL("image/png");
  link.dataset.count = String(count);
}

// ---------------------------------------------------------------------------------------------
// Views.

function loginView(main, next) {
  const error = h("p", { class: "error", role: "alert" });
  const form = h(
    "form",
    { class: "card narrow", "aria-labelledby": "login-title" },
    h("h1", { id: "login-title" }, "Log in to printfleet"),
    h("label", { for: "email" }, "E-mail"),
    h("input", { id: "email", name: "email", type: "email", autocomplete: "username", required: true }),
    h("label", { for: "password" }, "Password"),
    h("input", {
      id: "password",
      name: "password",
      type: "password",
      autocomplete: "current-password",
      required: true,
    }),
    error,
    h("button", { type: "submit" }, "Log in"),
  );
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    error.textContent = "";
    try {
      await api.login(form.email.value.trim(), form.password.value);
      location.hash = next && next !== "#/login" ? next : "#/";
      await start();
    } catch (failure) {
      error.textContent = failure.message;
    }
  });
  main.append(form);
  form.email.focus();
  return {};
}

function fleetView(main) {
  const stateFilter = h(
    "select",
    { id: "filter-state" },
    h("option", { value: "" }, "All"),
    Object.entries(STATE_LABELS)
      .filter(([key]) => key !== "unknown")
      .map(([key, label]) => h("option", { value: key }, label)),
  );
  const modelFilter = h("select", { id: "filter-model" }, h("option", { value: "" }, "All"));
  const sort = h(
    "select",
    { id: "sort" },
    h("option", { value: "name" }, "Name"),
    h("option", { value: "state" }, "State"),
    h("option", { value: "model" }, "Model"),
    h("option", { value: "time_left" }, "Time left"),
  );
  const list = h("ul", { class: "fleet", "aria-label": "Printers" });
  const summary = h("p", { class: "summary", "aria-live": "polite" });
  main.append(
    h("h1", {}, "Fleet"),
    h(
      "div",
      { class: "controls" },
      h("div", {}, h("label", { for: "filter-state" }, "State"), stateFilter),
      h("div", {}, h("label", { for: "filter-model" }, "Model"), modelFilter),
      h("div", {}, h("label", { for: "sort" }, "Sort by"), sort),
    ),
    summary,
    list,
  );
  for (const control of [stateFilter, modelFilter, sort]) {
    control.addEventListener("change", () => update());
  }

  let waitingFetched = 0;
  async function update() {
    if (Date.now() - waitingFetched > 2000) {
      waitingFetched = Date.now();
      try {
        state.waiting = await api.get("/api/v1/jobs?state=queued&state=staged&limit=200");
      } catch {
        state.waiting = []; // the cards then show no waiting jobs; the printers still show
      }
    }
    const models = [...new Set(state.printers.map((p) => p.model))].sort();
    const chosenModel = modelFilter.value;
    if (modelFilter.options.length !== models.length + 1) {
      modelFilter.replaceChildren(
        h("option", { value: "" }, "All"),
        models.map((m) => h("option", { value: m }, m)),
      );
      modelFilter.value = models.includes(chosenModel) ? chosenModel : "";
    }
    let printers = state.printers.filter(
      (p) =>
        (!stateFilter.value || printerState(p) === stateFilter.value) &&
        (!modelFilter.value || p.model === modelFilter.value),
    );
    const key = sort.value;
    const timeLeft = (p) => (p.progress ? p.progress.time_left_s : Infinity);
    printers = printers.sort((a, b) => {
      if (key === "state") return printerState(a).localeCompare(printerState(b));
      if (key === "model") return a.model.localeCompare(b.model) || a.name.localeCompare(b.name);
      if (key === "time_left") return timeLeft(a) - timeLeft(b);
      return a.name.localeCompare(b.name);
    });
    setText(summary, `${printers.length} of ${state.printers.length} printers`);
    const alertsBy = new Map();
    for (const alert of unacked()) alertsBy.set(alert.printer_id, (alertsBy.get(alert.printer_id) || 0) + 1);
    const waitingBy = new Map();
    for (const job of state.waiting) {
      const printer = printerOfWait(job);
      if (printer) waitingBy.set(printer.id, [...(waitingBy.get(printer.id) || []), job]);
    }
    replaceKeepingFocus(list, ...printers.map((p) => printerCard(p, alertsBy.get(p.id) || 0, waitingBy.get(p.id) || [])));
    if (state.printers.length === 0) {
      list.append(h("li", { class: "empty" }, "No printers yet: provision one with the API or `printfleet demo`."));
    }
  }
  update();
  return { update };
}

function heaterText(heater) {
  return heater ? `${degrees(heater.current_c)} / ${degrees(heater.target_c)}` : "–";
}

const CARD_WAITS = 3;

// A part of the printer reached its service interval (its reminder is not resolved yet).
const serviceDue = (printerId) =>
  state.alerts.some((a) => a.printer_id === printerId && a.kind === "maintenance_due" && !a.resolved_at);

// The jobs waiting for a printer, each with why and what releases it (on its card).
function cardWaits(p, waiting) {
  if (waiting.length === 0) return null;
  const more = waiting.length - CARD_WAITS;
  return h(
    "ul",
    { class: "waits", "aria-label": `Jobs waiting for ${p.name}` },
    waiting.slice(0, CARD_WAITS).map((j) => h("li", { dataset: { jobId: j.id } }, h("strong", {}, j.name), ": ", waitInfo(j))),
    more > 0 ? h("li", {}, h("a", { href: "#/jobs" }, `${more} more waiting`)) : null,
  );
}

function printerCard(p, alertCount, waiting) {
  const st = printerState(p);
  const progress = p.progress;
  return h(
    "li",
    { class: `printer ${st}`, dataset: { printerId: p.id, state: st } },
    h(
      "article",
      { "aria-labelledby": `printer-${p.id}` },
      h(
        "header",
        {},
        h("h2", { id: `printer-${p.id}` }, h("a", { href: `#/printers/${encodeURIComponent(p.id)}` }, p.name)),
        badge(`state ${st}`, STATE_LABELS[st] || st),
        alertCount ? badge("alert", `${alertCount} alert${alertCount > 1 ? "s" : ""}`) : null,
        serviceDue(p.id) ? badge("warning due", "Service due") : null,
        p.simulated ? badge("simulated", "Simulated") : null,
      ),
      h(
        "dl",
        {},
        h("dt", {}, "Model"),
        h("dd", { dataset: { field: "model" } }, `${p.model} · ${p.id}`),
        h("dt", {}, "Hotend"),
        h("dd", { dataset: { field: "hotend" } }, heaterText(p.temperatures && p.temperatures.hotend)),
        h("dt", {}, "Bed"),
        h("dd", { dataset: { field: "bed" } }, heaterText(p.temperatures && p.temperatures.bed)),
        h("dt", {}, "Progress"),
        h(
          "dd",
          { dataset: { field: "progress" } },
          progress
            ? [
                h("progress", { max: 100, value: progress.percent, "aria-label": `${p.name} progress` }),
                ` ${progress.percent}% · ${duration(progress.time_left_s)} left`,
              ]
            : "–",
        ),
        h("dt", {}, "Plate"),
        h("dd", { dataset: { field: "plate" } }, p.plate ? PLATE_LABELS[p.plate] || p.plate : "–"),
        p.materials === undefined
          ? null
          : [
              h("dt", {}, "Materials"),
              h(
                "dd",
                { dataset: { field: "materials" } },
                slotList(p),
                p.role !== "viewer"
                  ? [" ", h("a", { href: `#/printers/${encodeURIComponent(p.id)}/materials`, "aria-describedby": `printer-${p.id}` }, "Change materials")]
                  : null,
              ),
              h("dt", {}, "Nozzle"),
              h("dd", { dataset: { field: "nozzle" } }, nozzleText(p.nozzle_um)),
            ],
        h("dt", {}, "Evidence"),
        h(
          "dd",
          { dataset: { field: "evidence" } },
          `report ${age(p.report_age_s)} · link ${age(p.link_evidence_age_s)}`,
        ),
      ),
      cardWaits(p, waiting),
    ),
  );
}

// ---------------------------------------------------------------------------------------------
// Materials: what each slot of a printer holds and its nozzle, as the printer last reported.

const MATERIAL_PATTERN = /^[A-Z0-9][A-Z0-9+-]*$/;
const MATERIAL_HINT = "Upper case letters, digits, + and -, up to 16 characters, e.g. PLA, PETG or PA-CF.";

const nozzleText = (um) => (um === null || um === undefined ? "–" : `${um / 1000} mm`);

// A material as typed: upper-cased, then checked as the API checks it. Returns [value, error].
function parseMaterial(text) {
  const value = text.trim().toUpperCase();
  if (!value) return [null, "Write the material, e.g. PLA. To empty the slot, use its Empty button."];
  if (value.length > 16 || !MATERIAL_PATTERN.test(value)) return [null, `“${text.trim()}” is not a material name: ${MATERIAL_HINT}`];
  return [value, null];
}

function swatch(colour) {
  return h("span", { class: "swatch", style: colour ? `background: ${colour}` : null, "aria-hidden": "true" });
}

function slotList(p) {
  const slots = [...(p.materials || [])].sort((a, b) => a.slot - b.slot);
  if (slots.length === 0) return h("span", { class: "muted" }, "none reported");
  return h(
    "ul",
    { class: "slots", "aria-label": `Material slots of ${p.name}` },
    slots.map((m) =>
      h(
        "li",
        { dataset: { slot: m.slot } },
        swatch(m.colour),
        h("span", { class: "slot-number" }, `${m.slot}`),
        " ",
        m.material,
        m.colour ? h("span", { class: "visually-hidden" }, ` (colour ${m.colour})`) : null,
      ),
    ),
  );
}

// The printer page's materials part: the slots and nozzle, and forms that ask the printer to
// change them (PUT .../materials/{slot}, PUT .../nozzle). The printer applies a change and
// reports again, so the lists show it once it is done.
function materialsSection(printerId) {
  const path = `/api/v1/printers/${encodeURIComponent(printerId)}`;
  const slots = h("div", { class: "slot-list" });
  const nozzleNow = h("p", { class: "nozzle-now" });
  const slotNumber = h("input", { id: "slot-number", type: "number", min: 1, max: 16, step: 1, value: 1, required: true });
  const material = h("input", { id: "slot-material", type: "text", maxlength: 16, autocomplete: "off", "aria-describedby": "slot-material-hint", placeholder: "PLA" });
  const colour = h("input", { id: "slot-colour", type: "color", value: "#ffffff" });
  const slotError = h("p", { class: "error", role: "alert", id: "slot-error" });
  const slotSent = h("p", { class: "muted", role: "status", id: "slot-sent" });
  const slotForm = h(
    "form",
    { class: "card", "aria-labelledby": "slot-form-title", novalidate: true },
    h("h3", { id: "slot-form-title" }, "Change a slot"),
    h("label", { for: "slot-number" }, "Slot"),
    slotNumber,
    h("label", { for: "slot-material" }, "Material"),
    material,
    h("p", { class: "muted hint", id: "slot-material-hint" }, MATERIAL_HINT),
    h("label", { for: "slot-colour" }, "Colour"),
    colour,
    slotError,
    h("button", { type: "submit" }, "Save slot"),
    slotSent,
  );
  const nozzle = h("input", { id: "nozzle-mm", type: "number", min: 0.1, max: 2, step: 0.05, required: true });
  const nozzleError = h("p", { class: "error", role: "alert", id: "nozzle-error" });
  const nozzleSent = h("p", { class: "muted", role: "status", id: "nozzle-sent" });
  const nozzleForm = h(
    "form",
    { class: "card", "aria-labelledby": "nozzle-form-title", novalidate: true },
    h("h3", { id: "nozzle-form-title" }, "Change the nozzle"),
    h("label", { for: "nozzle-mm" }, "Nozzle diameter (mm)"),
    nozzle,
    nozzleError,
    h("button", { type: "submit" }, "Save nozzle"),
    nozzleSent,
  );
  const node = h(
    "section",
    { "aria-labelledby": "materials-title", hidden: true },
    h("h2", { id: "materials-title" }, "Materials"),
    slots,
    nozzleNow,
    h("div", { class: "forms" }, slotForm, nozzleForm),
  );
  let printer = null;
  let prefilled = false;

  function prefill() {
    const current = printer && (printer.materials || []).find((m) => m.slot === Number(slotNumber.value));
    material.value = current ? current.material : "";
    colour.value = current && current.colour ? current.colour : "#ffffff";
  }
  // As the number changes (not on leaving the field, which would overwrite what was typed next).
  slotNumber.addEventListener("input", prefill);

  async function send(error, sent, call) {
    error.textContent = "";
    sent.textContent = "";
    try {
      await call();
      sent.textContent = `Sent to ${printer ? printer.name : printerId}: shown here once the printer applies it.`;
      scheduleRefresh(0);
    } catch (failure) {
      error.textContent = failure.message;
    }
  }

  slotForm.addEventListener("submit", (event) => {
    event.preventDefault();
    const slot = Number(slotNumber.value);
    const [value, problem] = parseMaterial(material.value);
    slotError.textContent = "";
    if (!Number.isInteger(slot) || slot < 1 || slot > 16) {
      slotError.textContent = "A slot is a number from 1 to 16.";
      slotNumber.focus();
      return;
    }
    material.setAttribute("aria-invalid", problem ? "true" : "false");
    if (problem) {
      slotError.textContent = problem;
      material.focus();
      return;
    }
    material.value = value;
    send(slotError, slotSent, () => api.put(`${path}/materials/${slot}`, { material: value, colour: colour.value }));
  });
  nozzleForm.addEventListener("submit", (event) => {
    event.preventDefault();
    const um = Math.round(Number(nozzle.value) * 1000);
    nozzleError.textContent = "";
    if (!nozzle.value || !Number.isFinite(um) || um < 100 || um > 2000) {
      nozzleError.textContent = `“${nozzle.value}” is not a nozzle diameter: write 0.1 to 2 mm, e.g. 0.4.`;
      nozzle.focus();
      return;
    }
    send(nozzleError, nozzleSent, () => api.put(`${path}/nozzle`, { nozzle_um: um }));
  });

  function emptySlot(slot) {
    return act(`Slot ${slot} emptying sent`, () => api.put(`${path}/materials/${slot}`, { material: null, colour: null }));
  }

  function update(next) {
    printer = next;
    // An older cloud says nothing of materials: the part stays hidden.
    node.hidden = printer.materials === undefined;
    if (node.hidden) return;
    const operator = printer.role !== "viewer";
    slotForm.hidden = nozzleForm.hidden = !operator;
    const list = slotList(printer);
    if (operator && list.tagName === "UL") {
      for (const item of list.children) {
        const slot = Number(item.dataset.slot);
        item.append(" ", h("button", { type: "button", class: "small secondary", "aria-label": `Empty slot ${slot}`, onclick: () => emptySlot(slot) }, "Empty"));
      }
    }
    replaceKeepingFocus(slots, list);
    setText(nozzleNow, `Nozzle: ${nozzleText(printer.nozzle_um)}`);
    if (!prefilled) {
      prefilled = true;
      prefill();
      if (printer.nozzle_um) nozzle.value = String(printer.nozzle_um / 1000);
    }
  }
  return { node, update };
}

// ---------------------------------------------------------------------------------------------
// Maintenance: each part's print hours since its service, and marking it serviced.

const PART_LABELS = { nozzle: "Nozzle", belts: "Belts" };

function maintenanceSection(printerId) {
  const path = `/api/v1/printers/${encodeURIComponent(printerId)}/maintenance`;
  const rows = h("tbody");
  const part = h("select", { id: "interval-part" });
  const hours = h("input", { id: "interval-hours", type: "number", min: 1, step: "any", required: true });
  const intervalError = h("p", { class: "error", role: "alert", id: "interval-error" });
  const intervalForm = h(
    "form",
    { class: "card", "aria-labelledby": "interval-title", novalidate: true },
    h("h3", { id: "interval-title" }, "Change a service interval"),
    h("label", { for: "interval-part" }, "Part"),
    part,
    h("label", { for: "interval-hours" }, "Every (print hours)"),
    hours,
    intervalError,
    h("button", { type: "submit" }, "Save interval"),
  );
  const node = h(
    "section",
    { "aria-labelledby": "maintenance-title", hidden: true },
    h("h2", { id: "maintenance-title" }, "Maintenance"),
    h(
      "div",
      { class: "scroll" },
      h(
        "table",
        { class: "maintenance" },
        h("thead", {}, h("tr", {}, ["Part", "Every", "Since service", "Status", "Serviced", ""].map((c) => h("th", { scope: "col" }, c)))),
        rows,
      ),
    ),
    intervalForm,
  );
  let fetched = 0;
  let parts = [];
  let printer = null;

  intervalForm.addEventListener("submit", async (event) => {
    event.preventDefault();
    intervalError.textContent = "";
    const value = Number(hours.value);
    if (!hours.value || !Number.isFinite(value) || value <= 0) {
      intervalError.textContent = `“${hours.value}” is not a number of print hours, e.g. 300.`;
      hours.focus();
      return;
    }
    try {
      await api.put(`${path}/${encodeURIComponent(part.value)}`, { interval_h: value });
      toast(`${PART_LABELS[part.value] || part.value}: every ${value} h`);
      fetched = 0;
      scheduleRefresh(0);
    } catch (failure) {
      intervalError.textContent = failure.message;
    }
  });

  function serviced(name) {
    return act(`${PART_LABELS[name] || name} marked serviced`, async () => {
      await api.post(`${path}/${encodeURIComponent(name)}/serviced`);
      fetched = 0;
    });
  }

  async function update(next) {
    printer = next;
    if (Date.now() - fetched > 3000) {
      fetched = Date.now();
      // An older cloud keeps no maintenance (404); any other failure hides it until the next try.
      const answer = await optional(() => api.get(path)).catch(() => null);
      node.hidden = answer === null;
      if (answer === null) return;
      parts = answer;
    }
    const operator = printer.role !== "viewer";
    intervalForm.hidden = printer.role !== "owner";
    fill(part, parts.map((p) => [p.part, PART_LABELS[p.part] || p.part]));
    replaceKeepingFocus(
      rows,
      ...parts.map((p) => {
        const label = PART_LABELS[p.part] || p.part;
        return h(
          "tr",
          { dataset: { part: p.part, due: p.due } },
          h("td", {}, label),
          h("td", {}, `${p.interval_h} h`, p.default_interval ? h("span", { class: "muted" }, " (default)") : null),
          h("td", {}, `${p.hours_since_service.toFixed(1)} h`),
          h("td", {}, p.due ? badge("alert due", "Service due") : badge("completed", "OK")),
          h("td", {}, p.serviced_at ? clock(p.serviced_at) : "never"),
          h(
            "td",
            {},
            operator
              ? h("button", { type: "button", class: "small secondary", "aria-label": `Mark ${label.toLowerCase()} serviced`, onclick: () => serviced(p.part) }, "Mark serviced")
              : null,
          ),
        );
      }),
    );
  }
  return { node, update };
}

// ---------------------------------------------------------------------------------------------
// Simulated printers only: inject a fault (as `printfleet sim --fault` does), clear it, or take
// a finished print off the plate, through POST .../simulate.

const FAULT_KINDS = [
  ["heater-disconnected", "Heater disconnected (no power reaches it)"],
  ["thermistor-detached", "Thermistor detached (reads about room temperature)"],
  ["sensor-open", "Sensor open (reads -15 °C)"],
  ["sensor-short", "Sensor short (reads 999 °C)"],
  ["heater-stuck-on", "Heater stuck on (full power)"],
  ["power-loss", "Power loss"],
];

function simulationSection(printerId) {
  const kind = h("select", { id: "fault-kind" }, FAULT_KINDS.map(([value, label]) => h("option", { value }, label)));
  const heater = h("select", { id: "fault-heater" }, h("option", { value: "hotend" }, "Hotend"), h("option", { value: "bed" }, "Bed"));
  const off = h(
    "select",
    { id: "fault-off" },
    h("option", { value: "30s" }, "30 simulated seconds"),
    h("option", { value: "2m" }, "2 simulated minutes"),
    h("option", { value: "" }, "Until the fault is cleared"),
  );
  const heaterField = h("div", {}, h("label", { for: "fault-heater" }, "Heater"), heater);
  const offField = h("div", { hidden: true }, h("label", { for: "fault-off" }, "Power off for"), off);
  const inject = h("button", { type: "submit", class: "danger" }, "Simulate a fault");
  const clear = h("button", { type: "button", class: "secondary" }, "Clear fault");
  const takeOff = h("button", { type: "button", class: "secondary" }, "Take the print off (simulated)");
  const node = h(
    "section",
    { class: "simulation", "aria-labelledby": "simulation-title", hidden: true },
    h("h2", { id: "simulation-title" }, "Simulation ", badge("simulated", "simulated printer")),
    h("p", { class: "muted" }, "This printer is simulated: what you do here happens to its simulated hardware, as a real fault or a person at the printer would."),
    h(
      "form",
      { class: "card", "aria-label": "Simulate a fault" },
      h("label", { for: "fault-kind" }, "Fault"),
      kind,
      heaterField,
      offField,
      h("div", { class: "actions" }, inject, clear, takeOff),
    ),
  );
  kind.addEventListener("change", () => {
    const power = kind.value === "power-loss";
    heaterField.hidden = power;
    offField.hidden = !power;
  });
  let printer = null;
  const send = (body, label) => simulate(printer || { id: printerId }, body, label);
  node.querySelector("form").addEventListener("submit", async (event) => {
    event.preventDefault();
    const arg = kind.value === "power-loss" ? off.value : heater.value;
    const fault = arg ? `${kind.value}:${arg}` : kind.value;
    const ok = await confirmDialog({
      title: `Simulate ${kind.value} on ${printer ? printer.name : printerId}?`,
      text: "The simulated printer behaves as a real one would: a print running on it fails, and a thermal fault latches until someone clears it.",
      ok: "Simulate the fault",
      danger: true,
    });
    if (ok) await send({ action: "fault", fault }, `Fault ${fault} simulated`);
  });
  clear.addEventListener("click", () => send({ action: "clear_fault" }, "Simulated fault cleared"));
  takeOff.addEventListener("click", () => send({ action: "remove_print" }, "Print taken off (simulated)"));

  function update(next) {
    printer = next;
    // Hidden on real printers (and on clouds that do not say).
    node.hidden = printer.simulated !== true || printer.role === "viewer";
  }
  return { node, update };
}

function screenLines(p, jobName) {
  if (!p.online) return [["muted", "Printer offline: no screen to show."]];
  const lines = [];
  if (p.fault) {
    lines.push(["critical", `THERMAL FAULT: ${p.fault}`]);
    lines.push(["critical", "Heaters are off. Clear the fault once someone has checked the printer."]);
  }
  if (p.status === "printing" || p.status === "paused") {
    const pr = p.progress;
    lines.push(["", `${p.status === "paused" ? "Paused" : "Printing"} ${jobName || p.job_id || ""}`]);
    if (pr) lines.push(["", `${pr.percent}% · layer ${pr.layer}/${pr.total_layers} · ${duration(pr.time_left_s)} left`]);
  } else if (!p.fault) {
    lines.push(["", "Ready"]);
  }
  if (p.plate === "needs_confirmation" && p.status !== "printing") {
    lines.push(["prompt", "Prompt: Is the plate clear? [Yes, it is clear]"]);
  } else if (p.plate === "occupied") {
    lines.push(["warning", "The plate sensor sees something on the plate."]);
  }
  if (p.temperatures) {
    lines.push(["muted", `Nozzle ${heaterText(p.temperatures.hotend)}   Bed ${heaterText(p.temperatures.bed)}`]);
  }
  return lines;
}

function printerView(main, printerId, part) {
  const title = h("h1", {}, printerId);
  const status = h("p", { class: "status-line", "aria-live": "polite" });
  const screen = h("div", { class: "screen", role: "group", "aria-label": "Printer screen" });
  const chart = document.createElementNS("http://www.w3.org/2000/svg", "svg");
  chart.setAttribute("role", "img");
  chart.setAttribute("aria-label", "Hotend and bed temperature over the last 10 minutes");
  chart.classList.add("chart");
  const current = h("p", { class: "temps" });
  const buttons = {
    confirm: h("button", { type: "button" }, "Plate is clear"),
    pause: h("button", { type: "button", class: "secondary" }, "Pause"),
    resume: h("button", { type: "button", class: "secondary" }, "Resume"),
    cancel: h("button", { type: "button", class: "danger" }, "Cancel print"),
    clearFault: h("button", { type: "button", class: "danger" }, "Clear thermal fault"),
  };
  const plateCheck = h("input", { type: "checkbox", id: "plate-check" });
  // The owner's choice is desired state: until the printer reports it, nothing starts there.
  const plateCheckPending = h("span", { id: "plate-check-pending", class: "pending", role: "status" });
  const history = h("tbody");
  const materials = materialsSection(printerId);
  const maintenance = maintenanceSection(printerId);
  const simulation = simulationSection(printerId);
  let printer = null;
  let jobs = [];
  let focusPart = part ? `${part}-title` : null; // the part the address names, once shown

  main.append(
    h("p", { class: "crumbs" }, h("a", { href: "#/" }, "← Fleet")),
    title,
    status,
    h(
      "div",
      { class: "columns" },
      h("section", { "aria-labelledby": "screen-title" }, h("h2", { id: "screen-title" }, "Screen"), screen),
      h(
        "section",
        { "aria-labelledby": "chart-title" },
        h("h2", { id: "chart-title" }, "Temperatures, last 10 minutes"),
        chart,
        h(
          "p",
          { class: "legend" },
          h("span", { class: "key hotend" }, "hotend"),
          h("span", { class: "key hotend-target" }, "hotend target"),
          h("span", { class: "key bed" }, "bed"),
          h("span", { class: "key bed-target" }, "bed target"),
        ),
        current,
      ),
    ),
    h(
      "section",
      { "aria-labelledby": "actions-title" },
      h("h2", { id: "actions-title" }, "Actions"),
      h("div", { class: "actions" }, Object.values(buttons)),
      h(
        "p",
        { class: "setting" },
        plateCheck,
        h("label", { for: "plate-check" }, "Check the plate before every print (recommended)"),
        plateCheckPending,
      ),
    ),
    materials.node,
    maintenance.node,
    simulation.node,
    h(
      "section",
      { "aria-labelledby": "history-title" },
      h("h2", { id: "history-title" }, "Jobs on this printer"),
      h(
        "div",
        { class: "scroll" },
        h(
          "table",
          {},
          h("thead", {}, h("tr", {}, ["Job", "State", "Reason", "Created", "Ended"].map((c) => h("th", { scope: "col" }, c)))),
          history,
        ),
      ),
    ),
  );

  const path = `/api/v1/printers/${encodeURIComponent(printerId)}`;
  buttons.confirm.addEventListener("click", () => confirmPlate(printer || { id: printerId, name: printerId }));
  buttons.pause.addEventListener("click", () =>
    act("Pause sent", () => api.post(`/api/v1/jobs/${printer.job_id}/pause`)),
  );
  buttons.resume.addEventListener("click", () =>
    act("Resume sent", () => api.post(`/api/v1/jobs/${printer.job_id}/resume`)),
  );
  buttons.cancel.addEventListener("click", async () => {
    const ok = await confirmDialog({
      title: "Cancel this print?",
      text: "The printer stops the print now. This cannot be undone.",
      ok: "Cancel the print",
      danger: true,
    });
    if (ok) await act("Print cancelled", () => api.post(`/api/v1/jobs/${printer.job_id}/cancel`));
  });
  buttons.clearFault.addEventListener("click", async () => {
    const ok = await confirmDialog({
      title: "Clear the thermal fault?",
      text:
        "Warning: the printer turned its heaters off because a temperature reading was unsafe. " +
        "Clear the fault only after someone has checked the printer and its heater and sensor " +
        "are sound; the printer can heat again afterwards.",
      ok: "I have checked it: clear the fault",
      danger: true,
    });
    if (ok) await act("Fault cleared", () => api.post(`${path}/clear-fault`));
  });
  plateCheck.addEventListener("change", async () => {
    const enabled = plateCheck.checked;
    if (!enabled) {
      const ok = await confirmDialog({
        title: "Turn the plate check off?",
        text:
          "Prints may then start onto a plate nobody checked, on top of an earlier print. " +
          "This is recorded in the audit log under your name.",
        ok: "Turn the plate check off",
        danger: true,
      });
      if (!ok) {
        plateCheck.checked = true;
        return;
      }
    }
    await act(enabled ? "Plate check on" : "Plate check off", () =>
      api.put(`${path}/plate-check`, { enabled, confirm: !enabled }),
    );
  });

  // A part shows once the printer's data says it applies (an older cloud has none of them).
  function showPart() {
    const heading = focusPart && document.getElementById(focusPart);
    if (!heading || heading.closest("[hidden]")) return;
    focusPart = null;
    heading.tabIndex = -1;
    heading.scrollIntoView({ block: "start" });
    heading.focus({ preventScroll: true });
  }

  const drawChart = () =>
    drawTemperatureChart(chart, state.samples.get(printerId) || [], CHART_WINDOW_MS);

  let jobsFetched = 0;
  async function update() {
    printer = state.printers.find((p) => p.id === printerId) || null;
    if (!printer) {
      title.textContent = printerId;
      status.textContent = "No such printer, or it is not shared with you.";
      return;
    }
    materials.update(printer);
    simulation.update(printer);
    showPart();
    if (Date.now() - jobsFetched > 2000 || (printer.job_id && !jobs.some((j) => j.id === printer.job_id))) {
      jobsFetched = Date.now();
      jobs = await api.get(`/api/v1/jobs?printer_id=${encodeURIComponent(printerId)}&limit=20`);
    }
    const st = printerState(printer);
    title.textContent = printer.name;
    if (state.pageTitle !== printer.name) {
      state.pageTitle = printer.name;
      showAlertCount();
    }
    const line = ` ${printer.model} · ${printer.id} · plate: ${printer.plate ? PLATE_LABELS[printer.plate] : "–"} · your role: ${printer.role}`;
    if (status.dataset.shown !== st + line) {
      // Only on a change: the line is a live region, read out each time it is replaced.
      status.dataset.shown = st + line;
      status.replaceChildren(badge(`state ${st}`, STATE_LABELS[st] || st), line);
    }
    const running = jobs.find((j) => j.id === printer.job_id);
    screen.replaceChildren(
      ...screenLines(printer, running && running.name).map(([cls, text]) => h("p", { class: cls }, text)),
    );
    drawChart();
    current.textContent = printer.temperatures
      ? `Hotend ${heaterText(printer.temperatures.hotend)} · Bed ${heaterText(printer.temperatures.bed)}`
      : "No temperatures reported yet.";
    const operator = printer.role !== "viewer";
    // A person's word counts only where no sensor decides: the printer asks for it.
    buttons.confirm.hidden = !operator || printer.plate !== "needs_confirmation";
    buttons.pause.hidden = !operator || printer.status !== "printing" || !printer.job_id;
    buttons.resume.hidden = !operator || printer.status !== "paused" || !printer.job_id;
    buttons.cancel.hidden = !operator || !printer.job_id || !["printing", "paused"].includes(printer.status);
    buttons.clearFault.hidden = !operator || !printer.fault;
    plateCheck.checked = printer.plate_check;
    plateCheck.disabled = printer.role !== "owner";
    const pending =
      printer.plate_check_reported === printer.plate_check
        ? ""
        : ` — not yet applied by the printer (it gets it when it is back); nothing starts there until it is`;
    if (plateCheckPending.textContent !== pending) plateCheckPending.textContent = pending;
    await maintenance.update(printer);
    showPart();
    replaceKeepingFocus(history,
      ...jobs.map((j) =>
        h(
          "tr",
          { dataset: { jobId: j.id, state: j.state } },
          h("td", {}, j.name),
          h("td", {}, badge(`job ${j.state}`, j.state)),
          h("td", { class: "reason" }, waitInfo(j)),
          h("td", {}, clock(j.created_at)),
          h("td", {}, clock(j.ended_at)),
        ),
      ),
    );
    if (jobs.length === 0) history.append(h("tr", {}, h("td", { colspan: 5 }, "No jobs yet.")));
  }
  update();
  loadHistory(printerId).then(drawChart);
  return { update, focus: part ? main.querySelector(`#${part}-title`) : null };
}

function jobsView(main) {
  const fileInput = h("input", { type: "file", id: "job-file", accept: ".gcode,.3mf,.gcode.3mf" });
  const existing = h("select", { id: "job-existing" }, h("option", { value: "" }, "— upload the file chosen above —"));
  const printerSelect = h("select", { id: "job-printer" });
  const modelSelect = h("select", { id: "job-model" });
  const byPrinter = h("input", { type: "radio", name: "target", id: "target-printer", value: "printer", checked: true });
  const byModel = h("input", { type: "radio", name: "target", id: "target-model", value: "model" });
  const byPool = h("input", { type: "radio", name: "target", id: "target-pool", value: "pool" });
  const poolSelect = h("select", { id: "job-pool" });
  const poolChoice = h("div", { class: "choice", hidden: true }, byPool, h("label", { for: "target-pool" }, "Any printer you may operate in pool"), poolSelect);
  const copies = h("input", { id: "job-copies", type: "number", min: 1, max: 50, step: 1, value: 1 });
  const priority = h("input", { id: "job-priority", type: "number", min: -100, max: 100, step: 1, value: 0, "aria-describedby": "job-priority-hint" });
  const materialMode = h(
    "select",
    { id: "job-material-mode" },
    h("option", { value: "file" }, "As the file says"),
    h("option", { value: "any" }, "Any material"),
    h("option", { value: "set" }, "This material:"),
  );
  const material = h("input", { id: "job-material", type: "text", maxlength: 16, autocomplete: "off", placeholder: "PETG", disabled: true, "aria-describedby": "job-material-hint" });
  const nozzle = h(
    "select",
    { id: "job-nozzle" },
    h("option", { value: "file" }, "As the file says"),
    h("option", { value: "any" }, "Any nozzle"),
    NOZZLES_UM.map((um) => h("option", { value: um }, nozzleText(um))),
  );
  const within = h(
    "select",
    { id: "job-within" },
    [
      [600, "10 minutes"],
      [1800, "30 minutes"],
      [3600, "1 hour"],
      [4 * 3600, "4 hours"],
      [24 * 3600, "1 day"],
    ].map(([value, label]) => h("option", { value, selected: value === 3600 }, label)),
  );
  const progress = h("progress", { id: "upload-progress", max: 100, value: 0 });
  const progressText = h("span", { id: "upload-progress-text" }, "");
  const error = h("p", { class: "error", role: "alert" });
  const submit = h("button", { type: "submit" }, "Upload and print");
  const form = h(
    "form",
    { class: "card", "aria-labelledby": "new-job-title" },
    h("h2", { id: "new-job-title" }, "New print"),
    h("label", { for: "job-file" }, "G-code file (.gcode or .gcode.3mf)"),
    fileInput,
    h("label", { for: "job-existing" }, "Or a file uploaded before"),
    existing,
    h(
      "fieldset",
      {},
      h("legend", {}, "Print on"),
      h("div", { class: "choice" }, byPrinter, h("label", { for: "target-printer" }, "This printer"), printerSelect),
      h("div", { class: "choice" }, byModel, h("label", { for: "target-model" }, "Any printer you may operate of model"), modelSelect),
      poolChoice,
    ),
    h(
      "fieldset",
      { class: "requirements" },
      h("legend", {}, "Needs"),
      h("label", { for: "job-material-mode" }, "Material"),
      materialMode,
      h("label", { for: "job-material", class: "visually-hidden" }, "Material name"),
      material,
      h("p", { class: "muted hint", id: "job-material-hint" }, `Only printers with it loaded take the job. ${MATERIAL_HINT}`),
      h("label", { for: "job-nozzle" }, "Nozzle"),
      nozzle,
    ),
    h(
      "div",
      { class: "numbers" },
      h("div", {}, h("label", { for: "job-copies" }, "Copies"), copies),
      h("div", {}, h("label", { for: "job-priority" }, "Priority"), priority),
    ),
    h("p", { class: "muted hint", id: "job-priority-hint" }, "Priority -100 to 100: higher starts first, then the oldest."),
    h("label", { for: "job-within" }, "Start within (or it expires and you are told)"),
    within,
    h("div", { class: "upload" }, h("label", { for: "upload-progress" }, "Upload"), progress, progressText),
    error,
    submit,
  );
  printerSelect.setAttribute("aria-label", "Printer");
  modelSelect.setAttribute("aria-label", "Model");
  poolSelect.setAttribute("aria-label", "Pool");
  materialMode.addEventListener("change", () => {
    material.disabled = materialMode.value !== "set";
    if (!material.disabled) material.focus();
  });
  // What the chosen file's slicer wrote is filled in, and named in the "as the file says" choice.
  existing.addEventListener("change", () => {
    const meta = (files.find((f) => f.id === existing.value) || {}).metadata || {};
    const nozzleUm = meta.nozzle_um ?? null;
    materialMode.options[0].textContent = meta.material ? `As the file says (${meta.material})` : "As the file says";
    nozzle.options[0].textContent = nozzleUm ? `As the file says (${nozzleText(nozzleUm)})` : "As the file says";
    if (meta.material && materialMode.value !== "any") material.value = meta.material;
  });
  const showAll = h("input", { type: "checkbox", id: "show-ended", checked: true });
  const queue = h("tbody");
  main.append(
    h("h1", {}, "Jobs"),
    form,
    h(
      "section",
      { "aria-labelledby": "queue-title" },
      h("h2", { id: "queue-title" }, "Queue and history"),
      h("p", { class: "setting" }, showAll, h("label", { for: "show-ended" }, "Show ended jobs")),
      h(
        "div",
        { class: "scroll" },
        h(
          "table",
          { class: "jobs" },
          h(
            "thead",
            {},
            h("tr", {}, ["Job", "Printer", "State", "Priority", "Reason", "Created", "Start by", ""].map((c) => h("th", { scope: "col" }, c))),
          ),
          queue,
        ),
      ),
    ),
  );
  showAll.addEventListener("change", () => update());

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    error.textContent = "";
    const file = fileInput.files[0];
    if (!file && !existing.value) {
      error.textContent = "Choose a G-code file to upload, or a file uploaded before.";
      fileInput.focus();
      return;
    }
    const target = byModel.checked
      ? { model: modelSelect.value }
      : byPool.checked
        ? { pool_id: poolSelect.value }
        : { printer_id: printerSelect.value };
    if (!target.model && !target.printer_id && !target.pool_id) {
      error.textContent = "Choose a printer, a model or a pool.";
      return;
    }
    const [extra, problem] = jobOptions();
    if (problem) {
      error.textContent = problem;
      return;
    }
    submit.disabled = true;
    try {
      let fileId = existing.value;
      if (file) {
        progress.value = 0;
        const uploaded = await api.upload(file, (fraction) => {
          progress.value = Math.round(fraction * 100);
          progressText.textContent = ` ${progress.value}%`;
        });
        fileId = uploaded.id;
        progressText.textContent = ` ${uploaded.name} uploaded`;
      }
      const job = await api.post(
        "/api/v1/jobs",
        { file_id: fileId, start_within_s: Number(within.value), ...target, ...extra },
        { "Idempotency-Key": crypto.randomUUID() },
      );
      toast(extra.copies ? `${extra.copies} copies of ${job.name.replace(/ \(\d+\/\d+\)$/, "")} queued` : `Job ${job.name} queued`);
      fileInput.value = "";
      filesFetched = 0;
      scheduleRefresh(0);
    } catch (failure) {
      error.textContent = failure.message;
    } finally {
      submit.disabled = false;
    }
  });

  // Copies, priority, material and nozzle as the API takes them; left out where the form keeps
  // the default, so an older cloud (which knows none of them) still takes a plain job.
  function jobOptions() {
    const extra = {};
    const count = Number(copies.value || 1);
    if (!Number.isInteger(count) || count < 1 || count > 50) return [null, `Copies: “${copies.value}” is not 1 to 50, e.g. 3.`];
    if (count > 1) extra.copies = count;
    const rank = Number(priority.value || 0);
    if (!Number.isInteger(rank) || rank < -100 || rank > 100) return [null, `Priority: “${priority.value}” is not a whole number from -100 to 100, e.g. 10.`];
    if (rank !== 0) extra.priority = rank;
    if (materialMode.value === "any") extra.material = null;
    if (materialMode.value === "set") {
      const [value, problem] = parseMaterial(material.value);
      if (problem) return [null, `Material: ${problem.replace("To empty the slot, use its Empty button.", "Or choose Any material.")}`];
      material.value = value;
      extra.material = value;
    }
    if (nozzle.value === "any") extra.nozzle_um = null;
    else if (nozzle.value !== "file") extra.nozzle_um = Number(nozzle.value);
    return [extra, null];
  }

  let filesFetched = 0;
  let files = [];
  let jobs = [];
  let pools = null; // null: this cloud has no pools
  async function update() {
    const operable = state.printers.filter((p) => p.role !== "viewer");
    fill(printerSelect, operable.map((p) => [p.id, `${p.name} (${p.model})`]));
    fill(modelSelect, [...new Set(operable.map((p) => p.model))].sort().map((m) => [m, m]));
    if (Date.now() - filesFetched > 30_000) {
      filesFetched = Date.now();
      files = await api.get("/api/v1/files");
      fill(existing, [["", "— upload the file chosen above —"], ...files.map((f) => [f.id, f.name])]);
      pools = await optional(() => api.get("/api/v1/pools"));
    }
    poolChoice.hidden = pools === null;
    byPool.disabled = !pools || pools.length === 0;
    fill(poolSelect, (pools || []).map((p) => [p.id, p.name]));
    // The waiting jobs whatever their age (the planner's queue), and the latest others.
    const [recent, waiting] = await Promise.all([
      api.get("/api/v1/jobs?limit=50"),
      api.get("/api/v1/jobs?state=queued&state=staged&limit=200"),
    ]);
    const byId = new Map([...recent, ...waiting].map((j) => [j.id, j]));
    jobs = [...byId.values()].sort(plannerOrder);
    const names = new Map(state.printers.map((p) => [p.id, p.name]));
    const poolNames = new Map((pools || []).map((p) => [p.id, p.name]));
    const shown = showAll.checked ? jobs : jobs.filter((j) => !TERMINAL.has(j.state));
    const queued = jobs.filter((j) => WAITING.has(j.state));
    replaceKeepingFocus(queue,
      ...shown.map((j) => {
        const where = j.assigned_printer || j.printer_id;
        const cancel = TERMINAL.has(j.state)
          ? ""
          : h("button", { type: "button", class: "small danger", "aria-label": `Cancel ${j.name}`, onclick: () => cancelJob(j) }, "Cancel");
        return h(
          "tr",
          { dataset: { jobId: j.id, state: j.state } },
          h("td", {}, j.name, needs(j)),
          h("td", {}, targetText(j, names, poolNames)),
          h("td", {}, badge(`job ${j.state}`, j.state)),
          h("td", { class: "priority" }, j.priority ?? "–"),
          h("td", { class: "reason" }, waitInfo(j)),
          h("td", {}, clock(j.created_at)),
          h("td", {}, TERMINAL.has(j.state) ? "–" : clock(j.start_by)),
          h("td", {}, h("div", { class: "row-actions" }, reorderButtons(j, queued), cancel)),
        );
      }),
    );
    if (shown.length === 0) queue.append(h("tr", {}, h("td", { colspan: 8 }, "No jobs.")));
  }

  // Raise: just above the job ahead of it; lower: just below the one after it (PATCH priority).
  function reorderButtons(job, queued) {
    if (!WAITING.has(job.state) || job.priority === undefined) return null;
    const at = queued.indexOf(job);
    const ahead = queued[at - 1];
    const behind = queued[at + 1];
    const up = Math.min(100, ahead ? Math.max(job.priority + 1, ahead.priority + 1) : job.priority + 1);
    const down = Math.max(-100, behind ? Math.min(job.priority - 1, behind.priority - 1) : job.priority - 1);
    const move = (value) => () =>
      act(`${job.name}: priority ${value}`, () => api.patch(`/api/v1/jobs/${job.id}`, { priority: value }));
    return [
      h("button", { type: "button", class: "small secondary", "aria-label": `Raise priority of ${job.name}`, disabled: job.priority >= 100, onclick: move(up) }, "Raise"),
      h("button", { type: "button", class: "small secondary", "aria-label": `Lower priority of ${job.name}`, disabled: job.priority <= -100, onclick: move(down) }, "Lower"),
    ];
  }

  async function cancelJob(job) {
    const ok = await confirmDialog({
      title: `Cancel ${job.name}?`,
      text: "A printer already printing it stops. The job ends as cancelled.",
      ok: "Cancel the job",
      danger: true,
    });
    if (ok) await act("Job cancelled", () => api.post(`/api/v1/jobs/${job.id}/cancel`));
  }

  update();
  return { update };
}

const NOZZLES_UM = [200, 250, 400, 600, 800, 1000];
const PHASES = { queued: 0, staged: 0, dispatched: 1, printing: 1, paused: 1 };

// As the planner takes them: waiting jobs by priority (highest first), then age, then id;
// then the running ones and the ended ones, newest first.
function plannerOrder(a, b) {
  const phase = (j) => PHASES[j.state] ?? 2;
  if (phase(a) !== phase(b)) return phase(a) - phase(b);
  if (phase(a) !== 0) return b.created_at - a.created_at;
  return (b.priority || 0) - (a.priority || 0) || a.created_at - b.created_at || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0);
}

// Where a job prints: its printer once it has one, else what it may go to.
function targetText(job, names, poolNames) {
  const where = job.assigned_printer || job.printer_id;
  const pool = job.pool_id ? `pool ${poolNames.get(job.pool_id) || job.pool_id}` : null;
  if (!where) return pool ? `any in ${pool}` : `any ${job.model}`;
  const name = names.get(where) || where;
  return pool ? `${name} (${pool})` : name;
}

// What a job requires of a printer, under its name.
function needs(job) {
  const r = job.requirements;
  if (!r || (!r.material && !r.nozzle_um)) return null;
  const parts = [r.material, r.nozzle_um ? `${nozzleText(r.nozzle_um)} nozzle` : null].filter(Boolean);
  return h("span", { class: "needs muted" }, `needs ${parts.join(", ")}`);
}

// A route an older cloud may not have: its answer, or null on 404.
async function optional(call) {
  try {
    return await call();
  } catch (failure) {
    if (failure.status === 404) return null;
    throw failure;
  }
}

// Replace a select's options only when they changed, keeping the choice.
function fill(select, options) {
  const wanted = JSON.stringify(options);
  if (select.dataset.options === wanted) return;
  const chosen = select.value;
  select.dataset.options = wanted;
  select.replaceChildren(...options.map(([value, label]) => h("option", { value }, label)));
  if (options.some(([value]) => value === chosen)) select.value = chosen;
}

function alertsView(main) {
  const list = h("ul", { class: "alerts", "aria-label": "Alerts" });
  main.append(h("h1", {}, "Alerts"), list);
  function update() {
    const names = new Map(state.printers.map((p) => [p.id, p.name]));
    replaceKeepingFocus(list,
      ...state.alerts.map((a) =>
        h(
          "li",
          { class: `alert ${a.severity} ${a.resolved_at ? "resolved" : a.acked_at ? "acked" : "open"}`, dataset: { alertId: a.id, kind: a.kind } },
          h(
            "div",
            {},
            badge(`severity ${a.severity}`, a.severity),
            " ",
            h("strong", {}, a.kind.replaceAll("_", " ")),
            " on ",
            h("a", { href: `#/printers/${encodeURIComponent(a.printer_id)}` }, names.get(a.printer_id) || a.printer_id),
          ),
          h("p", {}, a.message),
          h("p", { class: "muted" }, clock(a.created_at)),
          a.resolved_at
            ? h(
                "p",
                { class: "muted resolution" },
                `Resolved after ${lasted(a.duration_s)}: ${a.resolution || "its condition cleared"} (${clock(a.resolved_at)})`,
              )
            : null,
          a.acked_at
            ? h("p", { class: "muted" }, `Acknowledged ${clock(a.acked_at)}`)
            : a.resolved_at
            ? null
            : h(
                "button",
                {
                  type: "button",
                  "aria-label": `Acknowledge ${a.kind.replaceAll("_", " ")} on ${names.get(a.printer_id) || a.printer_id}`,
                  onclick: () => act("Alert acknowledged", () => api.post(`/api/v1/alerts/${a.id}/ack`)),
                },
                "Acknowledge",
              ),
        ),
      ),
    );
    if (state.alerts.length === 0) list.append(h("li", { class: "empty" }, "No alerts."));
  }
  update();
  return { update };
}

function settingsView(main) {
  const channels = h("ul", { class: "plain", "aria-label": "Notification channels" });
  const kind = h("select", { id: "channel-kind" }, h("option", { value: "webhook" }, "Webhook"), h("option", { value: "apprise" }, "E-mail or other (Apprise URL)"));
  const target = h("input", { id: "channel-target", type: "url", required: true, placeholder: "https://example.org/hook or mailto://…" });
  const secret = h("input", {
    id: "channel-secret",
    type: "password",
    autocomplete: "off",
    minlength: 16,
    required: true,
  });
  const channelError = h("p", { class: "error", role: "alert" });
  const channelForm = h(
    "form",
    { class: "card", "aria-labelledby": "new-channel-title" },
    h("h3", { id: "new-channel-title" }, "Add a channel"),
    h("label", { for: "channel-kind" }, "Kind"),
    kind,
    h("label", { for: "channel-target" }, "URL"),
    target,
    h("label", { for: "channel-secret" }, "Signing secret (webhooks; 16 characters or more)"),
    secret,
    channelError,
    h("button", { type: "submit" }, "Add channel"),
  );
  kind.addEventListener("change", () => {
    // Apprise URLs (mailto://, ntfy://, ...) are not http URLs.
    target.type = kind.value === "webhook" ? "url" : "text";
    secret.disabled = kind.value !== "webhook";
    secret.required = kind.value === "webhook";
  });
  const tokens = h("tbody");
  const tokenName = h("input", { id: "token-name", required: true, maxlength: 100 });
  const tokenWrite = h("input", { id: "token-write", type: "checkbox" });
  const tokenOut = h("output", { id: "token-value", for: "token-name" });
  const tokenForm = h(
    "form",
    { class: "card", "aria-labelledby": "new-token-title" },
    h("h3", { id: "new-token-title" }, "Create a token"),
    h("label", { for: "token-name" }, "Name"),
    tokenName,
    h("p", { class: "setting" }, tokenWrite, h("label", { for: "token-write" }, "May also change things (write)")),
    h("button", { type: "submit" }, "Create token"),
    tokenOut,
  );
  main.append(
    h("h1", {}, "Settings"),
    h(
      "section",
      { "aria-labelledby": "channels-title" },
      h("h2", { id: "channels-title" }, "Notification channels"),
      h("p", { class: "muted" }, "Thermal faults, failed, rejected and expired jobs, offline printers and plates to confirm are sent here."),
      channels,
      channelForm,
    ),
    h(
      "section",
      { "aria-labelledby": "tokens-title" },
      h("h2", { id: "tokens-title" }, "API tokens"),
      h(
        "div",
        { class: "scroll" },
        h("table", {}, h("thead", {}, h("tr", {}, ["Name", "Scopes", "Created", "Last used", ""].map((c) => h("th", { scope: "col" }, c)))), tokens),
      ),
      tokenForm,
    ),
  );

  channelForm.addEventListener("submit", async (event) => {
    event.preventDefault();
    channelError.textContent = "";
    const body = { kind: kind.value, target: target.value.trim() };
    if (kind.value === "webhook" && secret.value) body.secret = secret.value;
    try {
      await api.post("/api/v1/channels", body);
      channelForm.reset();
      kind.dispatchEvent(new Event("change"));
      toast("Channel added");
      await update();
    } catch (failure) {
      channelError.textContent = failure.message;
    }
  });
  tokenForm.addEventListener("submit", async (event) => {
    event.preventDefault();
    const scopes = tokenWrite.checked ? ["read", "write"] : ["read"];
    try {
      const created = await api.post("/api/v1/tokens", { name: tokenName.value.trim(), scopes });
      tokenOut.replaceChildren("Copy it now, it is not shown again: ", h("code", {}, created.token));
      tokenForm.querySelector("input").value = "";
      await update();
    } catch (failure) {
      tokenOut.textContent = failure.message;
    }
  });

  async function update() {
    try {
      const list = await api.get("/api/v1/channels");
      replaceKeepingFocus(channels,
        ...list.map((c) =>
          h(
            "li",
            { dataset: { channelId: c.id } },
            h("strong", {}, c.kind),
            " ",
            c.target || c.target_hint || c.name || "",
            " ",
            h("button", { type: "button", class: "small secondary", onclick: () => act("Test sent", () => api.post(`/api/v1/channels/${c.id}/test`)) }, "Send test"),
            " ",
            h("button", { type: "button", class: "small danger", onclick: () => act("Channel removed", () => api.del(`/api/v1/channels/${c.id}`)) }, "Remove"),
          ),
        ),
      );
      if (list.length === 0) channels.append(h("li", { class: "empty" }, "No channels yet."));
      channelForm.hidden = false;
    } catch (failure) {
      if (failure.status !== 404) throw failure;
      channels.replaceChildren(h("li", { class: "empty" }, "This cloud does not offer notification channels yet."));
      channelForm.hidden = true;
    }
    const list = await api.get("/api/v1/tokens");
    replaceKeepingFocus(tokens,
      ...list
        .filter((t) => !t.revoked_at)
        .map((t) =>
          h(
            "tr",
            { dataset: { tokenId: t.id } },
            h("td", {}, t.name),
            h("td", {}, t.scopes.join(", ")),
            h("td", {}, clock(t.created_at)),
            h("td", {}, clock(t.last_used_at)),
            h(
              "td",
              {},
              h(
                "button",
                {
                  type: "button",
                  class: "small danger",
                  "aria-label": `Revoke ${t.name}`,
                  onclick: async () => {
                    const ok = await confirmDialog({ title: `Revoke ${t.name}?`, text: "It stops working at once. If it is this page's own token, you are logged out.", ok: "Revoke", danger: true });
                    if (ok) await act("Token revoked", () => api.del(`/api/v1/tokens/${t.id}`));
                  },
                },
                "Revoke",
              ),
            ),
          ),
        ),
    );
  }
  update().catch((failure) => toast(failure.message, true));
  return { update };
}

// ---------------------------------------------------------------------------------------------
// Routing.

const ROUTES = [
  [/^#\/?$/, "fleet", (main) => fleetView(main)],
  [/^#\/printers\/([^/]+)(?:\/(materials|maintenance|simulation))?$/, "fleet", (main, id, part) => printerView(main, decodeURIComponent(id), part)],
  [/^#\/jobs$/, "jobs", (main) => jobsView(main)],
  [/^#\/alerts$/, "alerts", (main) => alertsView(main)],
  [
    /^#\/pools$/,
    "pools",
    (main) => poolsView(main, { h, act, toast, confirmDialog, replaceKeepingFocus, printers: () => state.printers }),
  ],
  [/^#\/stats$/, "stats", (main) => statsView(main, { h, toast, setTitle: (title) => (state.pageTitle = title) })],
  [/^#\/settings$/, "settings", (main) => settingsView(main)],
];

function render() {
  const main = document.getElementById("main");
  main.replaceChildren();
  const header = document.querySelector("header.top");
  const hash = location.hash || "#/";
  if (!session.token) {
    header.hidden = true;
    document.title = BASE_TITLE;
    state.view = loginView(main, hash);
    return;
  }
  header.hidden = false;
  const [, nav, make, match] = ROUTES.map(([pattern, n, m]) => [pattern, n, m, hash.match(pattern)]).find(
    ([, , , m]) => m,
  ) || [null, "fleet", null, null];
  for (const link of document.querySelectorAll("[data-nav]")) {
    if (link.dataset.nav === nav) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
  if (!make) {
    main.append(h("h1", {}, "Not found"), h("p", {}, h("a", { href: "#/" }, "Back to the fleet")));
    state.view = null;
    return;
  }
  state.pageTitle = null;
  state.view = make(main, ...match.slice(1));
  showAlertCount();
  // Move focus to the new page's heading (or the part of it the address names), so keyboard
  // and screen-reader users follow along.
  const heading = (state.view && state.view.focus) || main.querySelector("h1");
  if (heading) {
    heading.tabIndex = -1;
    heading.focus({ preventScroll: heading.tagName === "H1" });
  }
}

async function start() {
  render();
  if (!session.token) return;
  await refresh();
  feed.start();
  startPolling();
}

function logOut() {
  session.token = null;
  feed.stop();
  clearInterval(pollTimer);
  state.printers = [];
  state.alerts = [];
  state.liveMode = null;
  render();
}

whenUnauthenticated(() => logOut());
window.addEventListener("hashchange", () => {
  render();
  scheduleRefresh(0);
});
document.getElementById("logout").addEventListener("click", async () => {
  const own = session.tokenId;
  try {
    if (own) await api.del(`/api/v1/tokens/${own}`);
  } catch {
    // Forgetting the token here is what matters; it may already be revoked.
  }
  session.tokenId = null;
  logOut();
});

start();
