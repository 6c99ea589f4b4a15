// The mcrd looking glass page: plain JavaScript, no build step, nothing loaded from elsewhere. It reads the same
// looking glass API as any script (/v2/product/mcr2/{uid}/lookingGlass/...), polls /ui/state every second and
// refetches the table on show when the daemon's stamp says that a session or a route changed. Every value is put in
// the page as text (never as HTML).
"use strict";

const POLL_MS = 1000;
const ui = {
  uid: null, tab: "sessions", session: null, view: "received", stamp: null, behind: false, cell: null, sessions: [],
};

const $ = (id) => document.getElementById(id);

function el(tag, props, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(props || {})) {
    if (key === "class") node.className = value;
    else if (key === "data") Object.assign(node.dataset, value);
    else if (key === "onclick") node.addEventListener("click", value);
    else node.setAttribute(key, value);
  }
  for (const child of children) {
    if (child === null || child === undefined) continue;
    node.append(child instanceof Node ? child : String(child));
  }
  return node;
}

class ApiError extends Error {}

async function getJson(url, options) {
  const response = await fetch(url, options);
  let body = null;
  try { body = await response.json(); } catch (_) { /* not JSON: reported below */ }
  if (!response.ok) throw new ApiError((body && body.message) || `${url}: HTTP ${response.status}`);
  if (body === null) throw new ApiError(`${url}: the answer is not JSON`);
  return body;
}

const lg = (path) => `/v2/product/mcr2/${encodeURIComponent(ui.uid)}/lookingGlass${path}`;

function query(params) {
  const q = new URLSearchParams();
  for (const [key, value] of Object.entries(params)) if (value) q.set(key, value);
  const text = q.toString();
  return text ? `?${text}` : "";
}

// --- formatting ------------------------------------------------------------------------------------------------

function duration(seconds) {
  if (seconds === null || seconds === undefined) return "—";
  const d = Math.floor(seconds / 86400), h = Math.floor(seconds / 3600) % 24;
  const m = Math.floor(seconds / 60) % 60, s = seconds % 60;
  if (d) return `${d}d ${h}h`;
  if (h) return `${h}h ${m}m`;
  if (m) return `${m}m ${s}s`;
  return `${s}s`;
}

const dash = (value) => (value === null || value === undefined || value === "" ? "—" : value);
const path = (asPath) => (asPath && asPath.length ? asPath.join(" ") : "—");
const yes = (flag) => (flag ? "✔" : "");

function renderTable(table, columns, rows, rowProps) {
  const head = el("tr", {}, ...columns.map((c) => el("th", {}, c.title)));
  table.tHead.replaceChildren(head);
  const body = table.tBodies[0];
  body.replaceChildren(...rows.map((row) => el("tr", rowProps ? rowProps(row) : {},
    ...columns.map((c) => el("td", { data: { field: c.key } }, c.show ? c.show(row) : dash(row[c.key]))))));
  if (!rows.length) body.append(el("tr", {}, el("td", { colspan: columns.length, class: "hint" }, "no rows")));
}

function showError(message) {
  const box = $("error");
  box.textContent = message || "";
  box.hidden = !message;
}

// --- sessions --------------------------------------------------------------------------------------------------

