// The admin UI's editors: any table's entries as a form (tables), and the Lua scripts with
// highlighting and their compile errors at the line (scripts). Uses api(), cell() and $
// from app.js.
"use strict";

// ---- tables -------------------------------------------------------------------------------
function fieldFor(key, value) {
  const wrap = document.createElement("div");
  const id = "field-" + key;
  const label = document.createElement("label");
  label.htmlFor = id;
  label.textContent = key;
  let input;
  if (typeof value === "boolean") {
    input = document.createElement("input");
    input.type = "checkbox";
    input.checked = value;
  } else if (value !== null && typeof value === "object" && !Array.isArray(value)) {
    input = document.createElement("textarea");
    input.rows = 2;
    input.value = JSON.stringify(value);
  } else {
    input = document.createElement("input");
    input.value = Array.isArray(value) ? value.join(", ") : String(value);
    if (typeof value === "number") input.type = "number";
  }
  input.id = id;
  input.dataset.key = key;
  input.dataset.kind = Array.isArray(value) ? "list" : typeof value;
  const err = document.createElement("span");
  err.className = "field-error";
  err.dataset.key = key;
  err.setAttribute("role", "alert");
  wrap.append(label, input, err);
  return wrap;
}

function entryValues() {
  const keys = {};
  for (const input of document.querySelectorAll("#entry-fields [data-key]")) {
    if (input.tagName === "SPAN") continue;
    const k = input.dataset.key;
    switch (input.dataset.kind) {
      case "boolean": keys[k] = input.checked; break;
      case "number": keys[k] = Number(input.value); break;
      case "list": keys[k] = input.value.split(",").map((s) => s.trim()).filter((s) => s !== ""); break;
      case "object": keys[k] = JSON.parse(input.value || "{}"); break;
      default: keys[k] = input.value;
    }
  }
  const extra = $("#entry-extra").value.trim();
  if (extra) Object.assign(keys, JSON.parse(extra));
  return keys;
}

function entryErrors(text) {
  let placed = false;
  for (const line of String(text).split("\n")) {
    const m = line.match(/\[\w+\.[^\]]+\] (\w+): (.*)$/);
    const span = m && document.querySelector(`#entry-fields .field-error[data-key="${m[1]}"]`);
    if (span) {
      span.textContent = m[2];
      const input = document.getElementById("field-" + m[1]);
      if (input) input.setAttribute("aria-invalid", "true");
      placed = true;
    }
  }
  if (!placed) $("#entry-error").textContent = String(text);
}

function clearEntryErrors() {
  for (const s of document.querySelectorAll("#entry-form .field-error")) s.textContent = "";
  for (const i of document.querySelectorAll("#entry-form [aria-invalid]")) i.removeAttribute("aria-invalid");
  $("#entry-error").textContent = "";
  $("#entry-ok").textContent = "";
}

function openEntry(table, name, keys) {
  $("#entry-form").hidden = false;
  $("#entry-title").textContent = name ? `${table}.${name}` : `new entry of ${table}`;
  $("#entry-name").value = name || "";
  $("#entry-name").readOnly = !!name;
  const fields = $("#entry-fields");
  fields.textContent = "";
  for (const [k, v] of Object.entries(keys)) fields.appendChild(fieldFor(k, v));
  $("#entry-extra").value = "";
  $("#entry-diff").textContent = "";
  $("#entry-apply").disabled = true;
  clearEntryErrors();
}

async function loadEntries() {
  const table = $("#table-pick").value;
  const r = await api("GET", `/config/${table}`);
  const list = $("#entries");
  list.textContent = "";
  for (const e of (r.data && r.data.entries) || []) {
    const li = document.createElement("li");
    const b = document.createElement("button");
    b.type = "button";
    b.textContent = e.name;
    b.addEventListener("click", () => openEntry(table, e.name, e.keys));
    li.appendChild(b);
    list.appendChild(li);
  }
}

async function writeEntry(dry) {
  clearEntryErrors();
  const table = $("#table-pick").value;
  const name = $("#entry-name").value.trim();
  let keys;
  try { keys = entryValues(); } catch (e) {
    document.querySelector('.field-error[data-key="__extra"]').textContent = "not JSON: " + e.message;
    return null;
  }
  const r = await api("PUT", `/config/${table}/${name}${dry ? "?dry_run=1" : ""}`, keys);
  if (r.data && r.data.diff) $("#entry-diff").textContent = r.data.diff;
  if (r.status !== 200) entryErrors((r.data && r.data.error) || `error ${r.status}`);
  return r;
}

