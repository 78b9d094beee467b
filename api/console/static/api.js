// The console's only way to the server: the public API, authenticated by the session cookie.
// Every state-changing request carries X-Aion-Console: 1 (the API's CSRF defence for cookies).

export class ApiError extends Error {
  constructor(status, problem) {
    super(problem.detail || problem.title || `HTTP ${status}`);
    this.status = status;
    this.problem = problem;
  }
}

async function problemOf(response) {
  const text = await response.text();
  try {
    const body = JSON.parse(text);
    if (body && typeof body === "object") return body;
  } catch (_) { /* not JSON: shown as text below */ }
  return { title: response.statusText || `HTTP ${response.status}`, detail: text.slice(0, 500) };
}

// method, path (with query), options: json (a body to send as JSON), body + type (raw bytes),
// wait (seconds of Prefer: wait for a command's outcome). Resolves to {status, data, headers}.
export async function request(method, path, options = {}) {
  const headers = { Accept: "application/json" };
  let body;
  if (options.json !== undefined) {
    headers["Content-Type"] = "application/json";
    body = JSON.stringify(options.json);
  } else if (options.body !== undefined) {
    headers["Content-Type"] = options.type || "application/octet-stream";
    body = options.body;
  }
  if (method !== "GET" && method !== "HEAD") headers["X-Aion-Console"] = "1";
  if (options.wait) headers.Prefer = `wait=${options.wait}`;
  let response;
  try {
    response = await fetch(path, { method, headers, body, credentials: "same-origin" });
  } catch (error) {
    throw new ApiError(0, { title: "The API cannot be reached", detail: String(error) });
  }
  if (response.status === 401 && !options.allow401) {
    window.dispatchEvent(new CustomEvent("aion:signed-out"));
  }
  if (!response.ok) throw new ApiError(response.status, await problemOf(response));
  const type = response.headers.get("content-type") || "";
  const data = type.includes("json") ? await response.json() : await response.text();
  return { status: response.status, data, headers: response.headers };
}

export const get = (path, options) => request("GET", path, options);

// A path under /v1 with each parameter encoded as one segment: path`/v1/tenants/${t}/agents`.
export function path(strings, ...values) {
  return strings.reduce((out, s, i) => out + s + (i < values.length ? encodeURIComponent(values[i]) : ""), "");
}

export function withQuery(base, params) {
  const query = new URLSearchParams();
  for (const [key, value] of Object.entries(params)) {
    if (value !== undefined && value !== null && value !== "") query.append(key, value);
  }
  const text = query.toString();
  return text ? `${base}?${text}` : base;
}
