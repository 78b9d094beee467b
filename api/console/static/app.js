// The console's entry: who is signed in, the header, and the pages.

import { ApiError, get, path, request } from "/console/api.js";
import { context, isPlatformAdmin, setTenant } from "/console/context.js";
import { navigate, route, start, render } from "/console/router.js";
import { h } from "/console/ui.js";

route("/", async () => ({
  render: () => navigate(context.tenant ? "/console/agents" : "/console/tenants", { replace: true }),
}));
route("/tenants", () => import("/console/pages/tenants.js"));
route("/agents", () => import("/console/pages/agents.js"));
route("/agents/new", () => import("/console/pages/deploy.js"));
route("/agents/:agent", () => import("/console/pages/agent.js"));
route("/tasks", () => import("/console/pages/tasks.js"));
route("/tasks/:task", () => import("/console/pages/task.js"));
route("/policies", () => import("/console/pages/policies.js"));
route("/policies/:policy", () => import("/console/pages/policy.js"));
route("/decisions", () => import("/console/pages/decisions.js"));
route("/audit", () => import("/console/pages/audit.js"));
route("/search", () => import("/console/pages/search.js"));
route("/health", () => import("/console/pages/health.js"));

function signInPage(message) {
  const returnTo = location.pathname.startsWith("/console") ? location.pathname + location.search : "/console/";
  const view = document.getElementById("view");
  document.getElementById("nav").hidden = true;
  document.getElementById("who").hidden = true;
  view.replaceChildren(
    h("h1", {}, "Sign in"),
    h("div", { class: "panel" },
      message ? h("p", {}, message) : null,
      h("p", {}, "The console signs you in with your organisation's identity provider."),
      h("a", { class: "button primary", id: "sign-in", href: path`/auth/login?return_to=${returnTo}` },
        "Sign in")));
  document.title = "Sign in · Aion console";
}

// A platform admin types or picks any tenant (the list offers the first 200 by id); everyone
// else works in the tenant their sign-in names.
async function fillTenantPicker() {
  const picker = document.getElementById("tenant-picker");
  const options = [];
  if (isPlatformAdmin()) {
    try {
      const { data } = await get("/v1/tenants?limit=200");
      for (const t of data.items) options.push(h("option", { value: t.tenant_id }));
    } catch (_) { /* the tenants page shows the error */ }
  }
  document.getElementById("tenant-list").replaceChildren(...options);
  picker.value = context.tenant || "";
  picker.readOnly = !isPlatformAdmin();
  picker.placeholder = isPlatformAdmin() ? "choose a tenant" : "";
}

async function main() {
  window.addEventListener("aion:signed-out", () => signInPage("Your session has ended. Sign in again."));
  try {
    const { data } = await get("/auth/session", { allow401: true });
    context.session = data;
  } catch (error) {
    if (error instanceof ApiError && error.status === 401) return signInPage();
    document.getElementById("view").replaceChildren(h("div", { class: "problem" }, String(error.message)));
    return undefined;
  }
  const admin = isPlatformAdmin();
  const chosen = admin ? sessionStorage.getItem("aion.tenant") : context.session.tenant;
  context.tenant = chosen || null;
  document.getElementById("nav").hidden = false;
  for (const el of document.querySelectorAll("[data-admin-only]")) el.hidden = !admin;
  document.getElementById("who").hidden = false;
  document.getElementById("who-name").textContent =
    `${context.session.subject} (${context.session.roles.join(", ") || "no role"})`;
  await fillTenantPicker();
  window.addEventListener("aion:tenants-changed", fillTenantPicker);
  document.getElementById("tenant-picker").addEventListener("change", (event) => {
    if (isPlatformAdmin()) setTenant(event.target.value.trim());
    render();
  });
  document.getElementById("sign-out").addEventListener("click", async () => {
    try { await request("POST", "/auth/logout"); } catch (_) { /* signed out anyway */ }
    context.session = null;
    signInPage("You are signed out.");
  });
  window.addEventListener("aion:tenant", () => {
    document.getElementById("tenant-picker").value = context.tenant || "";
  });
  return start();
}

main();
