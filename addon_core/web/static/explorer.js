// Explorer: search Clockify's operations, fill a generated form, run it, read the answer,
// browse the history and turn a call into a flow action.

import { api } from "./api.js";
import { $, canWrite, clear, h, pretty, showErrors, when } from "./dom.js";
import { newFlowWith } from "./flows.js";
import { bodyForm, parameterForm } from "./schemaform.js";
import { notify } from "./session.js";

let root;
let next = null;
let operation = null;
let form = null;
let searchTimer = null;

export async function start(view) {
  root = view;
  $("#ex-q", root).addEventListener("input", () => {
    clearTimeout(searchTimer);
    searchTimer = setTimeout(() => search(true), 200);
  });
  $("#ex-tag", root).addEventListener("change", () => search(true));
  $("#ex-more", root).addEventListener("click", () => search(false));
  $("#ex-form", root).addEventListener("submit", (event) => { event.preventDefault(); run(); });
  await search(true);
  const tags = new Set();
  let cursor = null;
  do {
    const page = await api(`/api/operations?limit=200${cursor ? `&cursor=${cursor}` : ""}`);
    for (const item of page.items) if (item.tag) tags.add(item.tag);
    cursor = page.next;
  } while (cursor);
  for (const tag of [...tags].sort()) $("#ex-tag", root).append(h("option", { value: tag }, tag));
}

export async function show() {
  await calls();
}

async function search(fresh) {
  const parts = new URLSearchParams({ limit: "50" });
  const q = $("#ex-q", root).value.trim();
  const tag = $("#ex-tag", root).value;
  if (q) parts.set("q", q);
  if (tag) parts.set("tag", tag);
  if (!fresh && next) parts.set("cursor", next);
  const page = await api(`/api/operations?${parts}`);
  const list = $("#ex-ops", root);
  if (fresh) clear(list);
  for (const item of page.items) {
    list.append(h("li", { dataset: { operation: item.operationId }, onclick: () => open(item.operationId) },
      h("span", {}, h("span", { className: "method" }, item.method), " ", item.operationId,
        h("br"), h("small", { className: "muted" }, item.summary || item.path))));
  }
  next = page.next;
  $("#ex-more", root).hidden = !next;
}

async function open(operationId) {
  operation = await api(`/api/operations/${encodeURIComponent(operationId)}`);
  $("#ex-op-title", root).textContent = `${operation.method} ${operation.operationId}`;
  $("#ex-op-summary", root).textContent = `${operation.summary || ""} (${operation.path})`;
  const params = parameterForm(operation.parameters, {}, "params");
  const body = bodyForm(operation.body, undefined, "body");
  clear($("#ex-params", root)).append(params.node);
  clear($("#ex-body", root)).append(body.node);
  form = { params, body };
  const allowed = !operation.writes || canWrite();
  $("#ex-run", root).disabled = !allowed;
  $("#ex-run", root).title = allowed ? "" : "Running an operation that writes needs the role OWNER or ADMIN";
  showErrors($("#ex-errors", root), []);
  $("#ex-answer", root).hidden = true;
  $("#ex-op", root).hidden = false;
}

async function run() {
  const request = { params: form.params.read() };
  const body = form.body.read();
  if (body !== undefined) request.body = body;
  $("#ex-run", root).disabled = true;
  try {
    const answer = await api(`/api/operations/${encodeURIComponent(operation.operationId)}/execute`, { method: "POST", json: request });
    showErrors($("#ex-errors", root), []);
    $("#ex-answer-status", root).textContent = `${answer.status} · ${Math.round(answer.latencyMs)} ms`;
    $("#ex-answer-body", root).textContent = pretty(answer.body);
    $("#ex-answer", root).hidden = false;
    await calls();
  } catch (error) {
    showErrors($("#ex-errors", root), error.errors.length ? error.errors : [{ field: "request", message: error.message }], $("#ex-form", root));
  } finally {
    $("#ex-run", root).disabled = false;
  }
}

async function calls() {
  const page = await api("/api/calls?limit=20");
  const body = clear($("#ex-calls tbody", root));
  for (const call of page.items) {
    const turn = canWrite()
      ? h("button", { type: "button", className: "write", onclick: (event) => { event.stopPropagation(); toAction(call.id); } }, "Turn into a flow action")
      : null;
    body.append(h("tr", { dataset: { id: call.id }, onclick: () => showCall(call.id) },
      h("td", {}, when(call.at)), h("td", {}, call.operationId),
      h("td", {}, call.status ?? call.error ?? ""), h("td", {}, turn)));
  }
}

async function showCall(id) {
  const call = await api(`/api/calls/${id}`);
  $("#ex-answer-status", root).textContent = `${call.status ?? "error"} · ${call.operationId}`;
  $("#ex-answer-body", root).textContent = pretty(call.response ?? call.error);
  $("#ex-answer", root).hidden = false;
  $("#ex-op", root).hidden = false;
}

async function toAction(id) {
  try {
    newFlowWith(await api(`/api/calls/${id}/action`));
  } catch (error) {
    notify("error", error.message);
  }
}
