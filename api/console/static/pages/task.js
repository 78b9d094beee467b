// One task: its state, live progress over SSE (the task's events endpoint), runs, output, logs,
// artifacts to download, and cancel.

import { get, path, request } from "/console/api.js";
import { tenantBase } from "/console/context.js";
import { announce, badge, bytes, field, h, link, pretty, problemBox, submitting, table, time } from "/console/ui.js";
import { needTenant } from "/console/pages/common.js";

const FINAL = ["TaskSucceeded", "TaskFailed", "TaskTimedOut", "TaskCancelled", "TaskRejected"];
const EVENT_TYPES = ["TaskSubmitted", "TaskAuthorized", "TaskScheduled", "TaskRetryScheduled",
  "RunStarted", "RunProgress", "RunSucceeded", "RunFailed", "ArtifactStored", ...FINAL];
const STATE_AFTER = {
  TaskSubmitted: "submitted", TaskAuthorized: "authorized", TaskScheduled: "scheduled",
  TaskRetryScheduled: "retrying", RunStarted: "running", TaskSucceeded: "succeeded",
  TaskFailed: "failed", TaskTimedOut: "timed_out", TaskCancelled: "cancelled", TaskRejected: "rejected",
};
const FINISHED = ["succeeded", "failed", "timed_out", "cancelled", "rejected"];

