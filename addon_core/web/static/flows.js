// Flows: the list, and an editor that builds the flow document from forms (raw JSON optional),
// with field-level errors, dry run, versions with a diff, executions, pause and resume.

import { api } from "./api.js";
import { $, canWrite, clear, h, pretty, showErrors, when } from "./dom.js";
import { renderExecutions } from "./events.js";
import { canonical, diffLines } from "./diff.js";
import { ActionList } from "./flow_actions.js";
import { renderGallery } from "./gallery.js";
import { parseValue } from "./schemaform.js";
import { notify } from "./session.js";

const OPERATORS = ["eq", "ne", "gt", "gte", "lt", "lte", "contains", "not_contains", "starts_with",
  "ends_with", "in", "not_in", "exists", "not_exists", "matches"];
const NO_VALUE = new Set(["exists", "not_exists"]);
let root;
let flow = null; // the stored flow being edited, or null for a new one
let actions = null; // the ActionList of the editor
let eventTypes = [];
let pendingAction = null;
let lastFocused = null;
let hintPaths = [];

export async function start(view) {
  root = view;
  eventTypes = (await api("/api/event-types")).items.map((item) => item.eventType);
  const form = $("#fl-form", root);
  form.addEventListener("submit", (event) => { event.preventDefault(); save(); });
  form.addEventListener("focusin", (event) => {
    if (event.target.matches("input:not([type=checkbox]), textarea")) lastFocused = event.target;
  });
  $("#fl-new", root)?.addEventListener("click", () => { window.location.hash = "#flows/new"; });
  $("#fl-back", root).addEventListener("click", () => { window.location.hash = "#flows"; });
  $("#fl-add-rule", root).addEventListener("click", () => addRule({ path: "event.", op: "eq", value: "" }));
  actions = new ActionList($("#fl-actions", root));
  $("#fl-add-action", root).addEventListener("click", () => actions.addFromSearch($("#fl-op-search", root), $("#fl-op-list", root)));
  $("#fl-add-http", root)?.addEventListener("click", () => actions.add({ id: actions.nextId("request"), type: "http", method: "POST", url: "https://", headers: {}, body: null }));
  $("#fl-source", root).addEventListener("change", () => renderTrigger({ source: $("#fl-source", root).value, events: [] }));
  $("#fl-event-filter", root).addEventListener("input", filterEvents);
  $("#fl-raw-box", root).addEventListener("toggle", () => {
    if ($("#fl-raw-box", root).open) $("#fl-raw", root).value = JSON.stringify(collect(), null, 2);
  });
  $("#fl-raw-apply", root).addEventListener("click", applyRaw);
  $("#fl-dry-run", root).addEventListener("click", openDryRun);
  $("#fl-dry-go", root).addEventListener("click", dryRun);
  $("#fl-toggle", root)?.addEventListener("click", togglePause);
  $("#fl-delete", root)?.addEventListener("click", remove);
  $("#fl-gallery-box", root)?.addEventListener("toggle", (event) => {
    if (event.target.open) renderGallery($("#fl-gallery", root)).catch((error) => notify("error", error.message));
  });
}

export async function show(params) {
  const [id] = params;
  $("#fl-list-view", root).hidden = Boolean(id);
  $("#fl-editor", root).hidden = !id;
  if (!id) return list();
  if (id === "new") return edit(null);
  return edit(await api(`/api/flows/${encodeURIComponent(id)}`));
}

/** Open the editor on a new flow holding `action` (the explorer's "turn into a flow action"). */
export function newFlowWith(action) {
  pendingAction = action;
  window.location.hash = "#flows/new";
}

async function list() {
  const page = await api("/api/flows?limit=200");
  const body = clear($("#fl-table tbody", root));
  for (const item of page.items) {
    const state = item.paused ? "paused" : item.enabled ? "enabled" : "disabled";
    body.append(h("tr", { dataset: { id: item.id }, onclick: () => { window.location.hash = `#flows/${item.id}`; } },
      h("td", {}, item.name),
      h("td", {}, `${item.trigger.source}: ${item.trigger.events.join(", ")}`),
      h("td", { className: `state-${state}`, title: item.pausedReason || "" }, state),
      h("td", {}, `v${item.version}`)));
  }
  $("#fl-empty", root).hidden = page.items.length > 0;
}

// --- the editor -------------------------------------------------------------------------------

