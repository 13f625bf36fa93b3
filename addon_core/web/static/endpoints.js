// Endpoints (Universal Webhook): create, show the URL and secret once, rotate, test, deliveries.

import { api } from "./api.js";
import { $, canWrite, clear, h, showErrors, when } from "./dom.js";
import { notify } from "./session.js";

let root;
let selected = null;

export async function start(view) {
  root = view;
  $("#ep-form", root)?.addEventListener("submit", (event) => { event.preventDefault(); create(); });
  $("#ep-copy", root).addEventListener("click", copySecret);
  $("#ep-test", root)?.addEventListener("click", sendTest);
  $("#ep-rotate", root)?.addEventListener("click", rotate);
}

export async function show() {
  const page = await api("/api/endpoints?limit=200");
  const body = clear($("#ep-table tbody", root));
  for (const endpoint of page.items) {
    body.append(h("tr", { dataset: { id: endpoint.id }, onclick: () => open(endpoint) },
      h("td", {}, endpoint.name), h("td", {}, h("code", {}, endpoint.url)),
      h("td", {}, endpoint.previousSecretExpiresAt ? `old secret valid until ${when(endpoint.previousSecretExpiresAt)}` : "")));
  }
}

function revealSecret(endpoint, secret) {
  $("#ep-secret-url", root).textContent = endpoint.url;
  $("#ep-secret-value", root).textContent = secret;
  $("#ep-secret", root).hidden = false;
}

async function create() {
  const request = { name: $("#ep-name", root).value.trim() };
  const header = $("#ep-header", root).value.trim();
  if (header) request.eventTypeHeader = header;
  try {
    const created = await api("/api/endpoints", { method: "POST", json: request });
    showErrors($("#ep-errors", root), [], root);
    revealSecret(created, created.secret);
    $("#ep-name", root).value = "";
    await show();
  } catch (error) {
    showErrors($("#ep-errors", root), error.errors.length ? error.errors : [{ field: "name", message: error.message }], root);
  }
}

async function copySecret() {
  try {
    await navigator.clipboard.writeText($("#ep-secret-value", root).textContent);
    notify("success", "The secret is on the clipboard.");
  } catch {
    const range = document.createRange();
    range.selectNodeContents($("#ep-secret-value", root));
    window.getSelection().removeAllRanges();
    window.getSelection().addRange(range);
    notify("info", "Press Ctrl+C to copy the selected secret.");
  }
}

async function open(endpoint) {
  selected = endpoint;
  $("#ep-detail-title", root).textContent = `${endpoint.name} · ${endpoint.url}`;
  $("#ep-detail", root).hidden = false;
  await deliveries();
}

async function deliveries() {
  const page = await api(`/api/endpoints/${selected.id}/deliveries?limit=20`);
  const body = clear($("#ep-deliveries tbody", root));
  if (!page.items.length) body.append(h("tr", {}, h("td", { colSpan: 2, className: "muted" }, "No deliveries yet.")));
  for (const event of page.items) {
    body.append(h("tr", { onclick: () => { window.location.hash = `#events/${event.id}`; } },
      h("td", {}, when(event.receivedAt)), h("td", {}, event.eventType)));
  }
}

async function sendTest() {
  if (!canWrite() || !selected) return;
  try {
    const result = await api(`/api/endpoints/${selected.id}/test`, { method: "POST" });
    notify(result.status === 200 ? "success" : "error", `The test delivery was answered ${result.status}.`);
    await deliveries();
  } catch (error) {
    notify("error", error.message);
  }
}

async function rotate() {
  if (!canWrite() || !selected) return;
  try {
    const rotated = await api(`/api/endpoints/${selected.id}/rotate-secret`, { method: "POST" });
    revealSecret(selected, rotated.secret);
    notify("success", "New secret issued; the old one stays valid for the grace period.");
    await show();
  } catch (error) {
    notify("error", error.message);
  }
}
