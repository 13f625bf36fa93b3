// Coverage (Universal Webhook): every Clockify event type and how it reaches the workspace.

import { api } from "./api.js";
import { $, clear, h } from "./dom.js";

let root;

export async function start(view) {
  root = view;
}

export async function show() {
  const coverage = await api("/api/coverage");
  const { manifest, api: byApi, none } = coverage.summary;
  $("#cv-summary", root).textContent = `${manifest} by the manifest, ${byApi} registered through the API, ${none} not delivered`;
  const body = clear($("#cv-table tbody", root));
  for (const item of coverage.items) {
    body.append(h("tr", { dataset: { type: item.eventType } }, h("td", {}, item.eventType),
      h("td", { className: item.delivery === "none" ? "state-failed" : "state-succeeded" }, item.delivery),
      h("td", {}, item.reason || "")));
  }
}
