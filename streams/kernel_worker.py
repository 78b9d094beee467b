"""Entry point of `aion kernel`: runs the orchestrator's dispatches in the WASM sandbox.

A kernel worker is a member of the consumer group ``aion-kernel`` on ``aion.kernel.dispatch``
(scale out by adding processes, up to the topic's partitions). Each DispatchRun carries all a
run needs (manifest, input, deadline); the worker fetches the module from the S3 store (once
per digest: ``kernel.Kernel`` caches compiled modules in memory and on disk), runs it in a
thread of its pool (one wasmtime Store per run), stores the output and the logs in the S3
store content-addressed (with the files it left in its scratch directory, when granted one), and
reports back with ``streams.run_reports`` (RunStarted, progress,
ArtifactStored, then RunSucceeded or RunFailed with the precise reason).

Delivery: a dispatch's offset is committed only once its run was reported, so a worker killed
mid-run leaves the run to the next owner of the partition, which runs it again; every report's
command id is derived from the run, so the orchestrator records a repeated report once. If no
worker takes it over in time, the orchestrator's watchdog fails the run as ``worker_lost``. A
run during which workers died ``kernel_crashes.MAX_STARTS`` times is not run again but reported
failed (``worker_lost``), and one during which a worker died once runs alone
(``streams/kernel_crashes.py``): a dispatch that kills its worker cannot crash-loop the group.
"""

from __future__ import annotations

import hashlib
import io
import logging
import mimetypes
import os
import signal
import tempfile
import threading
import time
from collections import OrderedDict
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any

import wasmtime
from confluent_kafka import (
    Consumer,
    KafkaError,
    KafkaException,
    Message,
    Producer,
    TopicPartition,
)
from opentelemetry import trace

from aion import metrics, telemetry, tracing
from aion.redis_clients import RedisLimits, sync_client
from aion.settings import Settings
from aion.stack.s3 import read_object, s3_client, stat_or_none
from kernel import Host, Kernel, Limits, RunResult, mini_model
from schemas.codec import Codec, DecodeError
from schemas.modules import module_object_key
from schemas.topics import DEADLETTER, DISPATCH, producer_config
from streams import failpoints
from streams.kernel_crashes import MAX_STARTS, Isolation, StartCounter
from streams.kernel_inflight import InFlight, ReportFailed, RunStarts
from streams.run_reports import Outcome, Run, RunReporter
from streams.server_errors import is_transient

log = logging.getLogger(__name__)
tracer = trace.get_tracer("aion.kernel")

GROUP = "aion-kernel"
MAX_PROGRESS_REPORTS = 100  # per run; a chatty module cannot flood the orchestrator
MODULES_IN_MEMORY = 64
MAX_FILES = 16  # files kept from a run's scratch directory, as artifacts
MAX_FILE_BYTES = 10 << 20
PUT_BLINDLY_BYTES = 64 << 10  # smaller artifacts are written without looking them up first
PREFETCH_PER_THREAD = 16  # dispatches taken per run thread before the consumer pauses
BUSY_POLL_S = 0.005  # with runs in flight, look back soon: a finished run's offset waits
IDLE_POLL_S = 0.2
STORE_FIRST_DELAY_S, STORE_MAX_DELAY_S = 0.5, 10.0  # backoff of an S3 store that failed
STORE_PATIENCE_S = 600.0  # how long a run waits for S3 before the worker gives it up
# Finished runs' offsets are committed at most this often: a commit per run was an
# OffsetCommit request (and a __consumer_offsets record) per task. A killed worker's next owner
# redoes at most this much more, and the report's run id makes a redone run a no-op.
COMMIT_EVERY_S = 0.25


def produced_files(scratch: Path) -> list[tuple[str, bytes]]:
    """The files a run left in its scratch directory, as (relative path, bytes), bounded."""
    found = sorted(p for p in scratch.rglob("*") if p.is_file() and not p.is_symlink())
    kept = [p for p in found if p.stat().st_size <= MAX_FILE_BYTES][:MAX_FILES]
    return [(p.relative_to(scratch).as_posix(), p.read_bytes()) for p in kept]


