"""The facts of tenants that existed before the task stage (decision 56), sent once.

A stack upgraded to decision 56 has tenants, agents, API keys and policies whose summaries were
never replicated to ``aion.tasks``: its task stage would refuse every task ("tenant does not
exist"). When ``aion.tasks`` is created on a stack whose ``aion.commands`` already existed,
the bootstrap folds the events topics of those four aggregates (small: tasks are not read) and
sends each current summary to every partition, as the tenant stage would have.

Tasks in flight at the upgrade live in the tenant stage's table, where the task stage does not
look: ``aion replay write-model --replace`` moves them (with the workers stopped).
"""

from __future__ import annotations

import logging
import time
import uuid
from datetime import UTC, datetime
from typing import Any

import orjson
from confluent_kafka import Producer

from aion.settings import Settings
from commands.admission import REPLICATE_FACT
from schemas.codec import Codec
from schemas.topics import TASKS, producer_config
from streams.rebuild_changelog import Report, event_records
from streams.rebuild_state import documents, fold

log = logging.getLogger(__name__)
SOURCES = ("tenant", "agent", "api_key", "policy")
BACKFILL_NAMESPACE = uuid.UUID("6f1d2c3b-4a5e-4f60-8b7c-9d0e1f2a3b4c")


def fact_message(key: str, summary: dict[str, Any], partition: int) -> dict[str, Any]:
    """``fact:<type>:<id>`` and its summary, as a ReplicateFact command."""
    _, fact_type, fact_id = key.split(":", 2)
    tenant = fact_id.split("/", 1)[0]
    command_id = str(uuid.uuid5(BACKFILL_NAMESPACE, f"{key}/{partition}/{time.time_ns()}"))
    envelope: dict[str, Any] = {
        "command_id": command_id,
        "command_type": REPLICATE_FACT,
        "correlation_id": command_id,
        "tenant_id": tenant,
        "aggregate_type": "tenant" if fact_type in ("tenant", "policies") else fact_type,
        "aggregate_id": fact_id,
        "expected_version": None,
        "idempotency_key": None,
        "issued_at": datetime.now(UTC),
        "actor": "aion-bootstrap",
        "actor_roles": [],
        "traceparent": None,
        "tracestate": None,
    }
    body = orjson.dumps(summary, option=orjson.OPT_SORT_KEYS).decode()
    return {"envelope": envelope, "fact_type": fact_type, "fact_id": fact_id, "summary": body}


def backfill(settings: Settings, partitions: int) -> int:
    """Send every current fact to every partition of aion.tasks; returns how many facts."""
    report = Report()
    folded = fold(event_records(settings, report, SOURCES))
    if report.undecodable:
        log.warning("%d undecodable records were skipped", report.undecodable)
    facts = documents(folded, int(time.time() * 1000), settings.watchdog_grace_ms).facts
    if not facts:
        return 0
    codec = Codec(settings.registry)
    producer = Producer(producer_config(settings.kafka, **{"enable.idempotence": True}))
    for key, document in facts.items():
        for partition in range(partitions):
            value = codec.encode(
                TASKS, REPLICATE_FACT, fact_message(key, document["state"], partition)
            )
            producer.produce(TASKS, key=key.encode(), value=value, partition=partition)
            producer.poll(0)
    if producer.flush(60):
        raise RuntimeError("Kafka did not take every replicated fact within 60 s; run again")
    return len(facts)
