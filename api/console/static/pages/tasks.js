// Tasks: newest first with filters, and a form to submit one.

import { get, request } from "/console/api.js";
import { tenantBase } from "/console/context.js";
import { navigate } from "/console/router.js";
import { announce, badge, field, h, keepDraft, link, problemBox, submitting, time } from "/console/ui.js";
import { filterForm, needTenant, pagedTable } from "/console/pages/common.js";

export const STATUSES = ["submitted", "authorized", "rejected", "scheduled", "running",
  "retrying", "succeeded", "failed", "timed_out", "cancelled"];

function newTaskId() {
  // getRandomValues works on plain http too (randomUUID needs a secure context)
  const random = crypto.getRandomValues(new Uint8Array(8));
  return `task-${[...random].map((b) => b.toString(16).padStart(2, "0")).join("")}`;
}

export async function render(view, _params, query) {
  if (!needTenant(view, "Tasks")) return;
  view.append(h("h1", {}, "Tasks"));
  let agents = [];
  try {
    agents = (await get(`${tenantBase()}/agents?status=deployed&limit=200`)).data.items.map((a) => a.agent_name);
  } catch (_) { /* the list below shows the API's error */ }

  const submit = h("button", { type: "submit", class: "primary" }, "Submit task");
  const form = h("form", { class: "panel", "aria-labelledby": "submit-task", novalidate: true },
    h("h2", { id: "submit-task" }, "Submit a task"), problemBox(),
    h("div", { class: "row" },
      field({ label: "Agent", name: "agent_name", options: agents.length ? agents : [["", "no deployed agent"]],
        value: query.get("agent_name") || "" }),
      field({ label: "Task id", name: "task_id", hint: "optional: generated when empty" })),
    field({ label: "Input", name: "input", rows: 4, code: true, value: '{"text": "hello"}',
      hint: "JSON, checked against the agent's input schema" }),
    h("div", { class: "actions" }, submit));
  const forget = keepDraft(form, "task-submit");
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    submitting(form, submit, async () => {
      // The id is chosen here when left empty, so the page can follow the task even when the
      // decider answers after the wait (202).
      const taskId = form.task_id.value.trim() || newTaskId();
      const body = { agent_name: form.agent_name.value, input: form.input.value, task_id: taskId };
      await request("POST", `${tenantBase()}/tasks`, { json: body, wait: 10 });
      forget();
      form.task_id.value = "";
      announce(`Task ${taskId} submitted`);
      navigate(`/console/tasks/${encodeURIComponent(taskId)}`);
    });
  });

  const filters = filterForm([
    field({ label: "Status", name: "status", options: [["", "any"], ...STATUSES] }),
    field({ label: "Agent", name: "agent_name", options: [["", "any"], ...agents] }),
  ], query, (values) => navigate(`/console/tasks?${new URLSearchParams(values)}`));

  const list = pagedTable([
    { label: "Task", cell: (t) => link(`/console/tasks/${encodeURIComponent(t.task_id)}`, t.task_id) },
    { label: "Agent", cell: (t) => `${t.agent_name} ${t.agent_version || ""}` },
    { label: "State", cell: (t) => badge(t.status) },
    { label: "Attempt", cell: (t) => t.attempt ?? 0, num: true },
    { label: "Submitted", cell: (t) => time(t.submitted_at) },
    { label: "Finished", cell: (t) => time(t.finished_at) },
    { label: "Reason", cell: (t) => t.reason || "" },
  ], `${tenantBase()}/tasks`, { status: query.get("status"), agent_name: query.get("agent_name") },
  "No task matches.");
  view.append(form, h("h2", {}, "All tasks"), filters, list.element);
}
