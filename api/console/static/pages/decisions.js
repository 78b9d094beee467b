// Enforcement decisions: every Cedar verdict on a deployment or a task, newest first.

import { tenantBase } from "/console/context.js";
import { navigate } from "/console/router.js";
import { badge, field, h, link, time } from "/console/ui.js";
import { filterForm, needTenant, pagedTable } from "/console/pages/common.js";

function subject(d) {
  const href = d.subject_type === "task" ? "/console/tasks/" : "/console/agents/";
  return [`${d.subject_type} `, link(href + encodeURIComponent(d.subject_id), d.subject_id)];
}

export function render(view, _params, query) {
  if (!needTenant(view, "Decisions")) return;
  view.append(h("h1", {}, "Enforcement decisions"));
  view.append(filterForm([
    field({ label: "Decision", name: "decision", options: [["", "any"], "allow", "deny"] }),
    field({ label: "Subject type", name: "subject_type", options: [["", "any"], "agent", "task"] }),
    field({ label: "Subject id", name: "subject_id" }),
  ], query, (values) => navigate(`/console/decisions?${new URLSearchParams(values)}`)));
  const filters = Object.fromEntries(["decision", "subject_type", "subject_id"].map((k) => [k, query.get(k)]));
  const list = pagedTable([
    { label: "Decided", cell: (d) => time(d.decided_at) },
    { label: "Decision", cell: (d) => badge(d.decision) },
    { label: "Action", cell: (d) => d.action },
    { label: "Subject", cell: subject },
    { label: "Policies", cell: (d) => d.policy_ids.join(", ") },
    { label: "Diagnostics", cell: (d) => d.diagnostics.join("; ") },
  ], `${tenantBase()}/enforcements`, filters, "No decision recorded.");
  view.append(list.element);
}
