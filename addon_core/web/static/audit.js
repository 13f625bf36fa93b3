// Audit (OWNER and ADMIN): every change of the workspace's configuration, newest first.

import { api } from "./api.js";
import { $, clear, h, pretty, when } from "./dom.js";

let root;
let next = null;

export async function start(view) {
  root = view;
  $("#au-filter", root).addEventListener("submit", (event) => { event.preventDefault(); load(false); });
  $("#au-more", root).addEventListener("click", () => load(true));
}

export async function show() {
  await load(false);
}

async function load(more) {
  const query = new URLSearchParams({ limit: "50" });
  const kind = $("#au-kind", root).value.trim();
  if (kind) query.set("kind", kind);
  if (more && next) query.set("cursor", next);
  const page = await api(`/api/audit?${query}`);
  const body = $("#au-table tbody", root);
  if (!more) clear(body);
  for (const entry of page.items) {
    body.append(h("tr", { dataset: { kind: entry.kind } },
      h("td", {}, when(entry.at)),
      h("td", {}, entry.actorRole ? `${entry.actor} (${entry.actorRole})` : entry.actor),
      h("td", {}, entry.kind),
      h("td", {}, entry.target || ""),
      h("td", {}, Object.keys(entry.changes).length
        ? h("details", {}, h("summary", {}, "changes"), h("pre", {}, pretty(entry.changes)))
        : "")));
  }
  next = page.next;
  $("#au-more", root).hidden = !next;
  $("#au-empty", root).hidden = body.children.length > 0;
}
