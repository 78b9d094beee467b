// Agents: the tenant's agents with their version and deployment state.

import { tenantBase } from "/console/context.js";
import { navigate } from "/console/router.js";
import { badge, field, h, link, time } from "/console/ui.js";
import { filterForm, needTenant, pagedTable } from "/console/pages/common.js";

export function render(view, _params, query) {
  if (!needTenant(view, "Agents")) return;
  view.append(h("div", { class: "row" }, h("h1", {}, "Agents"),
    h("a", { class: "button primary", href: "/console/agents/new", "data-link": true }, "Deploy an agent")));
  view.append(filterForm(
    [field({ label: "Status", name: "status", options: [["", "any"], "deployed", "retired"] })],
    query, (values) => navigate(`/console/agents?${new URLSearchParams(values)}`)));
  const list = pagedTable([
    { label: "Agent", cell: (a) => link(`/console/agents/${encodeURIComponent(a.agent_name)}`, a.agent_name) },
    { label: "Version", cell: (a) => a.agent_version },
    { label: "State", cell: (a) => badge(a.status) },
    { label: "ABI", cell: (a) => a.manifest?.abi ?? "—" },
    { label: "Description", cell: (a) => a.description || "" },
    { label: "Updated", cell: (a) => time(a.updated_at) },
  ], `${tenantBase()}/agents`, { status: query.get("status") }, "No agent yet: deploy one.");
  view.append(list.element);
}
