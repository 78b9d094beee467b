// Tenants (platform admins): every tenant, create one, suspend or reinstate, open one.

import { path, request } from "/console/api.js";
import { context, isPlatformAdmin, setTenant } from "/console/context.js";
import { navigate } from "/console/router.js";
import { badge, field, h, keepDraft, problemBox, submitting, time } from "/console/ui.js";
import { filterForm, pagedTable } from "/console/pages/common.js";

export function render(view, _params, query) {
  view.append(h("h1", {}, "Tenants"));
  if (!isPlatformAdmin()) {
    view.append(h("div", { class: "panel" }, `Only platform admins manage tenants; you work in ${context.tenant}.`));
    return;
  }
  const rowError = problemBox();
  async function act(tenant, action, body) {
    try {
      await request("POST", path`/v1/tenants/${tenant}/${action}`, { json: body, wait: 10 });
      navigate(location.pathname + location.search, { replace: true });
    } catch (error) {
      rowError.textContent = `${error.status} ${error.problem.title}: ${error.problem.detail || ""}`;
    }
  }
  const list = pagedTable([
    { label: "Tenant", cell: (t) => t.tenant_id },
    { label: "Name", cell: (t) => t.display_name },
    { label: "Status", cell: (t) => badge(t.status) },
    { label: "Created", cell: (t) => time(t.created_at) },
    { label: "Updated", cell: (t) => time(t.updated_at) },
    {
      label: "Actions", cell: (t) => h("div", { class: "actions" },
        h("button", { type: "button", onclick: () => { setTenant(t.tenant_id); navigate("/console/agents"); } },
          `Open ${t.tenant_id}`),
        t.status === "suspended"
          ? h("button", { type: "button", onclick: () => act(t.tenant_id, "reinstate", {}) }, "Reinstate")
          : h("button", {
            type: "button", class: "danger",
            onclick: () => act(t.tenant_id, "suspend", { reason: "suspended in the console" }),
          }, "Suspend")),
    },
  ], "/v1/tenants", { limit: 50, prefix: query.get("prefix"), status: query.get("status") },
  "No tenant matches.");
  const filters = filterForm([
    field({ label: "Id starts with", name: "prefix" }),
    field({ label: "Status", name: "status", options: [["", "any"], "active", "suspended"] }),
  ], query, (values) => navigate(`/console/tenants?${new URLSearchParams(values)}`));

  const submit = h("button", { type: "submit", class: "primary" }, "Create tenant");
  const form = h("form", { class: "panel", "aria-labelledby": "new-tenant" },
    h("h2", { id: "new-tenant" }, "New tenant"), problemBox(),
    h("div", { class: "row" },
      field({ label: "Tenant id", name: "tenant_id", required: true, hint: "3-63 of a-z 0-9 -" }),
      field({ label: "Display name", name: "display_name", required: true })),
    h("div", { class: "actions" }, submit));
  const forget = keepDraft(form, "tenant-new");
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    submitting(form, submit, async () => {
      const body = { tenant_id: form.tenant_id.value.trim(), display_name: form.display_name.value.trim() };
      await request("POST", "/v1/tenants", { json: body, wait: 10 });
      forget();
      window.dispatchEvent(new CustomEvent("aion:tenants-changed"));
      navigate(`/console/tenants?prefix=${encodeURIComponent(body.tenant_id)}`);
    });
  });
  view.append(form, filters, rowError, list.element);
}
