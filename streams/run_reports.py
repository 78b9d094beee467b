"""How a kernel worker tells the orchestrator what became of a run.

Reports are internal commands (``aion.run.Record*``) on ``aion.commands``, keyed by tenant like
every command, so that they reach the tenant's single writer in order with the tenant's own
commands (a cancel and a success race deterministically there). Each report's command id is
derived from the run id, the kind and a sequence number: a report sent twice (a worker retried
after a timeout) is recognised and recorded once.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from confluent_kafka import Producer

from aion import tracing
from commands.model import scoped_id
from schemas.codec import Codec
from schemas.topics import COMMANDS, producer_config

STARTED = "aion.run.RecordRunStarted"
PROGRESS = "aion.run.RecordRunProgress"
SUCCEEDED = "aion.run.RecordRunSucceeded"
FAILED = "aion.run.RecordRunFailed"
ARTIFACT = "aion.run.RecordArtifactStored"
REPORT_NAMESPACE = uuid.UUID("1b0c3f5e-2a47-4f0a-9d8e-7c4b6a1e9f21")


@dataclass(frozen=True)
class Run:
    """The run a report is about, as the DispatchRun message named it."""

    tenant_id: str
    task_id: str
    run_id: str


def report_command(
    run: Run,
    kind: str,
    payload: dict[str, Any],
    sequence: int | str = 0,
    worker: str = "kernel",
    carrier: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """The Avro value of one report command (envelope and payload); ``carrier`` is the trace
    context of the run's span, so the orchestrator's handling continues the run's trace."""
    command_id = str(
        uuid.uuid5(REPORT_NAMESPACE, f"{run.tenant_id}/{run.run_id}/{kind}/{sequence}")
    )
    return {
        "envelope": {
            "command_id": command_id,
            "command_type": kind,
            "correlation_id": command_id,
            "tenant_id": run.tenant_id,
            "aggregate_type": "task",
            "aggregate_id": scoped_id(run.tenant_id, run.task_id),
            "expected_version": None,
            "idempotency_key": None,
            "issued_at": datetime.now(UTC),
            "actor": f"kernel:{worker}",
            "traceparent": (carrier or {}).get("traceparent"),
            "tracestate": (carrier or {}).get("tracestate"),
        },
        "task_id": run.task_id,
        "run_id": run.run_id,
        **payload,
    }


class RunReporter:
    """Produces reports and waits for Kafka's ack (a report must not be lost)."""

    def __init__(self, kafka: str, registry: str, worker: str = "kernel") -> None:
        self.producer = Producer(producer_config(kafka, **{"enable.idempotence": True}))
        self.codec = Codec(registry)
        self.worker = worker

    def send(self, run: Run, kind: str, payload: dict[str, Any], sequence: int | str = 0) -> None:
        """``sequence`` tells apart several reports of one kind (progress steps, artifacts)."""
        carrier = tracing.current_carrier()
        value = report_command(run, kind, payload, sequence, self.worker, carrier)
        data = self.codec.encode(COMMANDS, kind, value)
        errors: list[Any] = []
        self.producer.produce(
            COMMANDS,
            key=run.tenant_id.encode(),
            value=data,
            headers={"aion-type": kind.encode(), **{k: v.encode() for k, v in carrier.items()}},
            on_delivery=lambda err, _msg: errors.append(err) if err else None,
        )
        if self.producer.flush(30) or errors:
            raise RuntimeError(f"report {kind} for run {run.run_id} was not acknowledged: {errors}")

    def started(self, run: Run, attempt: int) -> None:
        self.send(run, STARTED, {"attempt": attempt, "worker": self.worker})

    def succeeded(
        self, run: Run, output_digest: str, output_bytes: int, fuel_used: int, duration_ms: int
    ) -> None:
        payload = {
            "output_digest": output_digest,
            "output_bytes": output_bytes,
            "fuel_used": fuel_used,
            "duration_ms": duration_ms,
        }
        self.send(run, SUCCEEDED, payload)

    def failed(
        self, run: Run, reason: str, message: str, fuel_used: int = 0, duration_ms: int = 0
    ) -> None:
        payload = {
            "reason": reason,
            "message": message,
            "fuel_used": fuel_used,
            "duration_ms": duration_ms,
        }
        self.send(run, FAILED, payload)

    def progress(self, run: Run, sequence: int, percent: float | None, message: str) -> None:
        payload = {"sequence": sequence, "percent": percent, "message": message}
        self.send(run, PROGRESS, payload, sequence)

    def artifact(
        self,
        run: Run,
        artifact_id: str,
        digest: str,
        size_bytes: int,
        content_type: str,
        object_key: str,
    ) -> None:
        payload = {
            "artifact_id": artifact_id,
            "digest": digest,
            "size_bytes": size_bytes,
            "content_type": content_type,
            "object_key": object_key,
        }
        self.send(run, ARTIFACT, payload, artifact_id)
