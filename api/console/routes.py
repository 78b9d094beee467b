"""`/console`: the console's static files, and its index for every page path of the app.

No build step: plain HTML, CSS and JavaScript modules in ``static/``. A path that names a file
there is that file; any other path without a file extension (``/console/tasks/hello``) is the
page the browser's router draws, so it is answered with ``index.html``. Public: the files hold
no data, which the page reads from the API with the session cookie.
"""

from __future__ import annotations

from pathlib import Path

from starlette.responses import FileResponse, PlainTextResponse, Response
from starlette.routing import BaseRoute, Mount, get_route_path
from starlette.types import Receive, Scope, Send

STATIC = Path(__file__).parent / "static"
PREFIX = "/console"
MEDIA_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
}
# Only this origin's files and API: no inline script, no framing, no form posted elsewhere.
HEADERS = {
    "Content-Security-Policy": "default-src 'self'; script-src 'self'; style-src 'self'; "
    "img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; "
    "form-action 'self'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-cache",  # revalidated (ETag), so a new version shows at once
}


def resolve(relative: str, root: Path = STATIC) -> Path | None:
    """The file to answer for a path under /console: the file itself, ``index.html`` for a
    page path (no extension), or None (an unknown asset, or a path escaping the folder)."""
    parts = [p for p in relative.split("/") if p]
    if any(p in (".", "..") or "\\" in p for p in parts):
        return None
    if parts and "." in parts[-1]:
        candidate = root.joinpath(*parts)
        return candidate if candidate.is_file() else None
    return root / "index.html"


class ConsoleFiles:
    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        response: Response
        if scope["method"] not in ("GET", "HEAD"):
            response = PlainTextResponse("Method Not Allowed", 405, {"Allow": "GET, HEAD"})
        else:
            found = resolve(get_route_path(scope))  # the path below /console
            if found is None:
                response = PlainTextResponse("Not Found", status_code=404)
            else:
                media = MEDIA_TYPES.get(found.suffix, "application/octet-stream")
                response = FileResponse(found, media_type=media, headers=HEADERS)
        await response(scope, receive, send)


def routes() -> list[BaseRoute]:
    files = ConsoleFiles()
    return [Mount(PREFIX, app=files)]
