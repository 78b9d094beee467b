"""Artifact download: a run's output, logs or files, streamed from the S3 store.

The read model says which object holds the artifact (and that it belongs to this tenant's
task); the bytes come from the S3 store in chunks, never whole in memory. The digest is the
ETag: artifacts are content-addressed, so a cached copy with the same digest is the same bytes.
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
    headers = {"ETag": etag, "Content-Length": str(row["size_bytes"])}
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

    return StreamingResponse(chunks(), media_type=row["content_type"], headers=headers)
