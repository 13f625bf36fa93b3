// Events: the received events, live over Server-Sent Events, with detail, executions and replay.

import { api, stream } from "./api.js";
import { $, clear, h, pretty, when } from "./dom.js";
import { expiresInMs, notify } from "./session.js";

let root;
let next = null;
let live = null;
let lastId = null;
let selected = null;
const seen = new Set();

export async function start(view) {
  root = view;
  const types = await api("/api/event-types");
  const select = $("#ev-type", root);
  for (const item of types.items) select.append(h("option", { value: item.eventType }, item.eventType));
  select.addEventListener("change", reload);
  $("#ev-since", root).addEventListener("change", reload);
  $("#ev-more", root).addEventListener("click", () => load(false));
  $("#ev-close", root).addEventListener("click", () => { $("#ev-detail", root).hidden = true; });
  const replay = $("#ev-replay", root);
  if (replay) replay.addEventListener("click", replaySelected);
  await load(true);
}

export async function show(params) {
  if (!live) connect();
  if (params[0]) await open(Number(params[0]));
}

export function leave() {
  if (live) live.abort();
  live = null;
  setLive("off");
}

function query() {
  const parts = new URLSearchParams({ limit: "50" });
  const type = $("#ev-type", root).value;
  const hours = Number($("#ev-since", root).value);
  if (type) parts.set("eventType", type);
  if (hours) parts.set("since", new Date(Date.now() - hours * 3600_000).toISOString());
  return parts;
}

async function reload() {
  seen.clear();
  await load(true);
  leave();
  connect();
}

async function load(fresh) {
  const parts = query();
  if (!fresh && next) parts.set("cursor", next);
  const page = await api(`/api/events?${parts}`);
  const body = $("#ev-table tbody", root);
  if (fresh) clear(body);
  for (const event of page.items) body.append(row(event));
  if (fresh && page.items.length) lastId = String(page.items[0].id);
  next = page.next;
  $("#ev-more", root).hidden = !next;
}

function row(event, isNew = false) {
  seen.add(event.id);
  return h("tr", {
    dataset: { id: event.id, type: event.eventType },
    className: isNew ? "fresh" : "",
    onclick: () => { window.location.hash = `#events/${event.id}`; },
  }, h("td", {}, when(event.receivedAt)),
  h("td", {}, event.eventType,
    event.flowsSkipped ? h("span", { className: "badge warn", title: event.flowsSkipped },
      "over quota") : ""),
  h("td", {}, event.source + (event.endpointId ? ` · ${event.endpointId}` : "")));
}

function setLive(state) {
  $("#ev-live", root).dataset.state = state;
}

function connect() {
  const controller = new AbortController();
  live = controller;
  const parts = new URLSearchParams();
  const type = $("#ev-type", root).value;
  if (type) parts.set("eventType", type);
  if (lastId) parts.set("after", lastId);
  stream(`/api/events/stream?${parts}`, {
    signal: controller.signal,
    lastEventId: null,
    onMessage(name, data, id) {
      if (name === "ready") setLive("on");
      if (name !== "received") return;
      const event = JSON.parse(data);
      lastId = id;
      if (seen.has(event.id)) return;
      $("#ev-table tbody", root).prepend(row(event, true));
    },
  }).then(
    () => retry(controller, 100),
    (error) => {
      if (controller.signal.aborted) return;
      setLive("error");
      notify("error", `The live event list stopped: ${error.message}`);
      retry(controller, 5000);
    },
  );
}

function retry(controller, delay) {
  // The server ends the stream when the token expires; the session renews it, so reconnect.
  if (controller.signal.aborted || live !== controller) return;
  setTimeout(() => {
    if (live === controller) connect();
  }, expiresInMs() < 0 ? 1000 : delay);
}

async function open(id) {
  const [event, executions] = await Promise.all([
    api(`/api/events/${id}`),
    api(`/api/events/${id}/executions`),
  ]);
  selected = event;
  $("#ev-detail-title", root).textContent = `${event.eventType} · ${when(event.receivedAt)}`;
  $("#ev-payload", root).textContent = pretty(event.payload);
  renderExecutions($("#ev-executions", root), executions.items);
  if (event.flowsSkipped) {
    $("#ev-executions", root).prepend(h("p", { className: "notice warn" }, event.flowsSkipped));
  }
  $("#ev-detail", root).hidden = false;
}

export function renderExecutions(box, items) {
  clear(box);
  if (!items.length) {
    box.append(h("p", { className: "muted" }, "No executions."));
    return;
  }
  for (const execution of items) {
    box.append(h("details", { className: "execution" },
      h("summary", {}, h("span", { className: `state-${execution.status}` }, execution.status),
        ` · flow ${execution.flowId} v${execution.flowVersion} · ${when(execution.createdAt)}`,
        execution.error ? ` · ${execution.error}` : ""),
      execution.steps.map((step) => h("div", { className: "step" },
        h("h4", {}, `${step.id}: `, h("span", { className: `state-${step.status}` }, step.status),
          step.durationMs !== null ? ` (${Math.round(step.durationMs)} ms)` : ""),
        h("pre", { className: "json" }, pretty({ request: step.request, response: step.response, error: step.error }))))));
  }
}

async function replaySelected() {
  if (!selected) return;
  try {
    await api(`/api/events/${selected.id}/replay`, { method: "POST", json: {} });
    notify("success", "The event is queued to run through the flows again.");
  } catch (error) {
    notify("error", error.message);
  }
}
