"""WASM module upload: validated by wasmtime, content-addressed in the S3 store."""

from __future__ import annotations

import hashlib

import httpx
import pytest

from aion.settings import Settings
from aion.stack.s3 import S3
from schemas.modules import module_object_key
from tests.stack.test_domain_api import ECHO, WAIT, WASM
from tests.stack.test_tenants_api import assert_problem, new_tenant_id


@pytest.fixture()
def tenant(api: httpx.Client) -> str:
    tenant_id = new_tenant_id()
    body = {"tenant_id": tenant_id, "display_name": "M"}
    assert api.post("/v1/tenants", json=body, headers=WAIT).status_code == 201
    return tenant_id


def test_a_module_is_stored_under_its_sha256(
    api: httpx.Client, settings: Settings, tenant: str
) -> None:
    digest = hashlib.sha256(ECHO).hexdigest()
    first = api.post(f"/v1/tenants/{tenant}/modules", content=ECHO, headers=WASM)
    assert first.status_code == 201, first.text
    assert first.json() == {
        "digest": f"sha256:{digest}",
        "size": len(ECHO),
        "location": f"/v1/tenants/{tenant}/modules/sha256:{digest}",
    }
    again = api.post(f"/v1/tenants/{tenant}/modules", content=ECHO, headers=WASM)
    assert (again.status_code, again.json()) == (200, first.json())
    stored = S3(settings).client().get_object(settings.s3_bucket, module_object_key(tenant, digest))
    assert stored.read() == ECHO
    meta = api.get(first.headers["location"]).json()
    assert (meta["digest"], meta["size"]) == (f"sha256:{digest}", len(ECHO))


def test_bytes_that_are_not_wasm_are_refused_and_not_stored(
    api: httpx.Client, settings: Settings, tenant: str
) -> None:
    junk = b"\x7fELF this is not a module"
    response = api.post(f"/v1/tenants/{tenant}/modules", content=junk, headers=WASM)
    problem = assert_problem(response, 422, "")
    assert "magic header not detected" in problem["detail"]
    digest = hashlib.sha256(junk).hexdigest()
    assert_problem(api.get(f"/v1/tenants/{tenant}/modules/sha256:{digest}"), 404, "digest")


def test_module_upload_errors(api: httpx.Client, settings: Settings, tenant: str) -> None:
    too_big = b"\0asm" + b"\0" * settings.max_module_bytes
    assert_problem(api.post(f"/v1/tenants/{tenant}/modules", content=too_big), 413, "")
    assert_problem(api.post(f"/v1/tenants/{tenant}/modules", content=b""), 422, "")
    assert_problem(api.post(f"/v1/tenants/{new_tenant_id()}/modules", content=ECHO), 404, "tenant")
    assert_problem(api.get(f"/v1/tenants/{tenant}/modules/md5:abc"), 400, "digest")
