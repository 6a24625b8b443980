// The local console's page: plain DOM, no library, no build step. Data comes from /_console/api
// (same origin); item writes go to the items API at the invoke URL's path on this same origin.
"use strict";

const $ = (selector) => document.querySelector(selector);
const state = { region: null, stack: null, overview: null, view: "overview", itemsPages: [null], itemsPage: 0,
                editing: null, timers: [] };
const COLORS = ["#0073bb", "#ec7211", "#1d8102", "#8c4fff", "#d13212", "#067f68"];
const SVG = "http://www.w3.org/2000/svg";

function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k.startsWith("data-") || k === "class" || k === "type" || k === "title") el.setAttribute(k, v);
    else el[k] = v;
  }
  for (const child of children) el.append(child instanceof Node ? child : document.createTextNode(child ?? ""));
  return el;
}

function svg(tag, attrs) {
  const el = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs || {})) el.setAttribute(k, v);
  return el;
}

async function api(path, options) {
  const response = await fetch("/_console/api/" + path, options);
  const body = await response.json().catch(() => ({ message: response.statusText }));
  if (!response.ok) throw new Error(`${response.status}: ${body.message}`);
  return body;
}

function where() {
  return `region=${encodeURIComponent(state.region)}&stack=${encodeURIComponent(state.stack)}`;
}

function showError(error) {
  const box = $("#error");
  box.hidden = !error;
  box.textContent = error ? String(error.message || error) : "";
}

function stateClass(value) {
  if (["ACTIVE", "Active", "OK", "exists", "deployed", "serving", "enabled"].includes(value)) return "state good";
  if (["ALARM", "Failed", "DELETING", "disabled"].includes(value)) return "state bad";
  return "state neutral";
}

// -- the stack at a glance ---------------------------------------------------------------------

async function loadStacks() {
  const { stacks } = await api("stacks");
  const select = $("#stack");
  select.replaceChildren(...stacks.map((s) => h("option", { value: `${s.region}/${s.stack}` }, `${s.stack} (${s.region})`)));
  if (!stacks.length) throw new Error("no crudstack stack in this local AWS yet: run python provision.py");
  const wanted = new URLSearchParams(location.search);
  const chosen = stacks.find((s) => s.stack === wanted.get("stack") && (!wanted.get("region") || s.region === wanted.get("region"))) || stacks[0];
  select.value = `${chosen.region}/${chosen.stack}`;
  [state.region, state.stack] = [chosen.region, chosen.stack];
}

async function loadOverview() {
  const overview = await api("stack?" + where());
  state.overview = overview;
  $("#invoke-url").textContent = overview.invoke_url || "(no stage deployed)";
  $("#items-api").textContent = overview.invoke_path ? overview.invoke_path + "/items" : "(no stage deployed)";
  $("#table-name").textContent = overview.table || "(no table)";
  showAuth(overview.auth);
  const rows = [];
  for (const step of overview.steps) {
    const resources = step.resources.length ? step.resources : [{ kind: "", name: "(nothing)", state: "missing", detail: "" }];
    resources.forEach((r, i) => rows.push(h("tr", { "data-kind": r.kind, "data-name": r.name },
      h("td", {}, i === 0 ? `${step.step}. ${step.title}` : ""), h("td", {}, r.kind), h("td", {}, r.name),
      h("td", { class: stateClass(r.state) }, r.state), h("td", {}, r.detail))));
  }
  $("#steps tbody").replaceChildren(...rows);
  const select = $("#function-select");
  if (select.options.length !== overview.functions.length) {
    select.replaceChildren(...overview.functions.map((f) => h("option", { value: f }, f)));
  }
}

// -- DynamoDB: items, written through the items API ------------------------------------------------

