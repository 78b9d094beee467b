// One agent: its manifest, every version it was deployed with, retire it.

import { get, path, request } from "/console/api.js";
import { context, tenantBase } from "/console/context.js";
import { navigate } from "/console/router.js";
import { badge, field, h, link, pretty, problemBox, submitting, table, time } from "/console/ui.js";
import { needTenant } from "/console/pages/common.js";

export async function render(view, params) {
  if (!needTenant(view, "Agent")) return;
  const base = `${tenantBase()}${path`/agents/${params.agent}`}`;
  view.append(h("p", {}, link("/console/agents", "← Agents")), h("h1", {}, `Agent ${params.agent}`));
  let agent;
  try {
    agent = (await get(base)).data;
  } catch (error) {
    view.append(h("div", { class: "problem" }, `${error.status} ${error.problem.title}: ${error.problem.detail}`));
    return;
  }
  const versions = (await get(`${base}/versions?limit=200`)).data.items;
  view.append(
    h("div", { class: "cols" },
      h("section", { class: "panel", "aria-labelledby": "facts" },
        h("h2", { id: "facts" }, "Deployment"),
        h("dl", { class: "facts" },
          h("dt", {}, "State"), h("dd", {}, badge(agent.status)),
          h("dt", {}, "Version"), h("dd", {}, agent.agent_version),
          h("dt", {}, "Module"), h("dd", {}, h("code", {}, agent.manifest.module_digest)),
          h("dt", {}, "Deployed"), h("dd", {}, time(agent.created_at)),
          h("dt", {}, "Updated"), h("dd", {}, time(agent.updated_at)),
          agent.retired_reason ? [h("dt", {}, "Retired"), h("dd", {}, agent.retired_reason)] : null),
        h("div", { class: "actions" },
          link(`/console/tasks?agent_name=${encodeURIComponent(agent.agent_name)}`, "Its tasks"))),
      h("section", { class: "panel", "aria-labelledby": "manifest" },
        h("h2", { id: "manifest" }, "Manifest"), h("pre", {}, pretty(agent.manifest)))),
    h("h2", {}, "Versions"),
    table([
      { label: "Version", cell: (v) => v.agent_version },
      { label: "Module", cell: (v) => h("code", {}, v.module_digest) },
      { label: "Deployed", cell: (v) => time(v.deployed_at) },
    ], versions));
  if (agent.status !== "retired" && context.tenant) {
    const submit = h("button", { type: "submit", class: "danger" }, "Retire agent");
    const form = h("form", { class: "panel", "aria-labelledby": "retire" },
      h("h2", { id: "retire" }, "Retire"), problemBox(),
      field({ label: "Reason", name: "reason", required: true }), h("div", { class: "actions" }, submit));
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      submitting(form, submit, async () => {
        await request("POST", `${base}/retire`, { json: { reason: form.reason.value }, wait: 10 });
        navigate(location.pathname, { replace: true });
      });
    });
    view.append(form);
  }
}