function renderSessions(sessions) {
  const bfd = sessions.some((s) => s.bfdStatus);  // null on every session without bfdEnabled: no column
  document.querySelectorAll("#sessions-table th.bfd").forEach((th) => { th.hidden = !bfd; });
  const body = $("sessions-table").tBodies[0];
  body.replaceChildren(...sessions.map((s) => {
    const cells = [
      el("td", { data: { field: "peer" } }, el("div", { class: "mono" }, s.neighborAddress),
        s.description ? el("div", { class: "reason" }, s.description) : null),
      el("td", { data: { field: "vxcName" } }, s.vxcName),
      el("td", { data: { field: "peerType" } }, dash(s.peerType)),
      el("td", { data: { field: "neighborAsn" } }, s.neighborAsn),
      el("td", { data: { field: "status" } }, el("span", { class: `state ${s.status}` }, s.status),
        s.stateReason ? el("div", { class: "reason" }, s.stateReason) : null),
      el("td", { data: { field: "uptime" } }, duration(s.uptime)),
      el("td", { data: { field: "prefixesIn" } }, dash(s.prefixesIn)),
      el("td", { data: { field: "prefixesOut" } }, dash(s.prefixesOut)),
      el("td", { data: { field: "prefixesRejected" } }, dash(s.prefixesRejected)),
    ];
    if (bfd) {
      const status = s.bfdStatus;
      cells.push(el("td", { data: { field: "bfdStatus" } }, status ? el("span", { class: `state ${status}` }, status) : "—"));
    }
    cells.push(el("td", {}, el("button", { class: "small", onclick: () => openSession(s.sessionId) }, "Routes")));
    return el("tr", { data: { session: s.sessionId }, class: s.sessionId === ui.session ? "selected" : "" }, ...cells);
  }));
  if (!sessions.length) body.append(el("tr", {}, el("td", { colspan: 11, class: "hint" }, "no BGP sessions")));
}

function openSession(sessionId) {
  ui.session = sessionId;
  document.querySelectorAll("#sessions-table tbody tr").forEach((tr) => {
    tr.classList.toggle("selected", tr.dataset.session === sessionId);
  });
  $("neighbor").hidden = false;
  $("neighbor-name").textContent = sessionId;
  loadNeighbor();
}

const ROUTE_COLUMNS = [
  { key: "prefix", title: "Prefix" },
  { key: "nextHop", title: "Next hop" },
  { key: "asPath", title: "AS path", show: (r) => path(r.asPath) },
  { key: "med", title: "MED" },
  { key: "localPref", title: "Local pref" },
  { key: "origin", title: "Origin" },
  { key: "communities", title: "Communities", show: (r) => dash((r.communities || []).join(" ")) },
];

async function loadNeighbor() {
  if (!ui.session) return;
  const filtered = ui.view === "filtered";
  const direction = ui.view === "advertised" ? "advertised" : "received";
  const url = lg(`/bgpSessions/${encodeURIComponent(ui.session)}/${direction}`) +
    query({ ip: $("neighbor-ip").value.trim(), filtered: filtered ? "true" : "" });
  const columns = [...ROUTE_COLUMNS];
  if (filtered) {
    columns.push({ key: "rejection", title: "Rejected by", show: (r) => el("span", { class: "rejection" },
      el("code", {}, r.rejection ? r.rejection.code : "?"), " ", r.rejection ? r.rejection.detail : "") });
  } else if (direction === "received") {
    columns.push({ key: "best", title: "Best", show: (r) => yes(r.best) });
  }
  await loadInto(url, $("neighbor-message"), $("neighbor-table"), columns);
}

// --- route tables ----------------------------------------------------------------------------------------------

async function loadInto(url, message, table, columns) {
  try {
    const body = await getJson(url);
    message.textContent = body.message;
    message.classList.remove("error");
    renderTable(table, columns, body.data);
  } catch (error) {
    if (!(error instanceof ApiError)) throw error;
    message.textContent = error.message;
    message.classList.add("error");
    renderTable(table, columns, []);
  }
}

function loadRoutes() {
  const url = lg("/routes") + query({ protocol: $("routes-protocol").value, ip: $("routes-ip").value.trim() });
  return loadInto(url, $("routes-message"), $("routes-table"), [
    { key: "prefix", title: "Prefix" },
    { key: "protocol", title: "Protocol" },
    { key: "nextHop", title: "Next hop" },
    { key: "interface", title: "Interface" },
    { key: "vxcName", title: "VXC" },
    { key: "metric", title: "Metric" },
    { key: "asPath", title: "AS path", show: (r) => path(r.asPath) },
    { key: "age", title: "Age", show: (r) => duration(r.age) },
    { key: "best", title: "Best", show: (r) => yes(r.best) },
  ]);
}

