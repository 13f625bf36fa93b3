// Overview: installation, bootstrap progress, job queue, events per hour, flow health.

import { api } from "./api.js";
import { $, canWrite, clear, h, when } from "./dom.js";
import { notify } from "./session.js";

let root;

export async function start(view) {
  root = view;
  const rerun = $("#ov-bootstrap-run", root);
  if (rerun) {
    rerun.addEventListener("click", async () => {
      rerun.disabled = true;
      try {
        await api("/api/bootstrap", { method: "POST" });
        notify("success", "The bootstrap runs again; failed lists are retried.");
        await show();
      } catch (error) {
        notify("error", error.message);
      } finally {
        rerun.disabled = false;
      }
    });
  }
}

export async function show() {
  const overview = await api("/api/overview");
  renderInstallation(overview.installation);
  renderBootstrap(overview.bootstrap.items);
  renderJobs(overview.jobs, overview.deadJobs);
  renderChart(overview.events);
  renderFlows(overview.flows);
}

function facts(node, pairs) {
  clear(node).append(...pairs.flatMap(([term, value]) => [h("dt", {}, term), h("dd", {}, value)]));
}

function renderInstallation(installation) {
  facts($("#ov-installation", root), [
    ["Status", h("span", { className: `state-${installation.status.toLowerCase()}` }, installation.status)],
    ["Workspace", installation.workspaceId],
    ["Installed", when(installation.installedAt)],
  ]);
}

function renderBootstrap(items) {
  const box = clear($("#ov-bootstrap", root));
  if (!items.length) {
    box.append(h("p", { className: "muted" }, "No bootstrap has run for this workspace."));
    return;
  }
  const done = items.filter((item) => item.status === "done").length;
  box.append(h("p", { className: "muted" }, `${done} of ${items.length} lists done`));
  for (const item of items) {
    const bar = h("div", { className: "bar", dataset: { status: item.status } }, h("span"));
    bar.firstChild.style.width = item.status === "done" ? "100%" : item.pages ? "50%" : "5%";
    box.append(
      h("div", { className: "row", dataset: { operation: item.operation } },
        h("header", {}, h("span", {}, item.operation),
          h("span", { className: `state-${item.status}` }, `${item.items} items · ${item.status}`)),
        bar,
        item.lastError ? h("p", { className: "field-error" }, item.lastError) : null,
        item.status === "failed" && canWrite()
          ? h("button", { type: "button", className: "write", onclick: () => retryList(item.operation) }, "Retry this list")
          : null),
    );
  }
}

function renderJobs(jobs, dead) {
  facts($("#ov-jobs", root), [
    ["Waiting or running", String(jobs.depth)],
    ["Oldest job", jobs.oldestAgeSeconds === null ? "none" : `${Math.round(jobs.oldestAgeSeconds)} s`],
    ["Dead", String(jobs.dead)],
  ]);
  const list = clear($("#ov-dead", root));
  if (!dead.length) list.append(h("li", { className: "muted" }, "No dead jobs."));
  for (const job of dead) {
    const replay = canWrite()
      ? h("button", { type: "button", className: "write", onclick: () => replayJob(job.id) }, "Replay")
      : null;
    list.append(h("li", {}, h("span", {}, `${job.kind} #${job.id}: ${job.lastError || "failed"}`), replay));
  }
}

async function retryList(operation) {
  try {
    await api(`/api/bootstrap/${encodeURIComponent(operation)}/retry`, { method: "POST" });
    notify("success", `${operation} is fetched again from the page it reached.`);
    await show();
  } catch (error) {
    notify("error", error.message);
  }
}

async function replayJob(id) {
  try {
    await api(`/api/jobs/${id}/replay`, { method: "POST" });
    notify("success", `Job ${id} is queued again.`);
    await show();
  } catch (error) {
    notify("error", error.message);
  }
}

function renderChart(events) {
  const chart = clear($("#ov-chart", root));
  const top = Math.max(1, ...events.perHour);
  events.perHour.forEach((count, index) => {
    const bar = h("span", { title: `${count} event(s), ${events.hours - index} h ago` });
    bar.style.height = `${(count / top) * 100}%`;
    chart.append(bar);
  });
  $("#ov-chart-total", root).textContent = `${events.total} event(s) in the last ${events.hours} hours`;
}

function renderFlows(flows) {
  facts($("#ov-flows", root), [
    ["Flows", `${flows.total} (${flows.enabled} enabled)`],
    ["Runs, 24 h", String(flows.runs24h)],
    ["Failures, 24 h", String(flows.failures24h)],
  ]);
  const list = clear($("#ov-paused", root));
  if (!flows.paused.length) list.append(h("li", { className: "muted" }, "No paused flows."));
  for (const flow of flows.paused) {
    list.append(h("li", {}, h("a", { href: `#flows/${encodeURIComponent(flow.id)}` }, flow.name),
      h("span", { className: "state-paused" }, flow.reason)));
  }
}
