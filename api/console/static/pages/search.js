// Semantic search over the tenant's agents and run outputs.

import { get, withQuery } from "/console/api.js";
import { tenantBase } from "/console/context.js";
import { navigate } from "/console/router.js";
import { field, h, link, problemBox, showProblem } from "/console/ui.js";
import { needTenant } from "/console/pages/common.js";

function hit(item) {
  const target = item.kind === "agent"
    ? link(`/console/agents/${encodeURIComponent(item.agent_name || item.id)}`, `agent ${item.agent_name || item.id}`)
    : link(`/console/tasks/${encodeURIComponent(item.task_id || "")}`, `output of ${item.id}`);
  const text = item.description || item.text || item.snippet || item.preview || "";
  return h("li", { class: "hit" }, target, h("span", { class: "muted" }, ` score ${item.score}`),
    text ? h("div", {}, text) : null);
}

export async function render(view, _params, query) {
  if (!needTenant(view, "Search")) return;
  view.append(h("h1", {}, "Search"));
  const form = h("form", { class: "panel", role: "search" }, problemBox(),
    h("div", { class: "row" },
      field({ label: "Search for", name: "q", type: "search", pointer: "q", value: query.get("q") || "" }),
      field({ label: "In", name: "kind", pointer: "kind", value: query.get("kind") || "",
        options: [["", "agents and outputs"], ["agent", "agents"], ["run_output", "run outputs"]] }),
      h("div", { class: "field" }, h("button", { type: "submit", class: "primary" }, "Search"))));
  const results = h("ol", { id: "results", class: "timeline", "aria-label": "Results" });
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const values = { q: form.q.value };
    if (form.kind.value) values.kind = form.kind.value;
    navigate(`/console/search?${new URLSearchParams(values)}`);
  });
  view.append(form, results);
  if (!query.get("q")) return;
  try {
    const { data } = await get(withQuery(`${tenantBase()}/search`,
      { q: query.get("q"), kind: query.get("kind"), limit: 20 }));
    results.replaceChildren(...(data.items.length ? data.items.map(hit) : [h("li", { class: "muted" }, "No match.")]));
  } catch (error) {
    showProblem(form, error);
  }
}