function loadBgp() {
  const url = lg("/bgp") + query({ ip: $("bgp-ip").value.trim() });
  return loadInto(url, $("bgp-message"), $("bgp-table"), [
    { key: "prefix", title: "Prefix" },
    { key: "nextHop", title: "Next hop" },
    { key: "neighborIp", title: "Neighbor", show: (r) => dash(r.neighborIp || (r.neighborAsn ? "" : "this MCR")) },
    { key: "asPath", title: "AS path", show: (r) => path(r.asPath) },
    { key: "localPref", title: "Local pref" },
    { key: "med", title: "MED" },
    { key: "origin", title: "Origin" },
    { key: "weight", title: "Weight" },
    { key: "vxcName", title: "VXC" },
    { key: "age", title: "Age", show: (r) => duration(r.age) },
    { key: "best", title: "Best", show: (r) => yes(r.best) },
  ]);
}

// --- matrix ----------------------------------------------------------------------------------------------------

const MCR_ROW = "this MCR (static, connected)";

function cellLabel(cell) {
  const ratio = cell.offered ? cell.reached / cell.offered : 1;
  const kind = !cell.offered ? "" : ratio === 1 ? "all" : cell.reached ? "some" : "none";
  const top = cell.blocked.slice(0, 2).map((b) => el("div", { class: "why" }, `${b.prefixes} × ${b.code}`));
  return [el("div", { class: `count ${kind}` }, `${cell.reached} / ${cell.offered}`), ...top];
}

async function loadMatrix() {
  let body;
  try {
    body = await getJson(lg("/matrix"));
  } catch (error) {
    if (!(error instanceof ApiError)) throw error;
    showError(error.message);
    return;
  }
  const { vxcs, cells } = body.data;
  const byPair = new Map(cells.map((c) => [`${c.fromVxc}|${c.toVxc}`, c]));
  const table = $("matrix-table");
  table.tHead.replaceChildren(el("tr", {}, el("th", { class: "row" }, "from \u2193 / to \u2192"),
    ...vxcs.map((v) => el("th", {}, v, peerTypes(v)))));
  const rows = [null, ...vxcs].map((from) => el("tr", { data: { from: from === null ? "" : from } },
    el("th", { class: "row" }, from === null ? MCR_ROW : from, from === null ? null : peerTypes(from)),
    ...vxcs.map((to) => {
      const cell = byPair.get(`${from}|${to}`);
      if (!cell) return el("td", { class: "self", data: { to } }, "—");
      return el("td", { class: "cell", data: { to }, onclick: () => showCell(cell) }, ...cellLabel(cell));
    })));
  table.tBodies[0].replaceChildren(...rows);
  if (ui.cell) {
    const again = byPair.get(ui.cell);
    if (again) showCell(again); else $("matrix-detail").hidden = true;
  }
}

function peerTypes(vxc) {
  const types = [...new Set(ui.sessions.filter((s) => s.vxcName === vxc).map((s) => s.peerType))];
  return el("div", { class: "why" }, types.join(", "));
}

function showCell(cell) {
  ui.cell = `${cell.fromVxc}|${cell.toVxc}`;
  document.querySelectorAll("#matrix-table td.cell").forEach((td) => {
    td.classList.toggle("selected", `${td.parentElement.dataset.from || null}|${td.dataset.to}` === ui.cell);
  });
  const panel = $("matrix-detail");
  const title = `${cell.fromVxc === null ? MCR_ROW : cell.fromVxc} → ${cell.toVxc}: ${cell.reached} of ${cell.offered} prefixes reach`;
  const pairs = cell.sessions.map((p) => el("div", {},
    el("h3", {}, `${p.fromSession} → ${p.toSession}: ${p.reached} of ${p.offered}`),
    p.blocked.length ? el("ul", {}, ...p.blocked.map((b) => el("li", { class: "rejection" },
      `${b.prefixes} × `, el("code", {}, b.code), ` ${b.detail}`))) : el("p", { class: "hint" }, "nothing blocked")));
  panel.replaceChildren(el("h2", {}, title), ...pairs);
  panel.hidden = false;
}

// --- config (only with a token) --------------------------------------------------------------------------------