export async function render(view, params) {
  if (!needTenant(view, "Task")) return undefined;
  const base = `${tenantBase()}${path`/tasks/${params.task}`}`;
  view.append(h("p", {}, link("/console/tasks", "← Tasks")), h("h1", {}, `Task ${params.task}`));
  let task;
  try {
    task = (await get(base)).data;
  } catch (error) {
    view.append(h("div", { class: "problem" }, `${error.status} ${error.problem.title}: ${error.problem.detail}`));
    return undefined;
  }
  const state = h("span", { id: "task-state" }, badge(task.status));
  const bar = h("div", {});
  const progress = h("div", { class: "progress", role: "progressbar", "aria-label": "Run progress",
    "aria-valuemin": "0", "aria-valuemax": "100" }, bar);
  const progressText = h("span", { class: "muted" });
  const timeline = h("ol", { class: "timeline", "aria-label": "Live events", id: "events" });
  const live = h("span", { class: "muted", id: "live-state" }, "");
  const details = h("div", {});
  const cancelBox = h("div", {});

  function setState(status) {
    state.replaceChildren(badge(status));
    if (FINISHED.includes(status)) cancelBox.replaceChildren();
  }

  async function loadDetails() {
    const [runs, artifacts] = await Promise.all([
      get(`${base}/runs?limit=200`), get(`${base}/artifacts?limit=200`),
    ]);
    const parts = [
      h("h2", {}, "Runs"),
      table([
        { label: "Run", cell: (r) => r.run_id },
        { label: "State", cell: (r) => badge(r.status) },
        { label: "Fuel", cell: (r) => r.fuel_used ?? "—", num: true },
        { label: "Duration", cell: (r) => (r.duration_ms == null ? "—" : `${r.duration_ms} ms`), num: true },
        { label: "Started", cell: (r) => time(r.started_at) },
        { label: "Failure", cell: (r) => [r.failure_reason, r.failure_message].filter(Boolean).join(": ") },
      ], runs.data.items, "No run yet."),
      h("h2", {}, "Artifacts"),
      table([
        { label: "Run", cell: (a) => a.run_id },
        { label: "Artifact", cell: (a) => a.artifact_id },
        { label: "Type", cell: (a) => a.content_type },
        { label: "Size", cell: (a) => bytes(a.size_bytes), num: true },
        { label: "Stored", cell: (a) => time(a.stored_at) },
        { label: "", cell: (a) => h("a", { href: `${base}${path`/runs/${a.run_id}/artifacts/${a.artifact_id}`}`,
          download: `${a.run_id}-${a.artifact_id}` }, `Download ${a.artifact_id}`) },
      ], artifacts.data.items, "No artifact yet."),
    ];
    // The newest run's output and logs, shown inline
    const items = artifacts.data.items;
    for (const name of ["output", "logs"]) {
      const found = items.filter((a) => a.artifact_id === name).pop();
      if (!found) continue;
      try {
        const body = (await get(`${base}${path`/runs/${found.run_id}/artifacts/${name}`}`)).data;
        parts.push(h("h2", {}, name === "output" ? "Output" : "Logs"),
          h("pre", { id: `artifact-${name}` }, typeof body === "string" ? body : pretty(body)));
      } catch (error) {
        parts.push(h("p", { class: "problem" }, `${name}: ${error.message}`));
      }
    }
    details.replaceChildren(...parts);
  }

  view.append(
    h("div", { class: "cols" },
      h("section", { class: "panel", "aria-labelledby": "state-h" },
        h("h2", { id: "state-h" }, "State"),
        h("dl", { class: "facts" },
          h("dt", {}, "State"), h("dd", {}, state),
          h("dt", {}, "Agent"), h("dd", {}, link(`/console/agents/${encodeURIComponent(task.agent_name)}`,
            `${task.agent_name} ${task.agent_version || ""}`)),
          h("dt", {}, "Submitted"), h("dd", {}, time(task.submitted_at), task.submitted_by ? ` by ${task.submitted_by}` : ""),
          h("dt", {}, "Finished"), h("dd", { id: "finished" }, time(task.finished_at)),
          task.reason ? [h("dt", {}, "Reason"), h("dd", {}, task.reason)] : null),
        h("h2", {}, "Input"), h("pre", {}, pretty(task.input))),
      h("section", { class: "panel", "aria-labelledby": "live-h" },
        h("h2", { id: "live-h" }, "Live progress ", live),
        progress, progressText, timeline)),
    cancelBox, details);

  if (!FINISHED.includes(task.status)) {
    const submit = h("button", { type: "submit", class: "danger" }, "Cancel task");
    const form = h("form", { class: "panel row", "aria-label": "Cancel the task" }, problemBox(),
      field({ label: "Reason", name: "reason", value: "cancelled in the console", pointer: "/reason" }),
      h("div", { class: "field" }, submit));
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      submitting(form, submit, async () => {
        await request("POST", `${base}/cancel`, { json: { reason: form.reason.value }, wait: 10 });
        announce("Cancel requested");
      });
    });
    cancelBox.append(form);
  }

  await loadDetails().catch(() => {});
  const source = new EventSource(`${base}/events`, { withCredentials: true });
  // A finished task's stream replays its history (kept a day) and ends at the final event.
  let finished = FINISHED.includes(task.status);
  live.textContent = finished ? "(finished)" : "(connecting)";
  source.onopen = () => { if (!finished) live.textContent = "(live)"; };
  source.onerror = () => { if (source.readyState !== EventSource.CLOSED) live.textContent = "(reconnecting)"; };
  const onEvent = (event) => {
    let data = {};
    try { data = JSON.parse(event.data); } catch (_) { /* shown as is */ }
    const at = data.envelope?.occurred_at || data.occurred_at;
    let summary = "";
    if (event.type === "RunProgress") {
      const percent = data.percent ?? null;
      if (percent !== null) {
        bar.style.width = `${Math.max(0, Math.min(100, percent))}%`;
        progress.setAttribute("aria-valuenow", String(Math.round(percent)));
      }
      progressText.textContent = `${percent !== null ? `${Math.round(percent)}% ` : ""}${data.message || ""}`;
      summary = progressText.textContent;
    } else if (data.reason || data.message) {
      summary = data.reason || data.message;
    } else if (data.run_id) summary = data.run_id;
    timeline.append(h("li", { "data-event": event.type },
      h("span", { class: "kind" }, event.type), h("span", {}, summary), at ? time(at) : null));
    timeline.scrollTop = timeline.scrollHeight;
    if (STATE_AFTER[event.type]) setState(STATE_AFTER[event.type]);
    if (event.type === "TaskSucceeded") { bar.style.width = "100%"; progress.setAttribute("aria-valuenow", "100"); }
    if (FINAL.includes(event.type)) {
      finished = true;
      source.close();
      live.textContent = "(finished)";
      announce(`Task ${STATE_AFTER[event.type]}`);
      get(base).then(({ data: fresh }) => {
        document.getElementById("finished")?.replaceChildren(time(fresh.finished_at));
      }).catch(() => {});
      loadDetails().catch(() => {});
    }
  };
  for (const type of EVENT_TYPES) source.addEventListener(type, onEvent);
  source.onmessage = onEvent;
  return { leave: () => source.close() };
}