async function loadItems() {
  if (!state.overview || !state.overview.table) return;
  const limit = $("#items-limit").value;
  const token = state.itemsPages[state.itemsPage];
  const page = await api(`items?region=${encodeURIComponent(state.region)}&table=${encodeURIComponent(state.overview.table)}` +
                         `&limit=${limit}` + (token ? `&next=${encodeURIComponent(token)}` : ""));
  state.itemsPages[state.itemsPage + 1] = page.next;
  $("#items-next").disabled = !page.next;
  $("#items-first").disabled = state.itemsPage === 0;
  $("#items-count").textContent = `page ${state.itemsPage + 1}: ${page.count} item(s)`;
  const off = !!writesRefused();
  $("#items tbody").replaceChildren(...page.items.map((item) => h("tr", { "data-id": item.id },
    h("td", {}, h("code", {}, String(item.id))), h("td", { class: "name" }, String(item.name ?? "")),
    h("td", { class: "description" }, String(item.description ?? "")), h("td", { class: "version" }, String(item.version ?? "")),
    h("td", {}, String(item.updatedAt ?? "")),
    h("td", {}, h("button", { type: "button", class: "edit", disabled: off, onclick: () => startEdit(item.id) }, "Edit"), " ",
      h("button", { type: "button", class: "delete", disabled: off, onclick: () => removeItem(item.id) }, "Delete")))));
}

// Who may write through the items API (the stack's api.auth): with api_key the console sends the stack's
// key; with iam every request must be signed (SigV4), which this page does not do, so writes are off.
function writesRefused() {
  const auth = (state.overview && state.overview.auth) || { mode: "none" };
  if (auth.mode === "iam") {
    return "This stack's API uses api.auth: iam: every request must be signed (SigV4, service execute-api), which " +
           "the console does not do, so Create, Edit and Delete are off here. Sign your writes with awscurl or " +
           "Postman (docs/api-access.md); the table below is still read with Scan.";
  }
  if (auth.mode === "api_key" && !auth.api_key) {
    return "This stack's API needs an API key, but no enabled key is in a usage plan of its stage, so Create, " +
           "Edit and Delete are off: run python provision.py.";
  }
  return null;
}

function showAuth(auth) {
  const refused = writesRefused();
  const note = $("#items-auth");
  note.hidden = !(refused || (auth && auth.mode === "api_key"));
  note.className = "message " + (refused ? "bad" : "good");
  note.textContent = refused || (auth && auth.mode === "api_key"
    ? `Writes send the stack's API key ${auth.api_key_name} as x-api-key (api.auth: api_key).` : "");
  for (const control of document.querySelectorAll("#create-form input, #create-form button")) control.disabled = !!refused;
}

function itemsUrl(id) {
  return state.overview.invoke_path + "/items" + (id ? "/" + encodeURIComponent(id) : "");
}

function say(text, good) {
  const box = $("#items-message");
  box.hidden = false;
  box.className = "message " + (good ? "good" : "bad");
  box.textContent = text;
}

async function callApi(method, id, body, etag) {
  const headers = {};
  if (body) headers["Content-Type"] = "application/json";
  if (etag) headers["If-Match"] = etag;
  const auth = state.overview.auth || {};
  if (auth.mode === "api_key" && auth.api_key) headers["x-api-key"] = auth.api_key;
  const response = await fetch(itemsUrl(id), { method, headers, body: body ? JSON.stringify(body) : undefined });
  const answer = await response.json().catch(() => ({}));
  return { status: response.status, etag: response.headers.get("ETag"), body: answer };
}

function problem(result) {
  const details = (result.body.errors || []).map((e) => `${e.field}: ${e.message}`).join("; ");
  if (result.status === 412) {
    return `412 Precondition Failed: the item changed since you read it (its ETag is now ${result.etag}). ` +
           "Nothing was written; open it again to edit the current version.";
  }
  return `${result.status}: ${result.body.message || "error"}${details ? " (" + details + ")" : ""}`;
}

async function createItem(event) {
  event.preventDefault();
  const body = { name: $("#create-name").value };
  if ($("#create-description").value) body.description = $("#create-description").value;
  const result = await callApi("POST", null, body);
  if (result.status === 201) {
    say(`201 Created ${result.body.item.id} (ETag ${result.etag})`, true);
    $("#create-form").reset();
  } else say(problem(result), false);
  await loadItems();
}

async function startEdit(id) {
  const result = await callApi("GET", id);
  if (result.status !== 200) { say(problem(result), false); return; }
  state.editing = { id, etag: result.etag };
  $("#edit-id").textContent = id;
  $("#edit-etag").textContent = result.etag;
  $("#edit-name").value = result.body.name;
  $("#edit-description").value = result.body.description;
  $("#edit-form").hidden = false;
}

async function saveEdit(event) {
  event.preventDefault();
  const { id, etag } = state.editing;
  const result = await callApi("PUT", id, { name: $("#edit-name").value, description: $("#edit-description").value }, etag);
  if (result.status === 200) {
    say(`200 Updated ${id}: version ${result.body.version}, ETag ${result.etag}`, true);
    $("#edit-form").hidden = true;
    state.editing = null;
  } else say(problem(result), false);
  await loadItems();
}

