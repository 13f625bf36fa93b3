// The gallery: ready flows shipped with the add-on, imported in one click with the values
// each one needs (a tag id, an address); the server checks them like any new flow.

import { api, ApiError } from "./api.js";
import { clear, h, showErrors } from "./dom.js";
import { notify } from "./session.js";

/** Fill `box` with the gallery's flows, each with its inputs and an Import button. */
export async function renderGallery(box) {
  const { items } = await api("/api/flows/gallery");
  clear(box);
  for (const item of items) box.append(galleryItem(item));
}

function galleryItem(item) {
  const inputs = item.needs.map((need) =>
    h("label", {}, need.message, h("input", { dataset: { field: need.field, bind: need.field } })));
  const errors = h("div", { className: "errors", hidden: true });
  const card = h("div", { className: "gallery-item", dataset: { id: item.id } },
    h("h3", {}, item.name), h("p", { className: "muted" }, item.description), ...inputs, errors);
  const button = h("button", { type: "button", className: "write", onclick: () => importItem(item, card, errors) }, "Import");
  card.append(button);
  return card;
}

async function importItem(item, card, errors) {
  const bind = {};
  for (const input of card.querySelectorAll("input[data-bind]")) {
    if (input.value.trim()) bind[input.dataset.bind] = input.value.trim();
  }
  try {
    const created = await api(`/api/flows/gallery/${encodeURIComponent(item.id)}/import`, { method: "POST", json: { bind } });
    showErrors(errors, [], card);
    notify("success", `Imported "${created.name}"`);
    window.location.hash = `#flows/${created.id}`;
  } catch (error) {
    if (!(error instanceof ApiError) || !error.errors.length) throw error;
    showErrors(errors, error.errors, card);
  }
}