// ---- scripts ------------------------------------------------------------------------------
const KEYWORDS = new Set(("and break do else elseif end false for function if in local nil not or " +
  "repeat return then true until while continue").split(" "));

function escapeHtml(s) {
  return s.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;");
}

// Lua tokens as spans, each line in its own span (so an error's line can be marked)
function highlight(text, badLine) {
  const re = /(--\[(=*)\[[\s\S]*?\]\2\]|--[^\n]*)|("(?:[^"\\\n]|\\.)*"|'(?:[^'\\\n]|\\.)*'|\[(=*)\[[\s\S]*?\]\4\])|\b(\d+(?:\.\d+)?)\b|\b([A-Za-z_]\w*)\b/g;
  let out = "";
  let at = 0;
  for (const m of text.matchAll(re)) {
    out += escapeHtml(text.slice(at, m.index));
    const t = escapeHtml(m[0]);
    if (m[1]) out += `<span class="tok-c">${t}</span>`;
    else if (m[3]) out += `<span class="tok-s">${t}</span>`;
    else if (m[5]) out += `<span class="tok-n">${t}</span>`;
    else if (KEYWORDS.has(m[6])) out += `<span class="tok-k">${t}</span>`;
    else out += t;
    at = m.index + m[0].length;
  }
  out += escapeHtml(text.slice(at));
  return out.split("\n").map((l, i) =>
    `<span class="line${i + 1 === badLine ? " line-bad" : ""}" data-line="${i + 1}">${l}</span>`).join("\n") + "\n";
}

function paint(badLine) {
  const t = $("#script-text");
  $("#script-highlight code").innerHTML = highlight(t.value, badLine);
}

async function loadScripts() {
  const r = await api("GET", "/lua/scripts");
  const sel = $("#script-pick");
  const keep = sel.value;
  sel.textContent = "";
  for (const p of (r.data && r.data.scripts) || []) {
    const o = document.createElement("option");
    o.value = p;
    o.textContent = p;
    sel.appendChild(o);
  }
  if (keep) sel.value = keep;
  await openScript();
}

async function openScript() {
  const path = $("#script-pick").value;
  $("#script-error").textContent = "";
  $("#script-ok").textContent = "";
  if (!path) return;
  const r = await api("GET", `/lua/script?path=${encodeURIComponent(path)}`);
  $("#script-text").value = (r.data && r.data.text) || "";
  paint(0);
}

async function saveScript() {
  const path = $("#script-pick").value;
  $("#script-error").textContent = "";
  $("#script-ok").textContent = "";
  const headers = { "Content-Type": "text/plain" };
  if (csrf) headers["X-CSRF-Token"] = csrf;
  const resp = await fetch(`/lua/script?path=${encodeURIComponent(path)}`, {
    method: "PUT", headers, credentials: "same-origin", body: $("#script-text").value,
  });
  let d = null;
  try { d = await resp.json(); } catch (e) { d = null; }
  if (resp.status === 200) {
    paint(0);
    $("#script-ok").textContent = `Saved and applied (config version ${d.config_version}).`;
  } else {
    const line = d && d.line;
    paint(line || 0);
    $("#script-error").textContent = (line ? `line ${line}: ` : "") + ((d && d.error) || `error ${resp.status}`);
  }
}

function startEditors() {
  $("#table-pick").addEventListener("change", () => { $("#entry-form").hidden = true; loadEntries(); });
  $("#entry-form").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    $("#entry-apply").disabled = true;
    const r = await writeEntry(true);
    if (r && r.status === 200) $("#entry-apply").disabled = false;
  });
  $("#entry-apply").addEventListener("click", async () => {
    const r = await writeEntry(false);
    if (r && r.status === 200) {
      $("#entry-apply").disabled = true;
      $("#entry-ok").textContent = `Applied (config version ${r.data.config_version}).`;
      loadEntries();
    }
  });
  $("#entry-new").addEventListener("click", () => openEntry($("#table-pick").value, "", {}));
  $("#script-pick").addEventListener("change", openScript);
  const t = $("#script-text");
  t.addEventListener("input", () => paint(0));
  t.addEventListener("scroll", () => {
    const h = $("#script-highlight");
    h.scrollTop = t.scrollTop;
    h.scrollLeft = t.scrollLeft;
  });
  $("#script-save").addEventListener("click", saveScript);
}

startEditors();