async function removeItem(id) {
  const read = await callApi("GET", id);
  if (read.status !== 200) { say(problem(read), false); await loadItems(); return; }
  const result = await callApi("DELETE", id, null, read.etag);
  say(result.status === 200 ? `200 Deleted ${id}` : problem(result), result.status === 200);
  await loadItems();
}

// -- Lambda: logs and Test --------------------------------------------------------------------------

async function loadLogs() {
  const fn = $("#function-select").value;
  if (!fn) return;
  const logs = await api(`logs?region=${encodeURIComponent(state.region)}&function=${encodeURIComponent(fn)}`);
  const box = $("#log-lines");
  const atBottom = box.scrollTop + box.clientHeight >= box.scrollHeight - 4;
  box.textContent = logs.events.map((e) => `${new Date(e.timestamp).toISOString()}  ${e.message}`).join("\n") ||
                    "(no log lines in the last hour: invoke the function)";
  if (atBottom) box.scrollTop = box.scrollHeight;
}

async function runTest() {
  const fn = $("#function-select").value;
  const result = await api(`invoke?region=${encodeURIComponent(state.region)}&function=${encodeURIComponent(fn)}`,
                           { method: "POST", headers: { "Content-Type": "application/json" }, body: $("#test-event").value });
  const box = $("#test-result");
  box.hidden = false;
  box.className = "result " + (result.functionError ? "failed" : "succeeded");
  box.textContent = (result.functionError ? `Execution result: failed (${result.functionError})` : "Execution result: succeeded") +
                    `\n\nResponse:\n${result.payload}\n\nLog output:\n${result.log}`;
  await loadLogs();
}

// -- CloudWatch: charts of the last hour, alarms -------------------------------------------------------

function chart(spec, now) {
  const [w, h0, left, top, bottom] = [460, 170, 44, 8, 20];
  const plotW = w - left - 8, plotH = h0 - top - bottom;
  const values = spec.series.flatMap((s) => s.points.map((p) => p[1])).filter((v) => v !== null);
  const max = Math.max(1, ...values, ...spec.thresholds.map((t) => t.value)) * 1.1;
  const start = spec.series.length ? spec.series[0].points[0][0] : now - 3600;
  const end = start + 3600 + spec.period;
  const x = (t) => left + ((t - start) / (end - start)) * plotW;
  const y = (v) => top + plotH - (v / max) * plotH;
  const root = svg("svg", { viewBox: `0 0 ${w} ${h0}`, width: w, height: h0, role: "img", "aria-label": spec.title });
  root.append(svg("rect", { x: left, y: top, width: plotW, height: plotH, fill: "#fafafa", stroke: "#d5dbdb" }));
  for (const frac of [0, 0.5, 1]) {
    const label = svg("text", { x: left - 4, y: y(max * frac / 1.1) + 3, "text-anchor": "end" });
    label.textContent = (max * frac / 1.1).toFixed(max > 11 ? 0 : 1);
    root.append(label);
  }
  for (const minutes of [60, 30, 0]) {
    const label = svg("text", { x: x(end - minutes * 60), y: h0 - 6, "text-anchor": minutes === 60 ? "start" : minutes ? "middle" : "end" });
    label.textContent = minutes ? `-${minutes} min` : "now";
    root.append(label);
  }
  spec.series.forEach((s, i) => {
    const color = COLORS[i % COLORS.length];
    let path = "";
    let pen = "M";
    for (const [t, v] of s.points) {
      if (v === null) { pen = "M"; continue; }
      path += `${pen}${x(t + spec.period / 2).toFixed(1)},${y(v).toFixed(1)} `;
      pen = "L";
      root.append(svg("circle", { cx: x(t + spec.period / 2).toFixed(1), cy: y(v).toFixed(1), r: 2, fill: color }));
    }
    if (path) root.append(svg("path", { d: path, fill: "none", stroke: color, "stroke-width": 1.5 }));
  });
  for (const t of spec.thresholds) {
    const color = t.state === "ALARM" ? "#d13212" : "#687078";
    root.append(svg("line", { x1: left, x2: left + plotW, y1: y(t.value), y2: y(t.value), stroke: color, "stroke-dasharray": "4 3" }));
  }
  const legend = h("ul", { class: "legend" }, ...spec.series.map((s, i) => {
    const swatch = svg("svg", { width: 10, height: 10 });
    swatch.append(svg("rect", { width: 10, height: 10, fill: COLORS[i % COLORS.length] }));
    return h("li", {}, swatch, " " + s.label);
  }));
  const thresholds = spec.thresholds.length ? h("ul", { class: "legend" }, ...spec.thresholds.map((t) =>
    h("li", { "data-alarm": t.alarm }, `- - ${t.alarm} threshold ${t.value} `, h("span", { class: stateClass(t.state) }, t.state)))) : "";
  return h("div", { class: "chart", "data-title": spec.title },
    h("h4", {}, `${spec.title} (${spec.statistic} per ${spec.period} s, ${spec.unit})`), root, legend, thresholds);
}

