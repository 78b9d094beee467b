"""The ingest baseline: a bare Starlette endpoint on the same server stack (uvicorn, the same
producer and codec) that only turns the body into the same Avro command and produces it.

No authentication, rate limit, authorization, validation, tenant check, idempotency or
pending-status write: the ratio of Aion's rate to this one's is the price of all of those.
The bytes are those of an `aion.commands` record (same schema id); they go to a topic of the
benchmark's own, so that no worker has to decide them afterwards.

    python -m aion.bench.bare_endpoint PORT TOPIC
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from aion.ids import new_id
from aion.settings import Settings
from api import server
from api.producer import AsyncProducer
from schemas.codec import Codec
from schemas.topics import COMMANDS

RECORD = "aion.model.RegisterModel"


def bench_envelope(
    command_id: str, record: str, tenant: str, aggregate_type: str, aggregate_id: str
) -> dict[str, object]:
    """The command envelope the baselines write: what the API writes, minus what only the API
    knows (the caller, the trace, an idempotency key)."""
    return {
        "command_id": command_id,
        "command_type": record,
        "correlation_id": command_id,
        "tenant_id": tenant,
        "aggregate_type": aggregate_type,
        "aggregate_id": aggregate_id,
        "expected_version": None,
        "idempotency_key": None,
        "issued_at": int(time.time() * 1000),
        "actor": "bench",
        "actor_roles": [],
        "traceparent": None,
        "tracestate": None,
    }


def create_app(settings: Settings, topic: str) -> Starlette:
    state: dict[str, object] = {}

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        state["producer"] = AsyncProducer(settings.kafka)
        state["codec"] = Codec(settings.registry)
        yield
        producer = state["producer"]
        assert isinstance(producer, AsyncProducer)
        producer.close()

    async def ingest(request: Request) -> Response:
        tenant = request.path_params["tenant"]
        payload = json.loads(await request.body())
        command_id = new_id()
        envelope = bench_envelope(
            command_id, RECORD, tenant, "model", f"{tenant}/{payload['model_name']}"
        )
        codec = state["codec"]
        producer = state["producer"]
        assert isinstance(codec, Codec) and isinstance(producer, AsyncProducer)
        value = codec.encode(COMMANDS, RECORD, {"envelope": envelope, **payload})
        delivered = await producer.send(topic, tenant.encode(), value, {})
        return JSONResponse(
            {"command_id": command_id, "position": [delivered.partition, delivered.offset]},
            status_code=202,
        )

    return Starlette(
        routes=[Route("/v1/tenants/{tenant}/models", ingest, methods=["POST"])],
        lifespan=lifespan,
    )


def main() -> None:
    server.run(create_app(Settings(), sys.argv[2]), "127.0.0.1", int(sys.argv[1]))


if __name__ == "__main__":
    main()