def artifact_key(tenant_id: str, hex_digest: str) -> str:
    return f"artifacts/{tenant_id}/sha256/{hex_digest}"


class ReportingHost:
    """The host side of one run: progress becomes RunProgress, inference the local model."""

    def __init__(self, reporter: RunReporter, run: Run, starts: RunStarts) -> None:
        self.reporter = reporter
        self.run = run
        self.starts = starts
        self.sequence = 0

    def progress(self, percent: float | None, message: str) -> None:
        self.sequence += 1
        if self.sequence <= MAX_PROGRESS_REPORTS:
            self.starts.report_now(self.run, self.reporter)  # a run's start precedes its progress
            self.reporter.progress(self.run, self.sequence, percent, message[:1000])

    def infer(self, model: str, prompt: str) -> str:
        return mini_model.infer(prompt)


def run_dispatch(
    kernel: Kernel,
    module: wasmtime.Module,
    dispatch: dict[str, Any],
    host: Host,
    scratch_dir: Path | None = None,
) -> RunResult:
    """Execute a DispatchRun's module on its input, within its manifest's quotas."""
    manifest = dispatch["manifest"]
    quotas = manifest["quotas"]
    limits = Limits(
        fuel=int(quotas["fuel"]),
        memory_mb=int(quotas["memory_mb"]),
        timeout_ms=int(quotas["timeout_ms"]),
    )
    return kernel.run(
        module,
        str(manifest["abi"]),
        str(manifest.get("entrypoint") or "run"),
        str(dispatch["input"]).encode(),
        limits,
        frozenset(str(c) for c in manifest.get("capabilities") or []),
        host,
        models=frozenset(str(m) for m in manifest.get("models") or []),
        scratch_dir=scratch_dir,
    )


def observe_run(result: RunResult) -> tuple[str, str]:
    """Count a finished run; returns its (outcome, reason)."""
    outcome = "succeeded" if result.ok and result.output is not None else "failed"
    reason = "none" if outcome == "succeeded" else (result.reason or "trap")
    metrics.KERNEL_RUNS.labels(outcome, reason).inc()
    metrics.KERNEL_RUN_SECONDS.labels(outcome).observe(result.duration_ms / 1000)
    metrics.KERNEL_FUEL_USED.labels(outcome).observe(result.fuel_used)
    return outcome, reason


def traced_run(
    kernel: Kernel,
    module: wasmtime.Module,
    dispatch: dict[str, Any],
    host: Host,
    scratch_dir: Path | None = None,
) -> RunResult:
    """``run_dispatch`` in a span of its own, with the run's fuel, duration and outcome."""
    manifest = dispatch["manifest"]
    attributes: dict[str, str | int] = {
        "aion.agent.name": str(manifest.get("agent_name")),
        "aion.agent.version": str(dispatch.get("agent_version")),
        "aion.run.abi": str(manifest.get("abi")),
        "aion.run.fuel_limit": int(manifest["quotas"]["fuel"]),
    }
    with tracer.start_as_current_span("wasm run", attributes=attributes) as span:
        result = run_dispatch(kernel, module, dispatch, host, scratch_dir)
        outcome, reason = observe_run(result)
        span.set_attributes(
            {
                "aion.run.fuel_used": result.fuel_used,
                "aion.run.duration_ms": result.duration_ms,
                "aion.run.outcome": outcome,
                "aion.run.reason": reason,
            }
        )
        if outcome != "succeeded":
            span.set_status(trace.StatusCode.ERROR, f"{reason}: {result.message}"[:500])
        return result


@dataclass(frozen=True)
class Delivery:
    """Where a dispatch was read from (for the span's messaging attributes)."""

    partition: int | None
    offset: int | None
    key: bytes | None


