"""Commands produced straight to ``aion.commands``, past the API: for tests of what the worker
does with a command the API would never send (a duplicate on the topic, an oversized one)."""

from __future__ import annotations

import time
import uuid

from aion.settings import Settings
from schemas.codec import Codec
from schemas.topics import COMMANDS


def create_tenant_value(settings: Settings, tenant: str, display_name: str) -> tuple[str, bytes]:
    """A CreateTenant command's id and its Avro value, in the Confluent wire format."""
    command_id = str(uuid.uuid4())
    envelope = {
        "command_id": command_id,
        "command_type": "aion.tenant.CreateTenant",
        "correlation_id": command_id,
        "tenant_id": tenant,
        "aggregate_type": "tenant",
        "aggregate_id": tenant,
        "expected_version": None,
        "idempotency_key": None,
        "issued_at": int(time.time() * 1000),
        "actor": "test",
    }
    value = Codec(settings.registry).encode(
        COMMANDS,
        "aion.tenant.CreateTenant",
        {"envelope": envelope, "tenant_id": tenant, "display_name": display_name, "labels": {}},
    )
    return command_id, value
