"""How a kernel worker tells the orchestrator what became of a run.

A run is usually reported in one command, ``RecordRunFinished`` (its start, artifacts and
outcome); a run still going after a moment has its start reported on its own before that
(``RecordRunStarted``), so the orchestrator's watchdog watches it (decision 50).

Reports are internal commands (``aion.run.Record*``) on ``aion.tasks``, keyed by task like the
task's own commands, so that they reach the task's single writer in order with them (a cancel
and a success race deterministically there; decision 56). Each report's command id is
derived from the run id, the kind and a sequence number: a report sent twice (a worker retried
after a timeout) is recognised and recorded once.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Mapping
from concurrent.futures import Future
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from confluent_kafka import Producer

from aion import tracing
from commands.model import scoped_id
from schemas.codec import Codec
from schemas.topics import TASKS, producer_config

STARTED = "aion.run.RecordRunStarted"
PROGRESS = "aion.run.RecordRunProgress"
SUCCEEDED = "aion.run.RecordRunSucceeded"
FAILED = "aion.run.RecordRunFailed"
ARTIFACT = "aion.run.RecordArtifactStored"
FINISHED = "aion.run.RecordRunFinished"
LINGER_MS = 2  # reports of concurrent runs share a request; a run's report waits at most this
REPORT_NAMESPACE = uuid.UUID("1b0c3f5e-2a47-4f0a-9d8e-7c4b6a1e9f21")


@dataclass(frozen=True)
class Outcome:
    """How a run ended: an output's digest and size, or a failure's reason and message."""

    fuel_used: int = 0
    duration_ms: int = 0
    output_digest: str | None = None
    output_bytes: int = 0
    failure_reason: str | None = None
    failure_message: str = ""


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
    """Produces reports without waiting: each send returns a future that the broker's ack
    resolves (or its refusal fails). The caller decides what waits for it: the kernel worker
    commits a dispatch's offset only once its run's last report is acknowledged.

    Reports of one task go to one partition from one idempotent producer, so they arrive in
    the order they were sent (a run's start before its end), retries included.
    """

    def __init__(self, kafka: str, registry: str, worker: str = "kernel") -> None:
        config = {"enable.idempotence": True, "linger.ms": LINGER_MS}
        self.producer = Producer(producer_config(kafka, **config))
        self.codec = Codec(registry)
        self.worker = worker
        self.closing = threading.Event()
        self.poller = threading.Thread(target=self._serve, name="reports", daemon=True)
        self.poller.start()

    def _serve(self) -> None:
        """Delivery reports are served by this thread, so no run's thread waits to poll."""
        while not self.closing.is_set():
            self.producer.poll(0.05)

    def close(self, timeout: float = 30) -> None:
        self.producer.flush(timeout)
        self.closing.set()
        self.poller.join(timeout)

    def send(
        self, run: Run, kind: str, payload: dict[str, Any], sequence: int | str = 0
    ) -> Future[None]:
        """``sequence`` tells apart several reports of one kind (progress steps, artifacts)."""
        carrier = tracing.current_carrier()
        value = report_command(run, kind, payload, sequence, self.worker, carrier)
        data = self.codec.encode(TASKS, kind, value)
        acked: Future[None] = Future()

        def delivered(err: Any, _msg: Any) -> None:
            if err:
                acked.set_exception(RuntimeError(f"report {kind} of run {run.run_id}: {err}"))
            else:
                acked.set_result(None)

        self.producer.produce(
            TASKS,
            key=scoped_id(run.tenant_id, run.task_id).encode(),
            value=data,
            headers={"aion-type": kind.encode(), **{k: v.encode() for k, v in carrier.items()}},
            on_delivery=delivered,
        )
        return acked

    def started(self, run: Run, attempt: int) -> Future[None]:
        return self.send(run, STARTED, {"attempt": attempt, "worker": self.worker})

    def finished(
        self,
        run: Run,
        attempt: int,
        start: str,
        artifacts: list[dict[str, Any]],
        outcome: Outcome,
    ) -> Future[None]:
        """The whole run in one report: ``start`` is here, before or never (see the schema)."""
        payload = {
            "attempt": attempt,
            "worker": self.worker,
            "start": start,
            "artifacts": artifacts,
            "output_digest": outcome.output_digest,
            "output_bytes": outcome.output_bytes,
            "failure_reason": outcome.failure_reason,
            "failure_message": outcome.failure_message,
            "fuel_used": outcome.fuel_used,
            "duration_ms": outcome.duration_ms,
        }
        return self.send(run, FINISHED, payload)

    # The one-fact reports: still commands the decider records (tests drive the orchestrator
    # with them); the kernel worker sends ``finished`` instead.

    def succeeded(
        self, run: Run, output_digest: str, output_bytes: int, fuel_used: int, duration_ms: int
    ) -> Future[None]:
        payload = {
            "output_digest": output_digest,
            "output_bytes": output_bytes,
            "fuel_used": fuel_used,
            "duration_ms": duration_ms,
        }
        return self.send(run, SUCCEEDED, payload)

    def failed(
        self, run: Run, reason: str, message: str, fuel_used: int = 0, duration_ms: int = 0
    ) -> Future[None]:
        payload = {
            "reason": reason,
            "message": message,
            "fuel_used": fuel_used,
            "duration_ms": duration_ms,
        }
        return self.send(run, FAILED, payload)

    def progress(self, run: Run, sequence: int, percent: float | None, message: str) -> None:
        payload = {"sequence": sequence, "percent": percent, "message": message}
        self.send(run, PROGRESS, payload, sequence)
