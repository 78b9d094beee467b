"""Semantic search over a tenant's agents and run outputs (the Qdrant read model).

The tenant in the path becomes a must-filter inside the vector store (``VectorStore.search``
takes it as a required argument): no query text can reach another tenant's points.
"""

from __future__ import annotations

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from api.listing import parse_limit
from api.problems import Problem
from api.queries import T, require_tenant
from api.state import ApiState
from projections.vectors import KINDS

PATH = f"{T}/search"


async def search(request: Request) -> Response:
    state: ApiState = request.app.state.api
    tenant_id = request.path_params["tenant"]
    text = (request.query_params.get("q") or "").strip()
    if not text:
        raise Problem(422, "invalid-parameter", "Invalid query parameter", "q must not be blank",
                      field="q")  # fmt: skip
    kinds = request.query_params.getlist("kind") or list(KINDS)
    unknown = [k for k in kinds if k not in KINDS]
    if unknown:
        raise Problem(
            422,
            "invalid-parameter",
            "Invalid query parameter",
            f"kind must be one of {', '.join(KINDS)}",
            field="kind",
        )
    limit = min(parse_limit(request.query_params.get("limit") or "10"), 50)
    async with state.db.connection() as conn, conn.cursor() as cur:
        await require_tenant(cur, tenant_id)
    store = state.search.store
    if store is None:
        raise Problem(503, "search-unavailable", "Search unavailable", state.search.unavailable)
    hits = await run_in_threadpool(store.search, tenant_id, text, kinds, limit)
    items = [
        {"kind": h.kind, "id": h.entity_id, "score": round(h.score, 4), **h.fields} for h in hits
    ]
    return JSONResponse({"items": items, "embedder": store.embedder.name})
