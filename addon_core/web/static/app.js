// The page's entry: take the token, then show the section the address's hash names.

import { notify, takeTokenFromUrl } from "./session.js";

const loaders = {
  overview: () => import("./overview.js"),
  events: () => import("./events.js"),
  flows: () => import("./flows.js"),
  explorer: () => import("./explorer.js"),
  endpoints: () => import("./endpoints.js"),
  coverage: () => import("./coverage.js"),
  audit: () => import("./audit.js"),
};
const sections = document.body.dataset.sections.split(",");
const started = new Set();
let current = null;

async function show() {
  const [name, ...rest] = window.location.hash.replace(/^#/, "").split("/");
  const section = sections.includes(name) ? name : sections[0];
  for (const view of document.querySelectorAll(".view")) view.hidden = view.dataset.view !== section;
  for (const tab of document.querySelectorAll(".tabs a")) {
    if (tab.dataset.section === section) tab.setAttribute("aria-current", "page");
    else tab.removeAttribute("aria-current");
  }
  const module = await loaders[section]();
  if (current && current !== module && current.leave) current.leave();
  current = module;
  try {
    if (!started.has(section)) {
      started.add(section);
      await module.start(document.getElementById(`view-${section}`));
    }
    if (module.show) await module.show(rest.map(decodeURIComponent));
  } catch (error) {
    notify("error", error.message);
  }
  document.body.dataset.ready = section;
  // Time to interactive of the first section shown, for benchmarks/page_load.py.
  if (!document.body.dataset.readyMs) document.body.dataset.readyMs = String(Math.round(performance.now()));
}

window.addEventListener("unhandledrejection", (event) => {
  notify("error", event.reason && event.reason.message ? event.reason.message : String(event.reason));
});

if (!takeTokenFromUrl()) {
  notify("error", "No user token: open this page from Clockify's sidebar.");
} else {
  window.addEventListener("hashchange", show);
  show();
}
