// Small DOM helpers shared by the pages: elements, form fields with their errors, drafts that
// survive a reload, relative times, state badges.

export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key === "class") el.className = value;
    else if (key === "text") el.textContent = value;
    else if (key.startsWith("on")) el.addEventListener(key.slice(2), value);
    else if (key === "dataset") Object.assign(el.dataset, value);
    else if (value === true) el.setAttribute(key, "");
    else el.setAttribute(key, value);
  }
  for (const child of children.flat()) {
    if (child === undefined || child === null || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

export function link(href, text) {
  return h("a", { href, "data-link": true }, text);
}

// --- times ----------------------------------------------------------------------------------

export function relative(date, now = Date.now()) {
  const seconds = Math.round((now - date.getTime()) / 1000);
  const future = seconds < 0;
  const s = Math.abs(seconds);
  let text;
  if (s < 45) text = "just now";
  else if (s < 90) text = "1 min";
  else if (s < 3600) text = `${Math.round(s / 60)} min`;
  else if (s < 5400) text = "1 h";
  else if (s < 86400) text = `${Math.round(s / 3600)} h`;
  else if (s < 172800) text = "1 day";
  else text = `${Math.round(s / 86400)} days`;
  if (text === "just now") return text;
  return future ? `in ${text}` : `${text} ago`;
}

export function time(iso) {
  if (!iso) return h("span", { class: "muted" }, "—");
  const date = new Date(iso);
  if (Number.isNaN(date.getTime())) return h("span", {}, iso);
  return h("time", { datetime: date.toISOString(), title: date.toString(), "data-relative": true },
    relative(date));
}

setInterval(() => {
  for (const el of document.querySelectorAll("time[data-relative]")) {
    el.textContent = relative(new Date(el.getAttribute("datetime")));
  }
}, 30000);

// --- states ---------------------------------------------------------------------------------

const TONES = {
  ok: ["succeeded", "deployed", "active", "allow", "ok", "accepted", "stable", "registered"],
  bad: ["failed", "rejected", "deny", "denied", "down", "timed_out", "suspended", "dead", "error"],
  busy: ["running", "scheduled", "queued", "pending", "retrying", "preparing_rebalance",
    "completing_rebalance"],
  info: ["submitted", "authorized", "login", "logout", "command", "policy_change", "enforcement"],
};

export function tone(state) {
  const s = String(state || "").toLowerCase();
  for (const [name, states] of Object.entries(TONES)) if (states.includes(s)) return name;
  return "idle";
}

export function badge(state) {
  return h("span", { class: `badge ${tone(state)}`, "data-state": state }, state ?? "—");
}

export function announce(text) {
  const live = document.getElementById("announce");
  live.textContent = "";
  setTimeout(() => { live.textContent = text; }, 30);
}

// --- tables ---------------------------------------------------------------------------------

// columns: [{label, cell: (row) => Node|string, num?}]
export function table(columns, rows, empty = "Nothing here yet.") {
  if (!rows.length) return h("p", { class: "muted" }, empty);
  return h("div", { class: "table-wrap" },
    h("table", {},
      h("thead", {}, h("tr", {}, columns.map((c) => h("th", { scope: "col", class: c.num ? "num" : null }, c.label)))),
      h("tbody", {}, rows.map((row) => h("tr", {},
        columns.map((c) => h("td", { class: c.num ? "num" : null }, c.cell(row))))))));
}

// --- forms ----------------------------------------------------------------------------------

let fieldIds = 0;

// One labelled control with its error line. spec: {label, name, type, value, hint, pointer,
// options (for a select), rows (a textarea), required, code, placeholder, accept}
export function field(spec) {
  const id = `f${++fieldIds}`;
  const errorId = `${id}-error`;
  const common = {
    id, name: spec.name, required: spec.required, placeholder: spec.placeholder,
    "aria-describedby": errorId, "data-pointer": spec.pointer || `/${spec.name}`,
  };
  let control;
  if (spec.options) {
    control = h("select", { ...common, class: "wide" },
      spec.options.map((o) => {
        const [value, text] = Array.isArray(o) ? o : [o, o];
        return h("option", { value, selected: String(value) === String(spec.value ?? "") }, text);
      }));
  } else if (spec.rows) {
    control = h("textarea", { ...common, rows: spec.rows, class: spec.code ? "code" : null,
      spellcheck: spec.code ? "false" : null });
    control.value = spec.value ?? "";
  } else {
    control = h("input", { ...common, type: spec.type || "text", accept: spec.accept,
      min: spec.min, step: spec.step, autocomplete: "off" });
    if (spec.type !== "file") control.value = spec.value ?? "";
  }
  return h("div", { class: "field" },
    h("label", { for: id }, spec.label, spec.hint ? h("span", { class: "hint" }, ` ${spec.hint}`) : null),
    control,
    h("p", { class: "field-error", id: errorId, role: "alert" }));
}

export function problemBox() {
  return h("div", { class: "problem", role: "alert" });
}

export function clearErrors(form) {
  for (const el of form.querySelectorAll("[aria-invalid]")) el.removeAttribute("aria-invalid");
  for (const el of form.querySelectorAll(".field-error")) el.textContent = "";
  for (const el of form.querySelectorAll(".problem")) el.textContent = "";
}

function controlFor(form, pointer) {
  if (pointer === undefined || pointer === null) return null;
  const exact = [...form.querySelectorAll("[data-pointer]")].find((el) => el.dataset.pointer === pointer);
  if (exact) return exact;
  // "/manifest/quotas/fuel" is shown at the closest control: "/manifest/quotas" or "/manifest"
  const parts = pointer.split("/");
  while (parts.length > 1) {
    parts.pop();
    const prefix = parts.join("/");
    const found = [...form.querySelectorAll("[data-pointer]")].find((el) => el.dataset.pointer === prefix);
    if (found) return found;
  }
  return null;
}

// Show an ApiError where it happened: each field error beside its control, the rest on top.
export function showProblem(form, error) {
  clearErrors(form);
  const problem = error.problem || { title: String(error) };
  const entries = problem.errors && problem.errors.length
    ? problem.errors
    : problem.field !== undefined && problem.field !== null
      ? [{ field: problem.field, message: problem.detail || problem.title }]
      : [];
  let first = null;
  const unplaced = [];
  for (const entry of entries) {
    const control = controlFor(form, entry.field);
    if (!control) { unplaced.push(entry); continue; }
    control.setAttribute("aria-invalid", "true");
    const line = document.getElementById(control.getAttribute("aria-describedby"));
    line.textContent = line.textContent ? `${line.textContent}\n${entry.message}` : entry.message;
    first = first || control;
  }
  const box = form.querySelector(".problem");
  if (!first || unplaced.length) {
    const status = error.status ? `${error.status} ` : "";
    box.textContent = `${status}${problem.title || "Error"}: ${problem.detail || ""}`.trim();
  }
  announce(problem.detail || problem.title || "Error");
  (first || box).focus?.();
  if (!first) box.setAttribute("tabindex", "-1"), box.focus();
}

// Keep what is typed in sessionStorage under `key` (not files): a reload, a failed submit or
// leaving the page loses nothing. Returns a function that forgets the draft (after success).
export function keepDraft(form, key) {
  const storageKey = `aion.draft.${key}`;
  const controls = () => [...form.elements].filter((el) => el.name && el.type !== "file" && el.type !== "submit");
  try {
    const saved = JSON.parse(sessionStorage.getItem(storageKey) || "null");
    if (saved) {
      for (const el of controls()) {
        if (!(el.name in saved)) continue;
        if (el.type === "checkbox") el.checked = saved[el.name].includes(el.value);
        else el.value = saved[el.name];
      }
    }
  } catch (_) { /* a broken draft is ignored */ }
  const save = () => {
    const values = {};
    for (const el of controls()) {
      if (el.type === "checkbox") {
        values[el.name] = values[el.name] || [];
        if (el.checked) values[el.name].push(el.value);
      } else values[el.name] = el.value;
    }
    sessionStorage.setItem(storageKey, JSON.stringify(values));
  };
  form.addEventListener("input", save);
  form.addEventListener("change", save);
  return () => sessionStorage.removeItem(storageKey);
}

// Run an async submit with the button disabled and the errors shown in the form.
export async function submitting(form, button, work) {
  clearErrors(form);
  button.disabled = true;
  try {
    return await work();
  } catch (error) {
    showProblem(form, error);
    return undefined;
  } finally {
    button.disabled = false;
  }
}

export function pretty(value) {
  if (typeof value === "string") {
    try { return JSON.stringify(JSON.parse(value), null, 2); } catch (_) { return value; }
  }
  return JSON.stringify(value, null, 2);
}

export function bytes(n) {
  if (n === null || n === undefined) return "—";
  if (n < 1024) return `${n} B`;
  if (n < 1048576) return `${(n / 1024).toFixed(1)} KiB`;
  return `${(n / 1048576).toFixed(1)} MiB`;
}