async function edit(stored) {
  flow = stored;
  const document_ = stored || { name: "", enabled: true, trigger: { source: "clockify", events: [] }, conditions: { mode: "all", rules: [] }, actions: [] };
  if (!stored && pendingAction) document_.actions = [pendingAction];
  pendingAction = null;
  $("#fl-editor-title", root).textContent = stored ? `${stored.name} (v${stored.version})` : "New flow";
  showErrors($("#fl-errors", root), []);
  $("#fl-dry-box", root).hidden = true;
  await fill(document_);
  const toggle = $("#fl-toggle", root);
  if (toggle) {
    toggle.hidden = !stored;
    toggle.textContent = stored && (stored.paused || !stored.enabled) ? "Resume" : "Pause";
  }
  const del = $("#fl-delete", root);
  if (del) { del.hidden = !stored; del.textContent = "Delete"; delete del.dataset.armed; }
  $("#fl-history", root).hidden = !stored;
  if (stored) await history();
  for (const control of $("#fl-form", root).querySelectorAll("input, select, textarea")) {
    control.disabled = !canWrite();
  }
}

async function fill(document_) {
  $("#fl-name", root).value = document_.name || "";
  $("#fl-enabled", root).checked = document_.enabled !== false;
  await renderTrigger(document_.trigger || { source: "clockify", events: [] });
  $("#fl-mode", root).value = (document_.conditions && document_.conditions.mode) || "all";
  clear($("#fl-rules", root));
  for (const rule of (document_.conditions && document_.conditions.rules) || []) addRule(rule);
  actions.clear();
  for (const action of document_.actions || []) await actions.add(action);
}

async function renderTrigger(trigger) {
  $("#fl-source", root).value = trigger.source;
  const custom = trigger.source === "custom";
  $("#fl-endpoint-row", root).hidden = !custom;
  $("#fl-custom-events-row", root).hidden = !custom;
  $("#fl-events", root).hidden = custom;
  $("#fl-event-filter", root).closest("label").hidden = custom;
  if (custom) {
    const endpoints = (await api("/api/endpoints?limit=200")).items;
    const select = clear($("#fl-endpoint", root));
    for (const endpoint of endpoints) select.append(h("option", { value: endpoint.id, selected: endpoint.id === trigger.endpoint }, endpoint.name));
    $("#fl-custom-events", root).value = (trigger.events || []).join(", ");
    return;
  }
  const chosen = new Set(trigger.events || []);
  const box = clear($("#fl-events", root));
  for (const type of ["*", ...eventTypes]) {
    box.append(h("label", { dataset: { type } },
      h("input", { type: "checkbox", value: type, checked: chosen.has(type), onchange: loadHints }),
      type === "*" ? "Every event type (*)" : type));
  }
  filterEvents();
  await loadHints();
}

function filterEvents() {
  const term = $("#fl-event-filter", root).value.trim().toUpperCase();
  for (const label of $("#fl-events", root).children) {
    const checked = label.querySelector("input").checked;
    label.hidden = Boolean(term) && !checked && !label.dataset.type.includes(term);
  }
}

function chosenEvents() {
  if ($("#fl-source", root).value === "custom") {
    return $("#fl-custom-events", root).value.split(",").map((part) => part.trim()).filter(Boolean);
  }
  return [...$("#fl-events", root).querySelectorAll("input:checked")].map((input) => input.value);
}

function addRule(rule) {
  const op = h("select", { dataset: { field: "op" } }, OPERATORS.map((name) => h("option", { value: name, selected: name === rule.op }, name)));
  const value = h("input", { value: rule.value === undefined || rule.value === null ? "" : typeof rule.value === "string" ? rule.value : JSON.stringify(rule.value), placeholder: "value or {{ template }}" });
  const path = h("input", { value: rule.path || "", list: "fl-paths", placeholder: "event.description" });
  path.setAttribute("list", "fl-paths");
  const sync = () => { value.hidden = NO_VALUE.has(op.value); };
  op.addEventListener("change", sync);
  sync();
  const node = h("div", { className: "rule" }, path, op, value,
    h("button", { type: "button", className: "write", onclick: () => { node.remove(); renumber(); } }, "Remove"));
  node._read = () => {
    const result = { path: path.value.trim(), op: op.value };
    if (!NO_VALUE.has(op.value)) result.value = ruleValue(op.value, value.value);
    return result;
  };
  $("#fl-rules", root).append(node);
  renumber();
}

