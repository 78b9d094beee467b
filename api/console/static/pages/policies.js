// Policies: the tenant's Cedar policies (they can only forbid: the platform permits).

import { tenantBase } from "/console/context.js";
import { navigate } from "/console/router.js";
import { badge, field, h, link, time } from "/console/ui.js";
import { filterForm, needTenant, pagedTable } from "/console/pages/common.js";

export function render(view, _params, query) {
  if (!needTenant(view, "Policies")) return;
  view.append(h("div", { class: "row" }, h("h1", {}, "Policies"),
    h("a", { class: "button primary", href: "/console/policies/new", "data-link": true }, "New policy")));
  view.append(filterForm(
    [field({ label: "Status", name: "status", options: [["", "any"], "active", "deleted"] })],
    query, (values) => navigate(`/console/policies?${new URLSearchParams(values)}`)));
  const list = pagedTable([
    { label: "Policy", cell: (p) => link(`/console/policies/${encodeURIComponent(p.policy_id)}`, p.policy_id) },
    { label: "State", cell: (p) => badge(p.status) },
    { label: "Version", cell: (p) => p.policy_version, num: true },
    { label: "Description", cell: (p) => p.description || "" },
    { label: "Updated", cell: (p) => time(p.updated_at) },
  ], `${tenantBase()}/policies`, { status: query.get("status") }, "No policy: the platform's defaults apply.");
  view.append(list.element);
}
