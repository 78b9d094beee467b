// One policy: its Cedar text, edited with the validator's errors inline, and the what-if
// simulation over the tenant's recorded decisions before saving.

import { ApiError, get, path, request } from "/console/api.js";
import { tenantBase } from "/console/context.js";
import { navigate } from "/console/router.js";
import { announce, badge, clearErrors, field, h, keepDraft, link, problemBox, submitting, table, time } from "/console/ui.js";
import { needTenant } from "/console/pages/common.js";

const EXAMPLE = '@id("no-big-inputs")\nforbid(principal, action == Action::"SubmitTask", resource)\n'
  + "when { resource.input_bytes > 1000 };";

function simulation(result) {
  const decided = (d) => h("span", {}, badge(d.decision), " ", d.policy_ids.join(", ") || "no policy");
  return h("div", { id: "simulation" },
    h("p", { class: result.changed ? "problem" : "notice", role: "status" },
      `${result.replayed} recorded decisions replayed: ${result.changed} would change`
      + (result.skipped ? ` (${result.skipped} without a recorded request skipped)` : "")
      + (result.window?.truncated ? ` (the newest ${result.window.limit} only)` : "")),
    table([
      { label: "Subject", cell: (c) => `${c.subject_type} ${c.subject_id}` },
      { label: "Action", cell: (c) => c.action },
      { label: "Recorded", cell: (c) => decided(c.recorded) },
      { label: "Simulated", cell: (c) => decided(c.simulated) },
      { label: "When", cell: (c) => time(c.occurred_at) },
    ], result.changes, "No decision would change."));
}

export async function render(view, params) {
  if (!needTenant(view, "Policy")) return;
  const creating = params.policy === "new";
  view.append(h("p", {}, link("/console/policies", "← Policies")),
    h("h1", {}, creating ? "New policy" : `Policy ${params.policy}`));
  let policy = null;
  if (!creating) {
    try {
      policy = (await get(`${tenantBase()}${path`/policies/${params.policy}`}`)).data;
    } catch (error) {
      if (!(error instanceof ApiError) || error.status !== 404) {
        view.append(h("div", { class: "problem" }, error.message));
        return;
      }
    }
  }
  if (policy) {
    view.append(h("p", {}, badge(policy.status), ` version ${policy.policy_version}, updated `, time(policy.updated_at)));
  }
  const save = h("button", { type: "submit", class: "primary" }, "Save policy");
  const simulate = h("button", { type: "button" }, "Simulate");
  const result = h("section", { "aria-labelledby": "what-if", class: "panel" },
    h("h2", { id: "what-if" }, "What if"),
    h("p", { class: "muted" }, "Simulate replays the tenant's recorded decisions with this text in place of the saved one; nothing changes until you save."));
  const form = h("form", { class: "panel", novalidate: true },
    problemBox(),
    creating ? field({ label: "Policy id", name: "policy_id", pointer: "/policy_id", required: true,
      hint: "lower-case letters, digits and -" }) : null,
    field({ label: "Description", name: "description", pointer: "/description", value: policy?.description || "" }),
    field({ label: "Cedar", name: "cedar", pointer: "/cedar", rows: 12, code: true,
      value: policy?.cedar || EXAMPLE, hint: "forbid rules narrow what the tenant's roles may do" }),
    field({ label: "Simulate decisions since", name: "since", pointer: "/since", value: "",
      hint: "e.g. 7d, 2h; empty: all recorded" }),
    h("div", { class: "actions" }, simulate, save));
  const forget = keepDraft(form, `policy.${params.policy}`);
  const policyId = () => (creating ? form.policy_id.value.trim() : params.policy);

  simulate.addEventListener("click", () => {
    submitting(form, simulate, async () => {
      const id = policyId() || "candidate";
      const body = { cedar: form.cedar.value };
      if (form.since.value.trim()) body.since = form.since.value.trim();
      const answer = await request("POST", `${tenantBase()}${path`/policies/${id}/simulate`}`, { json: body });
      result.querySelector("#simulation")?.remove();
      result.append(simulation(answer.data));
      announce(`${answer.data.changed} decisions would change`);
    });
  });
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    clearErrors(form);
    submitting(form, save, async () => {
      const id = policyId();
      const body = { cedar: form.cedar.value, description: form.description.value };
      const headers = {};
      await request("PUT", `${tenantBase()}${path`/policies/${id}`}`, { json: body, wait: 10, headers });
      forget();
      announce(`Policy ${id} saved`);
      navigate(`/console/policies/${encodeURIComponent(id)}`, { replace: !creating });
    });
  });
  view.append(form, result);
  if (policy && policy.status === "active") {
    const remove = h("button", { type: "submit", class: "danger" }, "Delete policy");
    const removeForm = h("form", { class: "panel", "aria-label": "Delete the policy" }, problemBox(),
      h("div", { class: "actions" }, remove));
    removeForm.addEventListener("submit", (event) => {
      event.preventDefault();
      submitting(removeForm, remove, async () => {
        await request("DELETE", `${tenantBase()}${path`/policies/${params.policy}`}`, { wait: 10 });
        navigate("/console/policies");
      });
    });
    view.append(removeForm);
  }
}