function ruleValue(op, text) {
  if (op === "in" || op === "not_in") {
    const parsed = parseValue(text.trim(), "json");
    return Array.isArray(parsed) ? parsed : text.split(",").map((part) => part.trim()).filter(Boolean);
  }
  if (["gt", "gte", "lt", "lte", "eq", "ne"].includes(op) && /^-?\d+(\.\d+)?$/.test(text.trim())) return Number(text);
  if (text === "true" || text === "false") return text === "true";
  return text;
}

function renumber() {
  [...$("#fl-rules", root).children].forEach((node, index) => {
    const [path, op, value] = node.querySelectorAll("input, select");
    path.dataset.field = `conditions.rules[${index}].path`;
    op.dataset.field = `conditions.rules[${index}].op`;
    value.dataset.field = `conditions.rules[${index}].value`;
  });
}

function collect() {
  const source = $("#fl-source", root).value;
  const trigger = { source, events: chosenEvents() };
  if (source === "custom") trigger.endpoint = $("#fl-endpoint", root).value;
  return {
    name: $("#fl-name", root).value.trim(),
    enabled: $("#fl-enabled", root).checked,
    trigger,
    conditions: { mode: $("#fl-mode", root).value, rules: [...$("#fl-rules", root).children].map((node) => node._read()) },
    actions: actions.read(),
  };
}

async function applyRaw() {
  let parsed;
  try {
    parsed = JSON.parse($("#fl-raw", root).value);
  } catch (error) {
    showErrors($("#fl-errors", root), [{ field: "document", message: `not JSON: ${error.message}` }], root);
    return;
  }
  showErrors($("#fl-errors", root), [], root);
  await fill(parsed);
}

async function save() {
  const document_ = collect();
  try {
    const saved = flow
      ? await api(`/api/flows/${flow.id}`, { method: "PUT", json: { ...document_, version: flow.version } })
      : await api("/api/flows", { method: "POST", json: document_ });
    notify("success", `Saved ${saved.name} (version ${saved.version}).`);
    if (saved.signingSecret) notify("info", `Signing secret (shown once): ${saved.signingSecret}`);
    if (!flow) {
      flow = saved;
      rememberInAddress(saved.id);
    }
    await edit(saved);
    return saved;
  } catch (error) {
    showErrors($("#fl-errors", root), error.errors && error.errors.length ? error.errors : [{ field: "flow", message: error.message }], root);
    notify("error", error.message);
    return null;
  }
}

function rememberInAddress(id) {
  window.history.replaceState(null, "", `#flows/${id}`);
}

// --- template hints --------------------------------------------------------------------------

async function loadHints() {
  const [type] = chosenEvents().filter((name) => name !== "*");
  const box = clear($("#fl-hints", root));
  hintPaths = [];
  if (type) {
    const sample = await api(`/api/event-types/${encodeURIComponent(type)}/sample`);
    if (sample.event) {
      hintPaths = flatten(sample.event.payload, "event");
      $("#fl-dry-event", root).value = JSON.stringify(sample.event.payload, null, 2);
    } else {
      box.append(h("li", { className: "muted" }, `No ${type} event received yet: hints appear once one arrives.`));
    }
  }
  for (const path of ["event_type", "workspace_id", ...hintPaths]) {
    box.append(h("li", {}, h("button", { type: "button", onclick: () => insert(`{{ ${path} }}`) }, path)));
  }
  let list = $("#fl-paths", root);
  if (!list) { list = h("datalist", { id: "fl-paths" }); root.append(list); }
  clear(list).append(...hintPaths.map((path) => h("option", { value: path })));
}

function flatten(value, prefix, out = []) {
  if (out.length > 200) return out;
  if (value && typeof value === "object" && !Array.isArray(value)) {
    for (const [key, child] of Object.entries(value)) flatten(child, `${prefix}.${key}`, out);
  } else {
    out.push(prefix);
  }
  return out;
}

function insert(text) {
  if (!lastFocused || lastFocused.disabled) {
    notify("info", `Click into a field first, then on the hint (${text}).`);
    return;
  }
  const start = lastFocused.selectionStart ?? lastFocused.value.length;
  lastFocused.value = lastFocused.value.slice(0, start) + text + lastFocused.value.slice(lastFocused.selectionEnd ?? start);
  lastFocused.focus();
}

// --- dry run, history, pause, delete ----------------------------------------------------------

