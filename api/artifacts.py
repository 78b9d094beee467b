"""Artifact download: a run's output, logs or files, streamed from the S3 store.

The read model says which object holds the artifact (and that it belongs to this tenant's
task); the bytes come from the S3 store in chunks, never whole in memory. The digest is the
ETag: artifacts are content-addressed, so a cached copy with the same digest is the same bytes.

An artifact is whatever a tenant's module wrote: a scratch file ``x.html`` with a script in it,
opened from a link by an admin, would run on the API's origin with the admin's session (issue
17, finding 5). So every artifact is served as an attachment, with ``nosniff``, a
``Content-Security-Policy`` of ``sandbox`` (no script, no origin, even if a browser renders
it), and a content type that is never active: only passive types are served as recorded, every
other one (HTML, SVG, XML, JavaScript...) as ``application/octet-stream``.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from psycopg.rows import dict_row
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from api.problems import Problem
from api.queries import T, require_tenant
from api.state import ApiState

PATH = f"{T}/tasks/{{task}}/runs/{{run}}/artifacts/{{artifact:path}}"
CHUNK = 64 * 1024
PASSIVE = frozenset(
    {
        "application/json",
        "application/octet-stream",
        "text/plain",
        "text/csv",
        "image/png",
        "image/jpeg",
        "image/gif",
        "image/webp",
    }
)
INERT = "application/octet-stream"
CONFINED = {
    "X-Content-Type-Options": "nosniff",
    "Content-Security-Policy": "sandbox; default-src 'none'",
}


def served_type(recorded: str) -> str:
    """The recorded content type when it is passive, else one no browser runs."""
    base = recorded.split(";", 1)[0].strip().lower()
    return recorded if base in PASSIVE else INERT


def attachment(artifact_id: str) -> str:
    """``Content-Disposition`` naming the file by the last part of its artifact id, ASCII only
    (``file:reports/x.html`` -> ``x.html``)."""
    name = artifact_id.rsplit("/", 1)[-1].rsplit(":", 1)[-1]
    safe = "".join(c if c.isascii() and (c.isalnum() or c in "._-") else "_" for c in name)
    return f'attachment; filename="{safe or "artifact"}"'


async def download_artifact(request: Request) -> Response:
    state: ApiState = request.app.state.api
    p = request.path_params
    async with state.db.connection() as conn, conn.cursor(row_factory=dict_row) as cur:
        await require_tenant(cur, p["tenant"])
        await cur.execute(
            "select digest, size_bytes, content_type, object_key from artifacts"
            " where tenant_id = %s and task_id = %s and run_id = %s and artifact_id = %s",
            (p["tenant"], p["task"], p["run"], p["artifact"]),
        )
        row = await cur.fetchone()
    if row is None:
        raise Problem(
            404,
            "not-found",
            "Artifact not found",
            f"no artifact {p['artifact']} of run {p['run']} of task {p['task']}",
            field="artifact",
        )
    etag = f'"{row["digest"]}"'
    headers = {
        "ETag": etag,
        "Content-Length": str(row["size_bytes"]),
        "Content-Disposition": attachment(p["artifact"]),
        **CONFINED,
    }
    if request.headers.get("if-none-match") == etag:
        return Response(status_code=304, headers={"ETag": etag})
    response = await asyncio.to_thread(
        state.s3.get_object, state.settings.s3_bucket, row["object_key"]
    )

    async def chunks() -> AsyncIterator[bytes]:
        try:
            while True:
                chunk = await asyncio.to_thread(response.read, CHUNK)
                if not chunk:
                    return
                yield chunk
        finally:
            response.close()
            response.release_conn()

    return StreamingResponse(chunks(), media_type=served_type(row["content_type"]), headers=headers)
