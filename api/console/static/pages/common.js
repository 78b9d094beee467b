// What several pages share: the tenant they need, and lists that load page after page.

import { get, withQuery } from "/console/api.js";
import { context } from "/console/context.js";
import { h, link, problemBox, table } from "/console/ui.js";

// True when a tenant is chosen; otherwise the view says how to choose one.
export function needTenant(view, title) {
  if (context.tenant) return true;
  view.append(h("h1", {}, title),
    h("div", { class: "panel" }, "Choose a tenant in the header, or on the ", link("/console/tenants", "tenants page"), "."));
  return false;
}

// A table filled from a list endpoint, with "Load more" while there is a next cursor.
export function pagedTable(columns, url, params, empty) {
  const holder = h("div", {});
  const error = problemBox();
  const more = h("button", { type: "button", hidden: true }, "Load more");
  const rows = [];
  let cursor = null;
  async function load() {
    more.disabled = true;
    try {
      const { data } = await get(withQuery(url, { ...params, cursor }));
      rows.push(...data.items);
      cursor = data.next_cursor;
      holder.replaceChildren(table(columns, rows, empty));
      more.hidden = !cursor;
      error.textContent = "";
    } catch (e) {
      error.textContent = `${e.status || ""} ${e.problem?.title || "Error"}: ${e.problem?.detail || e.message}`;
    } finally {
      more.disabled = false;
    }
  }
  more.addEventListener("click", load);
  const done = load();
  return { element: h("div", {}, error, holder, h("div", { class: "actions" }, more)), done };
}

export function filterForm(fields, query, onChange) {
  const form = h("form", { class: "row panel", role: "search" }, fields,
    h("div", { class: "field" }, h("button", { type: "submit" }, "Apply")));
  for (const el of form.elements) if (el.name && query.has(el.name)) el.value = query.get(el.name);
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const values = {};
    for (const el of form.elements) if (el.name && el.value) values[el.name] = el.value;
    onChange(values);
  });
  return form;
}
