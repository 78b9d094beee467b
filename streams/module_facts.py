"""What a deployment's decider needs to know about the module its manifest names.

The module lives in the S3 store, outside Kafka, so the stream processor looks it up before
deciding (in a thread, off the event loop) and hands the answer over as a context fact
``("module", "<tenant>/<digest>")``: whether it is stored, its size, and whether its imports
are granted by the manifest's ABI and capabilities (``kernel.import_problem``). Deciders stay
pure; an upload was validated by wasmtime before it was stored.
"""

from __future__ import annotations

import asyncio
import re
from functools import cache
from typing import Any

import wasmtime

from aion.stack.s3 import read_object, stat_or_none
from commands.model import Command, scoped_id
from kernel import import_problem
from schemas.modules import module_object_key
from streams import failpoints
from streams.app import StreamsApp

MANIFEST_COMMANDS = {"aion.agent.DeployAgent", "aion.agent.UpdateAgent"}


@cache
def _engine() -> wasmtime.Engine:
    return wasmtime.Engine()


def module_imports(wasm: bytes) -> list[tuple[str, str]]:
    module = wasmtime.Module(_engine(), wasm)
    return [(str(i.module), str(i.name or "")) for i in module.imports]


def module_fact(streams: StreamsApp, tenant_id: str, hex_digest: str, manifest: Any) -> Any:
    key = module_object_key(tenant_id, hex_digest)
    bucket = streams.settings.s3_bucket
    found = stat_or_none(streams.s3, bucket, key)
    if found is None:
        return None
    imports = module_imports(read_object(streams.s3, bucket, key))
    capabilities = frozenset(str(c) for c in (manifest.get("capabilities") or []))
    problem = import_problem(imports, str(manifest.get("abi")), capabilities)
    return {"status": "stored", "size": found.size, "import_problem": problem}


async def io_facts(streams: StreamsApp, command: Command) -> dict[tuple[str, str], Any]:
    if command.type not in MANIFEST_COMMANDS:
        return {}
    manifest = command.payload.get("manifest") or {}
    digest = str(manifest.get("module_digest", ""))
    match = re.fullmatch(r"sha256:([0-9a-f]{64})", digest)
    if not match:
        return {}  # the decider refuses the syntax itself
    tenant_id = str(command.envelope["tenant_id"])
    if failpoints.fires("facts-unreachable", command.type, times=2):
        raise ConnectionRefusedError("failpoint facts-unreachable: the S3 store did not answer")
    if failpoints.fires("facts-broken", command.type):
        raise RuntimeError("failpoint facts-broken: the module facts could not be read")
    fact = await asyncio.to_thread(module_fact, streams, tenant_id, match.group(1), manifest)
    return {} if fact is None else {("module", scoped_id(tenant_id, digest)): fact}
