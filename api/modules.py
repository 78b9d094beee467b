"""WASM modules: `POST /v1/tenants/{t}/modules` (raw bytes) and `GET .../modules/{digest}`.

A module is stored in the S3 store under its SHA-256, per tenant, only if wasmtime accepts it
(`Module.validate`: a real parse and validation, no instantiation), so a digest that resolves
always names a valid module. The same bytes uploaded twice are stored once.
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import re
from typing import Any

import wasmtime
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from aion.stack.s3 import stat_or_none
from api.body import read_limited
from api.command_routes import tenant_exists
from api.problems import Problem
from api.state import ApiState
from schemas.modules import module_object_key

DIGEST = re.compile(r"sha256:([0-9a-f]{64})")
ENGINE = wasmtime.Engine()  # validation only; compiling and running belong to the kernel


async def read_module(request: Request, limit: int) -> bytes:
    too_large = Problem(
        413,
        "body-too-large",
        "Module too large",
        f"a module may have at most {limit} bytes",
        field="",
    )
    data = await read_limited(request, limit, too_large)
    if not data:
        raise Problem(422, "invalid-module", "Empty module", "the body holds no bytes", field="")
    return data


async def upload_module(request: Request) -> Response:
    state: ApiState = request.app.state.api
    tenant_id = request.path_params["tenant"]
    if not await tenant_exists(state, tenant_id):
        raise Problem(
            404, "not-found", "Tenant not found", f"no tenant {tenant_id}", field="tenant"
        )
    data = await read_module(request, state.settings.max_module_bytes)
    try:
        await asyncio.to_thread(wasmtime.Module.validate, ENGINE, data)
    except wasmtime.WasmtimeError as exc:
        first_line = str(exc).splitlines()[0]
        raise Problem(
            422,
            "invalid-module",
            "Not a valid WebAssembly module",
            f"wasmtime refused it: {first_line}",
            field="",
        ) from exc
    hex_digest = hashlib.sha256(data).hexdigest()
    key = module_object_key(tenant_id, hex_digest)
    location = f"/v1/tenants/{tenant_id}/modules/sha256:{hex_digest}"
    body = {"digest": f"sha256:{hex_digest}", "size": len(data), "location": location}
    if await _stat(state, key) is not None:
        return JSONResponse(body, status_code=200, headers={"Location": location})
    await asyncio.to_thread(
        state.s3.put_object,
        state.settings.s3_bucket,
        key,
        io.BytesIO(data),
        len(data),
        content_type="application/wasm",
    )
    return JSONResponse(body, status_code=201, headers={"Location": location})


async def get_module(request: Request) -> Response:
    state: ApiState = request.app.state.api
    tenant_id, digest = request.path_params["tenant"], request.path_params["digest"]
    match = DIGEST.fullmatch(digest)
    if not match:
        raise Problem(
            400,
            "invalid-parameter",
            "Invalid digest",
            "a digest is sha256: and 64 lower-case hex digits",
            field="digest",
        )
    found = await _stat(state, module_object_key(tenant_id, match.group(1)))
    if found is None:
        raise Problem(404, "not-found", "Module not found", f"no module {digest}", field="digest")
    return JSONResponse(
        {
            "digest": digest,
            "size": found.size,
            "stored_at": found.last_modified.isoformat() if found.last_modified else None,
        }
    )


async def _stat(state: ApiState, key: str) -> Any:
    return await asyncio.to_thread(stat_or_none, state.s3, state.settings.s3_bucket, key)
