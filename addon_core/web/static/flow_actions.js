// The flow editor's actions: Clockify operations with forms generated from the catalogue,
// and HTTP requests (Universal Webhook); each input names its field (`actions[0].params.x`).

import { api } from "./api.js";
import { canWrite, clear, h } from "./dom.js";
import { bodyForm, parameterForm, parseValue } from "./schemaform.js";
import { notify } from "./session.js";

let operations = null;
const described = new Map();

function describe(operationId) {
  if (!described.has(operationId)) described.set(operationId, api(`/api/operations/${encodeURIComponent(operationId)}`));
  return described.get(operationId);
}

async function loadOperations(datalist) {
  if (operations) return operations;
  const found = [];
  let cursor = null;
  do {
    const page = await api(`/api/operations?limit=200${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ""}`);
    found.push(...page.items);
    cursor = page.next;
  } while (cursor);
  operations = found;
  clear(datalist).append(...operations.map((op) => h("option", { value: op.operationId }, `${op.method} ${op.summary || op.path}`)));
  return operations;
}

export class ActionList {
  constructor(box) {
    this.box = box;
    this.items = [];
  }

  clear() {
    clear(this.box);
    this.items = [];
  }

  read() {
    return this.items.map((item) => item.read());
  }

  renumber() {
    this.items.forEach((item, index) => item.renumber(index));
  }

  nextId(base) {
    const taken = new Set(this.items.map((item) => item.idInput.value));
    let id = base;
    for (let n = 2; taken.has(id); n += 1) id = `${base}_${n}`;
    return id;
  }

  /** Add the operation named in the search input (offered from the catalogue). */
  async addFromSearch(input, datalist) {
    await loadOperations(datalist);
    const wanted = input.value.trim();
    const found = operations.find((op) => op.operationId === wanted);
    if (!found) {
      notify("error", `Pick an operation from the list (no operation is called "${wanted}").`);
      return;
    }
    const id = this.nextId(found.operationId.replace(/([a-z0-9])([A-Z])/g, "$1_$2").toLowerCase());
    await this.add({ id, type: "clockify", operation: found.operationId, params: {} });
    input.value = "";
  }

  async add(action) {
    const idInput = h("input", { value: action.id, placeholder: "action id" });
    const title = action.type === "http" ? "HTTP request" : action.operation;
    const node = h("div", { className: "action", dataset: { type: action.type } },
      h("header", {}, h("strong", {}, title), h("label", {}, "Id", idInput)));
    const entry = { node, idInput, read: null, renumber: null };
    if (action.type === "clockify") await clockifyAction(entry, action);
    else httpAction(entry, action);
    node.append(h("button", { type: "button", className: "write", onclick: () => {
      node.remove();
      this.items = this.items.filter((other) => other !== entry);
      this.renumber();
    } }, "Remove the action"));
    this.items.push(entry);
    this.box.append(node);
    this.renumber();
  }
}

async function clockifyAction(entry, action) {
  let operation;
  try {
    operation = await describe(action.operation);
  } catch (error) {
    operation = { parameters: [], body: { schema: {}, required: false }, summary: error.message };
  }
  const slot = h("div");
  entry.node.append(h("p", { className: "muted" }, `${operation.method || ""} ${operation.path || ""} ${operation.summary || ""}`), slot);
  let params;
  let body;
  entry.renumber = (index) => {
    // The forms are rebuilt with their current values under the new index.
    const prefix = `actions[${index}]`;
    entry.idInput.dataset.field = `${prefix}.id`;
    const values = params ? params.read() : action.params || {};
    const bodyValue = body ? body.read() : action.body;
    params = parameterForm(operation.parameters || [], values, `${prefix}.params`);
    body = bodyForm(operation.body, bodyValue, `${prefix}.body`);
    clear(slot).append(params.node, body.node);
    for (const control of slot.querySelectorAll("input, select, textarea")) control.disabled = !canWrite();
  };
  entry.read = () => {
    const result = { id: entry.idInput.value.trim(), type: "clockify", operation: action.operation, params: params.read() };
    const value = body.read();
    if (value !== undefined) result.body = value;
    return result;
  };
}

function httpAction(entry, action) {
  const method = h("select", {}, ["POST", "PUT", "PATCH", "DELETE", "GET"].map((m) => h("option", { value: m, selected: m === action.method }, m)));
  const url = h("input", { value: action.url || "", placeholder: "https://example.com/hook" });
  const headers = h("textarea", { rows: 2, value: JSON.stringify(action.headers || {}) });
  const body = h("textarea", { rows: 4, value: action.body === null || action.body === undefined ? "" : JSON.stringify(action.body, null, 2) });
  entry.node.append(h("div", { className: "grid" }, h("label", {}, "Method", method), h("label", {}, "URL", url)),
    h("label", {}, "Headers (JSON object)", headers), h("label", {}, "Body (JSON; templates allowed in strings)", body));
  entry.renumber = (index) => {
    entry.idInput.dataset.field = `actions[${index}].id`;
    method.dataset.field = `actions[${index}].method`;
    url.dataset.field = `actions[${index}].url`;
    headers.dataset.field = `actions[${index}].headers`;
    body.dataset.field = `actions[${index}].body`;
  };
  entry.read = () => {
    const result = { id: entry.idInput.value.trim(), type: "http", method: method.value, url: url.value.trim(), headers: parseValue(headers.value.trim(), "json") || {} };
    const value = parseValue(body.value.trim(), "json");
    if (value !== undefined) result.body = value;
    return result;
  };
}