function openDryRun() {
  const select = clear($("#fl-dry-type", root));
  const events = chosenEvents();
  for (const type of events.length ? events : eventTypes) select.append(h("option", { value: type }, type));
  if (!$("#fl-dry-event", root).value) $("#fl-dry-event", root).value = "{}";
  $("#fl-dry-box", root).hidden = false;
  $("#fl-dry-box", root).scrollIntoView({ block: "nearest" });
}

async function dryRun() {
  let event;
  try {
    event = JSON.parse($("#fl-dry-event", root).value || "{}");
  } catch (error) {
    notify("error", `The event payload is not JSON: ${error.message}`);
    return;
  }
  if (canWrite() && (!flow || canonical(collect()) !== canonical(stored(flow)))) {
    // The dry run reads the stored flow: save what the form holds first.
    const saved = await save();
    if (!saved) return;
    $("#fl-dry-box", root).hidden = false;
  }
  if (!flow) {
    notify("error", "Save the flow before a dry run.");
    return;
  }
  try {
    const result = await api(`/api/flows/${flow.id}/test`, { method: "POST", json: { eventType: $("#fl-dry-type", root).value, event } });
    renderDryRun(result);
  } catch (error) {
    notify("error", error.message);
  }
}

function stored(item) {
  const { name, enabled, trigger, conditions, actions: steps } = item;
  return { name, enabled, trigger, conditions, actions: steps };
}

function renderDryRun(result) {
  const box = clear($("#fl-dry-result", root));
  box.append(h("p", { className: result.matched ? "state-succeeded" : "state-failed" },
    result.matched ? "The flow would run on this event." : `The flow would not run: ${result.triggerMatched ? "the conditions do not pass" : "the trigger does not list this event type"}.`));
  for (const rule of result.conditions) {
    box.append(h("p", {}, `${rule.outcome ? "✓" : "✗"} ${rule.path} ${rule.op} ${JSON.stringify(rule.value)} (found ${JSON.stringify(rule.left)})`));
  }
  for (const step of result.steps) {
    box.append(h("div", { className: "step", dataset: { step: step.id } }, h("h4", {}, `${step.id}: ${step.sent ? "sent (read only)" : step.note || step.error || "not sent"}`),
      h("pre", { className: "json" }, pretty({ request: step.request, response: step.response, error: step.error }))));
  }
}

async function history() {
  const [versions, executions] = await Promise.all([
    api(`/api/flows/${flow.id}/versions?limit=20`),
    api(`/api/flows/${flow.id}/executions?limit=20`),
  ]);
  const list = clear($("#fl-versions", root));
  $("#fl-diff", root).hidden = true;
  for (const version of versions.items) {
    list.append(h("li", {}, h("span", {}, `v${version.version} · ${when(version.savedAt)}`),
      version.version === flow.version ? h("span", { className: "muted" }, "current") :
        h("button", { type: "button", onclick: () => diffWith(version.version) }, "Diff with the current")));
  }
  renderExecutions($("#fl-executions", root), executions.items);
}

async function diffWith(version) {
  const [old, current] = await Promise.all([
    api(`/api/flows/${flow.id}/versions/${version}`),
    api(`/api/flows/${flow.id}/versions/${flow.version}`),
  ]);
  const box = clear($("#fl-diff", root));
  for (const [mark, line] of diffLines(pretty(old.document).split("\n"), pretty(current.document).split("\n"))) {
    box.append(h("span", { className: mark === "+" ? "add" : mark === "-" ? "del" : "" }, `${mark} ${line}\n`));
  }
  box.hidden = false;
}

async function togglePause() {
  try {
    let saved;
    if (flow.paused) saved = await api(`/api/flows/${flow.id}/resume`, { method: "POST" });
    else saved = await api(`/api/flows/${flow.id}`, { method: "PUT", json: { ...flow, enabled: !flow.enabled } });
    notify("success", saved.enabled && !saved.paused ? "The flow runs again." : "The flow is paused.");
    await edit(saved);
  } catch (error) {
    notify("error", error.message);
  }
}

async function remove() {
  const button = $("#fl-delete", root);
  if (!button.dataset.armed) {
    button.dataset.armed = "true";
    button.textContent = "Click again to delete";
    return;
  }
  try {
    await api(`/api/flows/${flow.id}`, { method: "DELETE" });
    notify("success", `Deleted ${flow.name}.`);
    window.location.hash = "#flows";
  } catch (error) {
    notify("error", error.message);
  }
}