async function loadMetrics() {
  const data = await api("metrics?" + where());
  $("#charts").replaceChildren(...data.charts.map((c) => chart(c, data.now)));
  $("#alarms tbody").replaceChildren(...data.alarms.map((a) => h("tr", { "data-alarm": a.name },
    h("td", {}, a.name), h("td", { class: stateClass(a.state) }, a.state),
    h("td", {}, `${a.metric} ${a.statistic} ${a.operator} ${a.threshold} (period ${a.period} s)`),
    h("td", { class: "history" }, ...a.history.map((item) => h("div", {}, `${item.timestamp.slice(0, 19)}  ${item.summary}`))))));
}

// -- SNS: the outbox ------------------------------------------------------------------------------

async function loadOutbox() {
  const { messages } = await api("outbox");
  $("#outbox-empty").hidden = messages.length > 0;
  $("#outbox").replaceChildren(...messages.map((m) => h("li", { class: "message", "data-file": m.file },
    h("details", {}, h("summary", {}, h("strong", { class: "subject" }, m.subject), `  to ${m.to}, ${m.date}`),
      h("pre", {}, m.body)))));
}

// -- views and refreshing ----------------------------------------------------------------------------

const LOADERS = { overview: [loadOverview, 5000], items: [loadItems, 5000], lambda: [loadLogs, 2000],
                  cloudwatch: [loadMetrics, 5000], outbox: [loadOutbox, 5000] };

async function refresh() {
  try {
    await LOADERS[state.view][0]();
    showError(null);
  } catch (error) {
    showError(error);
  }
}

function show(view) {
  state.view = LOADERS[view] ? view : "overview";
  for (const section of document.querySelectorAll(".view")) section.hidden = section.id !== "view-" + state.view;
  for (const link of document.querySelectorAll("nav a")) link.classList.toggle("active", link.dataset.view === state.view);
  state.timers.forEach(clearInterval);
  state.timers = [setInterval(refresh, LOADERS[state.view][1])];
  refresh();
}

function guard(handler) {
  return (event) => handler(event).catch(showError);
}

async function start() {
  $("#test-event").value = JSON.stringify({ httpMethod: "GET", path: "/items", headers: {}, queryStringParameters: null,
                                            pathParameters: null, body: null, isBase64Encoded: false }, null, 2);
  $("#create-form").addEventListener("submit", guard(createItem));
  $("#edit-form").addEventListener("submit", guard(saveEdit));
  $("#edit-cancel").addEventListener("click", () => { $("#edit-form").hidden = true; state.editing = null; });
  $("#test-run").addEventListener("click", guard(runTest));
  $("#function-select").addEventListener("change", guard(loadLogs));
  $("#items-next").addEventListener("click", guard(async () => { state.itemsPage += 1; await loadItems(); }));
  $("#items-first").addEventListener("click", guard(async () => { state.itemsPage = 0; await loadItems(); }));
  $("#items-limit").addEventListener("change", guard(async () => { state.itemsPages = [null]; state.itemsPage = 0; await loadItems(); }));
  $("#stack").addEventListener("change", guard(async () => {
    [state.region, state.stack] = $("#stack").value.split("/");
    state.itemsPages = [null]; state.itemsPage = 0;
    await loadOverview();
    show(state.view);
  }));
  window.addEventListener("hashchange", () => show(location.hash.slice(1)));
  try {
    await loadStacks();
    await loadOverview();
  } catch (error) {
    showError(error);
  }
  show(location.hash.slice(1) || "overview");
}

document.addEventListener("DOMContentLoaded", start);