class KernelWorker:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.name = f"{os.uname().nodename}-{settings.worker_id}-{os.getpid()}"
        self.kernel = Kernel(cache_dir=settings.stack_dir / "kernel" / "modules")
        self.reporter = RunReporter(settings.kafka, settings.registry, worker=self.name)
        self.codec = Codec(settings.registry)
        self.s3 = s3_client(
            settings.s3, settings.s3_access_key, settings.s3_secret_key, settings.s3_secure
        )
        self.modules: OrderedDict[str, wasmtime.Module] = OrderedDict()
        self.modules_lock = threading.Lock()
        self.pool = ThreadPoolExecutor(settings.kernel_concurrency, thread_name_prefix="run")
        self.stopping = threading.Event()
        self.starts = RunStarts()
        self.ended = threading.Event()  # a run ended or its report was acked
        self.crashes = StartCounter(sync_client(settings.redis, RedisLimits.of(settings)))
        self.isolation = Isolation()

    # --- one run ------------------------------------------------------------------------------

    def module_for(self, tenant_id: str, digest: str) -> wasmtime.Module:
        with self.modules_lock:
            if digest in self.modules:
                self.modules.move_to_end(digest)
                return self.modules[digest]
        module = self.kernel.cached_module(digest)  # memory or disk: no S3 round trip
        if module is None:
            key = module_object_key(tenant_id, digest.removeprefix("sha256:"))
            wasm = read_object(self.s3, self.settings.s3_bucket, key)
            module = self.kernel.module(digest, wasm)
        with self.modules_lock:
            self.modules[digest] = module
            while len(self.modules) > MODULES_IN_MEMORY:
                self.modules.popitem(last=False)
        return module

    def store(self, run: Run, artifact_id: str, data: bytes, content_type: str) -> dict[str, Any]:
        """Content-addressed: the same bytes are one object. A large object is looked up first
        and stored once; a small one is written straight away (one round trip, not two)."""
        hex_digest = hashlib.sha256(data).hexdigest()
        key = artifact_key(run.tenant_id, hex_digest)
        bucket = self.settings.s3_bucket
        delay, gave_up_at = STORE_FIRST_DELAY_S, time.monotonic() + STORE_PATIENCE_S
        while True:  # an S3 outage is waited out (issue 17, finding 15): the run is not lost
            try:
                if len(data) <= PUT_BLINDLY_BYTES or stat_or_none(self.s3, bucket, key) is None:
                    self.s3.put_object(
                        bucket, key, io.BytesIO(data), len(data), content_type=content_type
                    )
                break
            except Exception as exc:
                if not is_transient(exc) or time.monotonic() > gave_up_at or self.stopping.is_set():
                    raise
                log.warning("S3 did not store %s (%s); again in %.1f s", artifact_id, exc, delay)
                time.sleep(delay)
                delay = min(delay * 2, STORE_MAX_DELAY_S)
        return {
            "artifact_id": artifact_id,
            "digest": f"sha256:{hex_digest}",
            "size_bytes": len(data),
            "content_type": content_type,
            "object_key": key,
        }

    def execute(self, dispatch: dict[str, Any], delivery: Delivery | None = None) -> Future[None]:
        """Run one dispatch and report what became of it; returns the report's ack.

        In a CONSUMER span continuing the trace of the command that scheduled the run; the
        reports carry this span's context (``RunReporter``), the WASM call has a child span.
        """
        envelope = dispatch.get("envelope") or {}
        at = delivery or Delivery(None, None, None)
        attributes = {
            **tracing.kafka_attributes(DISPATCH, at.key, at.partition, at.offset, GROUP),
            "messaging.message.id": str(envelope.get("event_id")),
            "aion.tenant.id": str(dispatch["tenant_id"]),
            "aion.run.id": str(dispatch["run_id"]),
        }
        with (
            tracer.start_as_current_span(
                f"process {DISPATCH}",
                context=tracing.parent_context(envelope),
                kind=trace.SpanKind.CONSUMER,
                attributes=attributes,
            ),
            telemetry.log_context(**telemetry.envelope_ids(envelope), run_id=dispatch["run_id"]),
        ):
            metrics.KERNEL_RUNS_ACTIVE.inc()
            try:
                return self.execute_traced(dispatch)
            finally:
                metrics.KERNEL_RUNS_ACTIVE.dec()

    def refuse(self, run: Run, attempt: int, message: str, reason: str = "refused") -> Future[None]:
        metrics.KERNEL_RUNS.labels("failed", reason).inc()
        trace.get_current_span().set_attribute("aion.run.outcome", reason)
        outcome = Outcome(failure_reason=reason, failure_message=message)
        return self.reporter.finished(run, attempt, "never", [], outcome)

    def execute_traced(self, dispatch: dict[str, Any]) -> Future[None]:
        run = Run(dispatch["tenant_id"], dispatch["task_id"], dispatch["run_id"])
        attempt = int(dispatch["attempt"])
        manifest = dispatch["manifest"]
        deadline = dispatch.get("deadline_ms")
        if deadline is not None and time.time() * 1000 > deadline:
            return self.refuse(run, attempt, "the task's deadline passed before the run")
        try:
            module = self.module_for(run.tenant_id, manifest["module_digest"])
        except Exception as exc:  # missing or unreadable module: the run cannot start
            log.warning("run %s: module unavailable: %s", run.run_id, exc)
            return self.refuse(run, attempt, f"module unavailable: {exc}")
        starts = self.crashes.begin(run.run_id)
        if starts > MAX_STARTS:
            log.error(
                "run %s: its kernel workers died %d times; not run again", run.run_id, starts - 1
            )
            message = f"kernel workers died during this run {starts - 1} times; it is not run again"
            return self.refuse(run, attempt, message, reason="worker_lost")
        with self.isolation.slot(starts):
            failpoints.hit("kernel-run", str(manifest.get("agent_name")))
            return self.execute_counted(run, attempt, dispatch, module)

    def execute_counted(
        self, run: Run, attempt: int, dispatch: dict[str, Any], module: wasmtime.Module
    ) -> Future[None]:
        """Run the module, clear its start count as soon as it returned (an S3 outage after
        that is no crash of the run's), store what it left, report."""
        manifest = dispatch["manifest"]
        capabilities = frozenset(str(c) for c in manifest.get("capabilities") or [])
        artifacts: list[dict[str, Any]] = []
        self.starts.begin(run, attempt)
        try:
            host = ReportingHost(self.reporter, run, self.starts)
            if "scratch_dir" in capabilities:  # a folder only for the runs granted one
                with tempfile.TemporaryDirectory(prefix="aion-run-") as scratch:
                    result = traced_run(self.kernel, module, dispatch, host, Path(scratch))
                    self.crashes.finished(run.run_id)  # this worker survived the run
                    for name, data in produced_files(Path(scratch)):
                        kind = mimetypes.guess_type(name)[0] or "application/octet-stream"
                        artifacts.append(self.store(run, f"file:{name}", data, kind))
            else:
                result = traced_run(self.kernel, module, dispatch, host)
                self.crashes.finished(run.run_id)
            if result.logs:
                artifacts.append(self.store(run, "logs", result.logs, "text/plain"))
            fuel, took = result.fuel_used, result.duration_ms
            if result.ok and result.output is not None:
                output = self.store(run, "output", result.output, "application/json")
                artifacts.append(output)
                outcome = Outcome(fuel, took, output["digest"], len(result.output))
            else:
                reason = result.reason or "trap"
                outcome = Outcome(fuel, took, failure_reason=reason, failure_message=result.message)
        finally:
            start = self.starts.end(run)
        log.info("run %s/%s: %s", run.tenant_id, run.run_id, outcome.failure_reason or "ok")
        return self.reporter.finished(run, attempt, start, artifacts, outcome)

    # --- the consumer loop --------------------------------------------------------------------

    def decode(self, message: Message) -> dict[str, Any] | None:
        try:
            _, value = self.codec.decode(DISPATCH, message.value() or b"")
            return value
        except DecodeError as exc:
            self.deadletter(message, exc)
            return None

    def deadletter(self, message: Message, error: Exception) -> None:
        producer = Producer(producer_config(self.settings.kafka))
        headers: dict[str, str | bytes | None] = {
            "aion-error": f"{type(error).__name__}: {error}"[:2000],
            "aion-source-topic": message.topic() or DISPATCH,
            "aion-source-partition": str(message.partition()),
            "aion-source-offset": str(message.offset()),
            "aion-failed-at": str(int(time.time() * 1000)),
        }
        metrics.DEADLETTERS.labels(message.topic() or DISPATCH).inc()
        producer.produce(DEADLETTER, key=message.key(), value=message.value(), headers=headers)
        producer.flush(10)
        log.warning("dead-lettered dispatch at offset %s: %s", message.offset(), error)

    def loop(self) -> None:
        consumer = Consumer(
            {
                "bootstrap.servers": self.settings.kafka,
                "group.id": GROUP,
                "enable.auto.commit": False,
                "auto.offset.reset": "earliest",
                "session.timeout.ms": 10_000,
                # Up to 10 ms for 64 KiB: a busy partition's dispatches in fewer fetches.
                "fetch.min.bytes": 65_536,
                "fetch.wait.max.ms": 10,
            }
        )
        consumer.subscribe([DISPATCH])
        inflight = InFlight()
        # Dispatches taken ahead of the pool: runs queue for a thread instead of waiting for
        # a poll round, and reports of finished runs are acked while others run.
        most = max(self.settings.kernel_concurrency * PREFETCH_PER_THREAD, 8)
        committed_at = 0.0
        try:
            while not self.stopping.is_set():
                self.starts.report_long(self.reporter)
                if time.monotonic() - committed_at >= COMMIT_EVERY_S:
                    self.commit_finished(consumer, inflight)
                    committed_at = time.monotonic()
                if len(inflight) >= most:
                    # Full: wait for a run to end instead of pausing the consumer (a paused
                    # partition drops what was fetched ahead, and librdkafka then holds its
                    # next fetch back for up to a second: runs went out 32 a second).
                    self.ended.wait(BUSY_POLL_S)
                    self.ended.clear()
                    continue
                message = consumer.poll(BUSY_POLL_S if len(inflight) else IDLE_POLL_S)
                error = message.error() if message is not None else None
                if error is not None:
                    if error.code() != KafkaError._PARTITION_EOF:
                        log.warning("consumer error: %s", error)
                elif message is not None:
                    self.take(message, inflight)
        finally:
            self.pool.shutdown(wait=True, cancel_futures=False)
            self.reporter.close()
            self.commit_finished(consumer, inflight, asynchronous=False)
            consumer.close()
            self.kernel.close()

    def take(self, message: Message, inflight: InFlight) -> None:
        dispatch = self.decode(message)
        taken: Future[Future[None] | None] = Future()
        if dispatch is None:
            taken.set_result(None)
        else:
            delivery = Delivery(message.partition(), message.offset(), message.key())
            taken = self.pool.submit(self.execute, dispatch, delivery)
            taken.add_done_callback(self._run_ended)
        inflight.add(int(message.partition() or 0), int(message.offset() or 0), taken)

    def _run_ended(self, taken: Future[Future[None] | None]) -> None:
        """Wake the loop when a run ends, and again when its report is acknowledged."""
        self.ended.set()
        if not taken.cancelled() and taken.exception() is None:
            acked = taken.result()
            if acked is not None:
                acked.add_done_callback(lambda _: self.ended.set())

    def commit_finished(
        self, consumer: Consumer, inflight: InFlight, asynchronous: bool = True
    ) -> None:
        try:
            ready = inflight.committable()
        except ReportFailed as exc:
            # Reporting failed (Kafka down): never commit past it, so it is redone.
            log.error("a run was not reported: %s", exc)
            self.stopping.set()
            return
        offsets = [TopicPartition(DISPATCH, p, offset) for p, offset in ready.items()]
        if offsets:
            try:
                if asynchronous:
                    consumer.commit(offsets=offsets, asynchronous=True)
                else:
                    consumer.commit(offsets=offsets, asynchronous=False)
            except KafkaException as exc:  # partitions moved away: their next owner redoes
                log.warning("commit of finished runs failed: %s", exc)


def run(settings: Settings) -> None:
    worker = KernelWorker(settings)

    def stop(signum: int, frame: FrameType | None) -> None:
        worker.stopping.set()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    log.info("kernel worker %s running %d runs at a time", worker.name, settings.kernel_concurrency)
    worker.loop()
