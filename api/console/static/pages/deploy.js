// Deploy an agent: upload its WASM module (stored under its digest), then its manifest.

import { path, request } from "/console/api.js";
import { tenantBase } from "/console/context.js";
import { navigate } from "/console/router.js";
import { announce, bytes, field, h, keepDraft, link, pretty, problemBox, showProblem, submitting } from "/console/ui.js";
import { needTenant } from "/console/pages/common.js";

const CAPABILITIES = ["scratch_dir", "model_inference", "progress"];

function manifestOf(form) {
  const list = (text) => text.split(",").map((s) => s.trim()).filter(Boolean);
  const number = (text) => (text.trim() === "" ? undefined : Number(text));
  const manifest = {
    agent_name: form.agent_name.value.trim(),
    version: form.version.value.trim(),
    module_digest: form.module_digest.value.trim(),
    entrypoint: form.entrypoint.value.trim() || "run",
    abi: form.abi.value,
    models: list(form.models.value),
    quotas: {
      fuel: number(form.fuel.value),
      memory_mb: number(form.memory_mb.value),
      timeout_ms: number(form.timeout_ms.value),
      max_retries: number(form.max_retries.value),
    },
    capabilities: [...form.querySelectorAll("input[name=capabilities]:checked")].map((c) => c.value),
    description: form.description.value,
    index_outputs: form.index_outputs.checked,
  };
  if (form.input_schema.value.trim()) manifest.input_schema = form.input_schema.value.trim();
  for (const [k, v] of Object.entries(manifest.quotas)) if (v === undefined) delete manifest.quotas[k];
  return manifest;
}

export function render(view) {
  if (!needTenant(view, "Deploy an agent")) return;
  view.append(h("p", {}, link("/console/agents", "← Agents")), h("h1", {}, "Deploy an agent"));
  const uploaded = h("p", { class: "muted", id: "module-status" }, "No module uploaded yet.");
  const submit = h("button", { type: "submit", class: "primary" }, "Deploy");
  const preview = h("pre", { "aria-label": "Manifest preview" });
  const form = h("form", { class: "panel", novalidate: true },
    problemBox(),
    h("h2", {}, "1. Module"),
    field({ label: "WASM module", name: "module", type: "file", accept: ".wasm,application/wasm", pointer: "/module",
      hint: "uploaded when chosen; its digest fills in below" }),
    uploaded,
    field({ label: "Module digest", name: "module_digest", pointer: "/manifest/module_digest",
      placeholder: "sha256:…", hint: "or the digest of a module uploaded before" }),
    h("h2", {}, "2. Manifest"),
    h("div", { class: "row" },
      field({ label: "Agent name", name: "agent_name", pointer: "/manifest/agent_name", required: true }),
      field({ label: "Version", name: "version", pointer: "/manifest/version", value: "1.0.0", required: true }),
      field({ label: "ABI", name: "abi", pointer: "/manifest/abi", options: ["reactor", "wasi_command"] }),
      field({ label: "Entry point", name: "entrypoint", pointer: "/manifest/entrypoint", value: "run" })),
    h("div", { class: "row" },
      field({ label: "Fuel per run", name: "fuel", type: "number", pointer: "/manifest/quotas/fuel", value: "10000000" }),
      field({ label: "Memory (MiB)", name: "memory_mb", type: "number", pointer: "/manifest/quotas/memory_mb", value: "16" }),
      field({ label: "Timeout (ms)", name: "timeout_ms", type: "number", pointer: "/manifest/quotas/timeout_ms", value: "2000" }),
      field({ label: "Retries", name: "max_retries", type: "number", pointer: "/manifest/quotas/max_retries", value: "0" })),
    field({ label: "Models", name: "models", pointer: "/manifest/models", hint: "registered model names, comma-separated" }),
    h("fieldset", { class: "field", "data-pointer": "/manifest/capabilities", "aria-describedby": "caps-error" },
      h("legend", {}, "Capabilities"),
      CAPABILITIES.map((c) => h("label", { class: "inline" },
        h("input", { type: "checkbox", name: "capabilities", value: c }), ` ${c}`)),
      h("p", { class: "field-error", id: "caps-error", role: "alert" })),
    field({ label: "Input schema", name: "input_schema", pointer: "/manifest/input_schema", rows: 4, code: true,
      hint: "a JSON Schema for task inputs (optional)" }),
    field({ label: "Description", name: "description", pointer: "/manifest/description", rows: 2 }),
    h("label", { class: "inline" }, h("input", { type: "checkbox", name: "index_outputs", value: "yes" }),
      " Index run outputs for search by meaning (an embedding per run)"),
    h("label", { class: "inline" }, h("input", { type: "checkbox", name: "update", value: "yes" }),
      " A new version of an existing agent"),
    h("details", {}, h("summary", {}, "Manifest as sent"), preview),
    h("div", { class: "actions" }, submit));
  const forget = keepDraft(form, "agent-deploy");
  const refresh = () => { preview.textContent = pretty(manifestOf(form)); };
  form.addEventListener("input", refresh);
  refresh();

  form.module.addEventListener("change", async () => {
    const file = form.module.files[0];
    if (!file) return;
    uploaded.textContent = `Uploading ${file.name}…`;
    try {
      const answer = await request("POST", `${tenantBase()}/modules`, {
        body: await file.arrayBuffer(), type: "application/wasm",
      });
      form.module_digest.value = answer.data.digest;
      form.module_digest.dispatchEvent(new Event("input", { bubbles: true }));
      uploaded.textContent = `Uploaded ${file.name} (${bytes(answer.data.size)}): ${answer.data.digest}`;
      announce("Module uploaded");
    } catch (error) {
      uploaded.textContent = "The module was not stored.";
      error.problem = { ...error.problem, field: "/module", errors: undefined };
      showProblem(form, error);
    }
  });

  form.addEventListener("submit", (event) => {
    event.preventDefault();
    submitting(form, submit, async () => {
      const manifest = manifestOf(form);
      const update = form.update.checked;
      const target = update ? `${tenantBase()}${path`/agents/${manifest.agent_name}`}` : `${tenantBase()}/agents`;
      await request(update ? "PUT" : "POST", target, { json: { manifest }, wait: 15 });
      forget();
      announce(`Agent ${manifest.agent_name} deployed`);
      navigate(`/console/agents/${encodeURIComponent(manifest.agent_name)}`);
    });
  });
  view.append(form);
}
