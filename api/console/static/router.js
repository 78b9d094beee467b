// History-API routing under /console: a path pattern per page module, links that do not reload.

const routes = [];
let current = null;

export function route(pattern, load) {
  // "/tasks/:task" -> a regular expression with one named group per parameter
  const source = pattern.replace(/:([a-z]+)/g, (_, name) => `(?<${name}>[^/]+)`);
  routes.push({ regex: new RegExp(`^/console${source}/?$`), load });
}

export function navigate(to, { replace = false } = {}) {
  if (replace) history.replaceState({}, "", to);
  else history.pushState({}, "", to);
  render();
}

function match(pathname) {
  for (const r of routes) {
    const found = r.regex.exec(pathname);
    if (found) {
      const params = {};
      for (const [k, v] of Object.entries(found.groups || {})) params[k] = decodeURIComponent(v);
      return { load: r.load, params };
    }
  }
  return null;
}

export async function render() {
  const view = document.getElementById("view");
  if (current && current.leave) current.leave();  // e.g. close a page's EventSource
  current = null;
  for (const link of document.querySelectorAll("nav a")) {
    const here = location.pathname.startsWith(link.getAttribute("href"));
    if (here) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
  const found = match(location.pathname);
  view.replaceChildren();
  if (!found) {
    view.textContent = "No such page.";
    return;
  }
  const query = new URLSearchParams(location.search);
  const page = await found.load();
  const handle = await page.render(view, found.params, query);
  current = handle || null;
  const heading = view.querySelector("h1");
  if (heading) document.title = `${heading.textContent} · Aion console`;
  view.focus({ preventScroll: true });
}

export function start() {
  document.addEventListener("click", (event) => {
    const link = event.target.closest("a[data-link], a[href^='/console/']");
    if (!link || event.defaultPrevented || event.button !== 0) return;
    if (event.metaKey || event.ctrlKey || event.shiftKey || event.altKey) return;
    if (link.target || link.hasAttribute("download")) return;
    event.preventDefault();
    navigate(link.getAttribute("href"));
  });
  window.addEventListener("popstate", render);
  return render();
}
