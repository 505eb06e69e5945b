// tidegate's admin UI: plain JavaScript over the admin API (docs/admin-api.md). The session
// cookie is HttpOnly; the CSRF token lives in this page's memory only.
"use strict";
const $ = (s) => document.querySelector(s);
let csrf = null;
let poll = null;
const samples = { rate: [], errors: [], latency: [] };
let last = null;

async function api(method, path, body) {
  const headers = {};
  if (csrf) headers["X-CSRF-Token"] = csrf;
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const r = await fetch(path, {
    method,
    headers,
    credentials: "same-origin",
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  let data = null;
  try { data = await r.json(); } catch (e) { data = null; }
  return { status: r.status, data };
}

function show(view) {
  for (const id of ["login-view", "dashboard-view", "locations-view", "reloads-view", "tables-view", "scripts-view", "explain-view"]) {
    $("#" + id).hidden = id !== view + "-view";
  }
  $("#nav").hidden = view === "login";
  for (const a of document.querySelectorAll("nav a")) {
    a.removeAttribute("aria-current");
  }
  const link = $("#nav-" + view);
  if (link) link.setAttribute("aria-current", "page");
  if (poll) { clearInterval(poll); poll = null; }
  if (view === "dashboard") { refresh(); poll = setInterval(refresh, 1000); }
  if (view === "locations") { loadLocations(); }
  if (view === "reloads") { loadReloads(); }
  if (view === "tables") { loadEntries(); }
  if (view === "scripts") { loadScripts(); }
}

function route() {
  if (!csrf) return show("login");
  const views = { "#locations": "locations", "#reloads": "reloads", "#tables": "tables", "#scripts": "scripts", "#explain": "explain" };
  show(views[location.hash] || "dashboard");
}

function cell(tr, text, cls) {
  const td = document.createElement("td");
  td.textContent = text;
  if (cls) td.className = cls;
  tr.appendChild(td);
}

function push(list, v) {
  list.push(v);
  if (list.length > 120) list.shift();
}

function draw(id, values, color) {
  const c = $(id);
  const g = c.getContext("2d");
  g.clearRect(0, 0, c.width, c.height);
  const max = Math.max(1, ...values);
  g.strokeStyle = color;
  g.lineWidth = 2;
  g.beginPath();
  values.forEach((v, i) => {
    const x = (i / 119) * c.width;
    const y = c.height - (v / max) * (c.height - 10) - 5;
    if (i === 0) g.moveTo(x, y); else g.lineTo(x, y);
  });
  g.stroke();
}

async function refresh() {
  const r = await api("GET", "/stats");
  if (r.status === 401) { csrf = null; return route(); }
  if (r.status !== 200 || !r.data) return;
  const d = r.data;
  const now = Date.now();
  const total = d.requests.total;
  if (last) {
    const secs = Math.max((now - last.at) / 1000, 0.001);
    const rate = Math.max(total - last.total, 0) / secs;
    const errs = Math.max(d.requests["5xx"] - last.errors, 0) / secs;
    $("#rate").textContent = rate.toFixed(1);
    $("#errors").textContent = errs.toFixed(1);
    const p99 = Math.max(0, ...Object.values(d.locations || {}).map((l) => l.p99_ms || 0));
    push(samples.rate, rate);
    push(samples.errors, errs);
    push(samples.latency, p99);
    draw("#chart", samples.rate, "#0b6bcb");
    draw("#chart-errors", samples.errors, "#b3261e");
    draw("#chart-latency", samples.latency, "#8f2d9a");
  }
  last = { at: now, total, errors: d.requests["5xx"] };
  $("#total").textContent = String(total);
  $("#config-version").textContent = String(d.config_version);
  const lat = $("#latency tbody");
  lat.textContent = "";
  for (const [name, l] of Object.entries(d.locations || {})) {
    const tr = document.createElement("tr");
    cell(tr, name);
    cell(tr, String(l.requests ?? ""));
    cell(tr, l.p50_ms != null ? l.p50_ms.toFixed(2) : "");
    cell(tr, l.p99_ms != null ? l.p99_ms.toFixed(2) : "");
    lat.appendChild(tr);
  }
  const ups = $("#upstreams tbody");
  ups.textContent = "";
  for (const [name, peers] of Object.entries(d.upstreams || {})) {
    for (const p of peers) {
      const tr = document.createElement("tr");
      cell(tr, name);
      cell(tr, p.peer);
      const ok = p.up && !p.circuit_open;
      cell(tr, ok ? "up" : (p.circuit_open ? "circuit open" : "down"), ok ? "up" : "down");
      ups.appendChild(tr);
    }
  }
}

async function loadLocations() {
  const [locs, servers, ups] = await Promise.all([
    api("GET", "/config/locations"),
    api("GET", "/config/servers"),
    api("GET", "/config/upstreams"),
  ]);
  const body = $("#locations tbody");
  body.textContent = "";
  for (const e of (locs.data && locs.data.entries) || []) {
    const tr = document.createElement("tr");
    cell(tr, e.name);
    cell(tr, e.keys.path || "/");
    cell(tr, e.keys.upstream || "");
    cell(tr, e.document);
    body.appendChild(tr);
  }
  const sel = $("#loc-server");
  sel.textContent = "";
  for (const e of (servers.data && servers.data.entries) || []) {
    const o = document.createElement("option");
    o.value = e.name;
    o.textContent = e.name;
    sel.appendChild(o);
  }
  const list = $("#upstream-names");
  list.textContent = "";
  for (const e of (ups.data && ups.data.entries) || []) {
    const o = document.createElement("option");
    o.value = e.name;
    list.appendChild(o);
  }
}

async function loadReloads() {
  const r = await api("GET", "/reloads");
  const body = $("#reloads tbody");
  body.textContent = "";
  for (const e of ((r.data && r.data.reloads) || []).slice().reverse()) {
    const tr = document.createElement("tr");
    cell(tr, new Date(e.at * 1000).toLocaleString());
    cell(tr, e.reason);
    cell(tr, String(e.version));
    cell(tr, e.applied ? "applied" : "rejected: " + (e.error || ""), e.applied ? "up" : "down");
    body.appendChild(tr);
  }
}

// `tidegate explain`'s own text, from GET /explain
async function explain(ev) {
  ev.preventDefault();
  $("#explain-error").textContent = "";
  const q = new URLSearchParams({ method: $("#explain-method").value, url: $("#explain-url").value });
  for (const h of $("#explain-headers").value.split("\n")) {
    if (h.trim()) q.append("header", h.trim());
  }
  const r = await api("GET", "/explain?" + q.toString());
  if (r.status === 200) {
    $("#explain-out").textContent = r.data.text;
  } else {
    $("#explain-out").textContent = "";
    $("#explain-error").textContent = (r.data && r.data.error) || `error ${r.status}`;
  }
}

function clearErrors() {
  for (const s of document.querySelectorAll(".field-error")) s.textContent = "";
  for (const i of document.querySelectorAll("#add-location input")) i.removeAttribute("aria-invalid");
  $("#form-error").textContent = "";
  $("#form-ok").textContent = "";
}

// a check error names its table and key: "...: [locations.shop] upstream: unknown upstream"
function showErrors(text) {
  let placed = false;
  for (const line of String(text).split("\n")) {
    const m = line.match(/\[(locations|servers)\.[^\]]+\] (\w+): (.*)$/);
    const field = m && (m[1] === "servers" ? "server" : m[2]);
    const span = field && document.querySelector(`.field-error[data-for="${field}"]`);
    if (span) {
      span.textContent = m[3];
      const input = document.querySelector(`#add-location [name="${field}"]`);
      if (input) input.setAttribute("aria-invalid", "true");
      placed = true;
    }
  }
  if (!placed) $("#form-error").textContent = String(text);
}

function entry() {
  const f = $("#add-location");
  const keys = {};
  if (f.path.value) keys.path = f.path.value;
  if (f.upstream.value) keys.upstream = f.upstream.value;
  return { name: f.name.value.trim(), keys };
}

async function preview(ev) {
  ev.preventDefault();
  clearErrors();
  $("#apply").disabled = true;
  $("#diff").textContent = "";
  const { name, keys } = entry();
  if (!/^[A-Za-z0-9_-]+$/.test(name)) {
    document.querySelector('.field-error[data-for="name"]').textContent = "letters, digits, - and _";
    return;
  }
  const r = await api("PUT", `/config/locations/${name}?dry_run=1`, keys);
  if (r.data && r.data.diff) $("#diff").textContent = r.data.diff;
  if (r.status === 200) {
    $("#apply").disabled = false;
  } else {
    showErrors((r.data && r.data.error) || `error ${r.status}`);
  }
}

async function apply() {
  clearErrors();
  const { name, keys } = entry();
  const server = $("#loc-server").value;
  const r = await api("PUT", `/config/locations/${name}`, keys);
  if (r.status !== 200) return showErrors((r.data && r.data.error) || `error ${r.status}`);
  const s = await api("GET", `/config/servers/${server}`);
  if (s.status === 200) {
    const skeys = s.data.keys;
    const list = skeys.locations || [];
    if (!list.includes(name)) {
      skeys.locations = list.concat([name]);
      const w = await api("PUT", `/config/servers/${server}`, skeys);
      if (w.status !== 200) return showErrors((w.data && w.data.error) || `error ${w.status}`);
    }
  }
  $("#apply").disabled = true;
  $("#form-ok").textContent = `Location ${name} applied (config version ${r.data.config_version ?? ""}).`;
  loadLocations();
}

async function start() {
  $("#login").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    $("#login-error").textContent = "";
    const r = await api("POST", "/login", { user: $("#user").value, password: $("#password").value });
    if (r.status === 200) {
      csrf = r.data.csrf;
      $("#password").value = "";
      location.hash = "#dashboard";
      route();
    } else {
      $("#login-error").textContent = (r.data && r.data.error) || `error ${r.status}`;
    }
  });
  $("#logout").addEventListener("click", async () => {
    await api("POST", "/logout");
    csrf = null;
    route();
  });
  $("#add-location").addEventListener("submit", preview);
  $("#explain-form").addEventListener("submit", explain);
  $("#apply").addEventListener("click", apply);
  window.addEventListener("hashchange", route);
  const s = await api("GET", "/session");
  if (s.status === 200) csrf = s.data.csrf;
  route();
}

start();
