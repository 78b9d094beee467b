// The audit trail: every event of the tenant and every security fact (sign-ins, denials).

import { tenantBase } from "/console/context.js";
import { navigate } from "/console/router.js";
import { badge, field, h, time } from "/console/ui.js";
import { filterForm, needTenant, pagedTable } from "/console/pages/common.js";

const KINDS = ["login", "logout", "command", "policy_change", "denial", "enforcement"];
const OUTCOMES = ["ok", "rejected", "allow", "deny", "denied"];

export function render(view, _params, query) {
  if (!needTenant(view, "Audit")) return;
  view.append(h("h1", {}, "Audit trail"));
  view.append(filterForm([
    field({ label: "Kind", name: "kind", options: [["", "any"], ...KINDS] }),
    field({ label: "Outcome", name: "outcome", options: [["", "any"], ...OUTCOMES] }),
    field({ label: "Actor", name: "actor" }),
    field({ label: "Since", name: "since", hint: "ISO 8601", placeholder: "2026-01-01T00:00" }),
  ], query, (values) => navigate(`/console/audit?${new URLSearchParams(values)}`)));
  const filters = Object.fromEntries(["kind", "outcome", "actor", "since"].map((k) => [k, query.get(k)]));
  const list = pagedTable([
    { label: "When", cell: (e) => time(e.occurred_at) },
    { label: "Kind", cell: (e) => badge(e.kind) },
    { label: "Actor", cell: (e) => e.actor },
    { label: "Action", cell: (e) => e.action },
    { label: "Target", cell: (e) => e.target },
    { label: "Outcome", cell: (e) => badge(e.outcome) },
    { label: "Detail", cell: (e) => (e.detail && typeof e.detail === "object" ? JSON.stringify(e.detail) : e.detail || "") },
  ], `${tenantBase()}/audit`, filters, "No audit entry matches.");
  view.append(list.element);
}
