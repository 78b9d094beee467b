// Health: every service, each projection's and consumer group's lag, and the dead letters.

import { get } from "/console/api.js";
import { badge, h, table } from "/console/ui.js";

export async function render(view) {
  view.append(h("div", { class: "row" }, h("h1", {}, "Health")));
  const body = h("div", { id: "health" }, h("p", { class: "muted" }, "Asking every service…"));
  const refresh = h("button", { type: "button" }, "Refresh");
  view.querySelector(".row").append(refresh);
  view.append(body);
  async function load() {
    refresh.disabled = true;
    try {
      const { data } = await get("/health");
      const services = Object.entries(data.services);
      const lags = typeof data.projection_lag === "object" && !data.projection_lag.error
        ? Object.entries(data.projection_lag) : [];
      const groups = data.consumer_groups && !data.consumer_groups.error ? Object.entries(data.consumer_groups) : [];
      const letters = data.dead_letters;
      body.replaceChildren(
        h("div", { class: "cards" },
          h("div", { class: "card" }, h("div", { class: "muted" }, "Overall"), badge(data.ok ? "ok" : "down")),
          h("div", { class: "card", id: "dead-letters" }, h("div", { class: "muted" }, "Dead letters"),
            h("div", { class: `big ${letters ? "bad" : ""}` }, letters ?? "?")),
          h("div", { class: "card" }, h("div", { class: "muted" }, "Projection lag (messages)"),
            h("div", { class: "big" }, lags.reduce((n, [, v]) => n + v, 0)))),
        h("h2", {}, "Services"),
        table([
          { label: "Service", cell: ([name]) => name },
          { label: "State", cell: ([, s]) => badge(s.status) },
          { label: "Answered in", cell: ([, s]) => (s.ms === undefined ? "—" : `${s.ms} ms`), num: true },
          { label: "Error", cell: ([, s]) => s.error || "" },
        ], services),
        h("h2", {}, "Consumer groups"),
        table([
          { label: "Role", cell: ([role]) => role },
          { label: "Group", cell: ([, g]) => g.group },
          { label: "State", cell: ([, g]) => badge(g.error ? "error" : g.state) },
          { label: "Members", cell: ([, g]) => g.members ?? "—", num: true },
          { label: "Lag", cell: ([, g]) => g.lag ?? "—", num: true },
          { label: "Error", cell: ([, g]) => g.error || "" },
        ], groups, data.consumer_groups?.error || "No consumer group."),
        h("h2", {}, "Projections"),
        table([
          { label: "Projection", cell: ([name]) => name },
          { label: "Lag (messages)", cell: ([, v]) => v, num: true },
        ], lags, data.projection_lag?.error || "No projection."));
    } catch (error) {
      body.replaceChildren(h("div", { class: "problem" }, `${error.status || ""} ${error.message}`));
    } finally {
      refresh.disabled = false;
    }
  }
  refresh.addEventListener("click", load);
  await load();
  const timer = setInterval(load, 15000);
  return { leave: () => clearInterval(timer) };
}