async function tokenEntered() {
  const token = $("token").value;
  $("config-editor").hidden = !token;
  if (!token || $("config-text").value) return;
  const response = await fetch("/config");
  $("config-text").value = JSON.stringify(await response.json(), null, 2);
}

async function applyConfig() {
  const token = $("token").value;
  if (!token) return;
  const result = $("config-result");
  try {
    const body = await getJson("/config", {
      method: "PUT", body: $("config-text").value,
      headers: { Authorization: `Bearer ${token}`, "Content-Type": "application/json" },
    });
    result.textContent = `${body.message}\n${JSON.stringify(body.data, null, 2)}`;
  } catch (error) {
    if (!(error instanceof ApiError)) throw error;
    result.textContent = error.message;
  }
}

// --- polling and navigation ------------------------------------------------------------------------------------

function refresh() {
  if (ui.tab === "sessions") return loadNeighbor();
  if (ui.tab === "routes") return loadRoutes();
  if (ui.tab === "bgp") return loadBgp();
  if (ui.tab === "matrix") return loadMatrix();
  return Promise.resolve();
}

// A big table (100,000 routes) costs the daemon's event loop a second to build: while routes churn, the page asks
// for the table it shows at most once per five times what the last answer took, and catches up after.
const took = {};

async function refreshIfDue() {
  const last = took[ui.tab];
  const start = performance.now();
  if (last && start - last.at < 5 * last.ms) return false;
  await refresh();
  took[ui.tab] = { at: performance.now(), ms: performance.now() - start };
  return true;
}

async function poll() {
  try {
    const state = await getJson("/ui/state");
    ui.uid = state.mcr.productName;
    $("mcr-name").textContent = state.mcr.productName;
    $("mcr-asn").textContent = state.mcr.mcrAsn;
    $("config-tab").hidden = !state.tokenConfigured;
    ui.sessions = state.sessions;
    renderSessions(state.sessions);
    if (state.stamp !== ui.stamp || ui.behind) {
      ui.stamp = state.stamp;
      ui.behind = !(await refreshIfDue());
    }
    showError("");
    const live = $("live");
    live.textContent = `live · updated ${new Date().toLocaleTimeString()}`;
    live.classList.remove("stale");
    document.body.dataset.stamp = state.stamp;  // tests wait on it
  } catch (error) {
    const live = $("live");
    live.textContent = `daemon unreachable: ${error.message}`;
    live.classList.add("stale");
  } finally {
    setTimeout(poll, POLL_MS);
  }
}

function selectTab(tab) {
  ui.tab = tab;
  document.querySelectorAll("#tabs button").forEach((b) => b.classList.toggle("active", b.dataset.tab === tab));
  document.querySelectorAll("section.tab").forEach((s) => { s.hidden = s.id !== tab; });
  if (ui.uid) refresh();
}

function debounce(fn, ms) {
  let timer = null;
  return () => { clearTimeout(timer); timer = setTimeout(fn, ms); };
}

function init() {
  document.querySelectorAll("#tabs button").forEach((b) => b.addEventListener("click", () => selectTab(b.dataset.tab)));
  document.querySelectorAll("#neighbor .subtabs button").forEach((b) => b.addEventListener("click", () => {
    ui.view = b.dataset.view;
    document.querySelectorAll("#neighbor .subtabs button").forEach((o) => o.classList.toggle("active", o === b));
    loadNeighbor();
  }));
  $("routes-protocol").addEventListener("change", () => loadRoutes());
  $("routes-ip").addEventListener("input", debounce(loadRoutes, 300));
  $("bgp-ip").addEventListener("input", debounce(loadBgp, 300));
  $("neighbor-ip").addEventListener("input", debounce(loadNeighbor, 300));
  $("token").addEventListener("input", debounce(tokenEntered, 300));
  $("config-apply").addEventListener("click", applyConfig);
  $("token-form").addEventListener("submit", (event) => { event.preventDefault(); tokenEntered(); });
  const tab = location.hash.slice(1);
  if (["sessions", "routes", "bgp", "matrix"].includes(tab)) selectTab(tab);
  poll();
}

init();
