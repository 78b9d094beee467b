"""`aion runs verify`: execute a recorded run again and check that its output is the same.

A run is deterministic by construction (no clock, randomness, network or environment is granted;
the local model is deterministic), so the same module digest, input and quotas must give the
same output digest. The run's DispatchRun (module digest, manifest, input) is read from
``aion.kernel.dispatch`` (kept 7 days) and its recorded outcome from ``aion.events.task``.
Nothing is produced: the re-execution happens here, in this process.
"""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass
from typing import Any

from aion.settings import Settings
from aion.stack.s3 import read_object, s3_client
from kernel import Kernel, mini_model
from schemas.codec import Codec, DecodeError
from schemas.modules import module_object_key
from schemas.topics import DISPATCH, events_topic
from streams.kernel_worker import run_dispatch
from streams.topic_snapshot import read_snapshot

RUN_SUCCEEDED = "aion.run.RunSucceeded"
RUN_FAILED = "aion.run.RunFailed"


class NotVerifiable(LookupError):
    """The run cannot be verified: unknown, dispatch expired, or it never produced an output."""


@dataclass(frozen=True)
class Verification:
    run: str
    recorded_digest: str
    reproduced_digest: str | None
    reproduced_failure: str | None
    fuel_used: int

    @property
    def matches(self) -> bool:
        return self.recorded_digest == self.reproduced_digest

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "matches": self.matches}


class QuietHost:
    """Progress goes nowhere (it was reported the first time); inference is the local model."""

    def progress(self, percent: float | None, message: str) -> None:
        return None

    def infer(self, model: str, prompt: str) -> str:
        return mini_model.infer(prompt)


def split_run(run: str) -> tuple[str, str, str]:
    """``<tenant>/<task id>.<attempt>`` -> (tenant, task id, run id)."""
    tenant_id, _, run_id = run.partition("/")
    task_id, dot, attempt = run_id.rpartition(".")
    if not tenant_id or not dot or not task_id or not attempt.isdigit():
        raise ValueError(f"{run!r} is not a run: expected <tenant>/<task id>.<attempt>")
    return tenant_id, task_id, run_id


def _decoded(settings: Settings, topic: str, key: str, purpose: str) -> list[tuple[str, Any]]:
    codec = Codec(settings.registry)
    found = []
    for message in read_snapshot(settings.kafka, topic, purpose):
        if message.key() != key.encode():
            continue
        try:
            found.append(codec.decode(topic, message.value() or b""))
        except DecodeError:
            continue
    return found


def recorded(settings: Settings, run: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """The run's dispatch and its RunSucceeded event."""
    tenant_id, task_id, run_id = split_run(run)
    dispatches = _decoded(settings, DISPATCH, run, "runs-verify")
    if not dispatches:
        raise NotVerifiable(f"no dispatch of run {run} on {DISPATCH} (unknown, or expired)")
    history = _decoded(settings, events_topic("task"), f"{tenant_id}/{task_id}", "runs-verify")
    outcomes = [v for name, v in history if name == RUN_SUCCEEDED and v["run_id"] == run_id]
    if not outcomes:
        failed = [v for name, v in history if name == RUN_FAILED and v["run_id"] == run_id]
        why = f"it failed ({failed[0]['reason']})" if failed else "no outcome is recorded"
        raise NotVerifiable(f"run {run} has no output to compare: {why}")
    return dispatches[0][1], outcomes[0]


def reexecute(settings: Settings, dispatch: dict[str, Any], kernel: Kernel) -> Any:
    manifest = dispatch["manifest"]
    digest = str(manifest["module_digest"])
    s3 = s3_client(settings.s3, settings.s3_access_key, settings.s3_secret_key, settings.s3_secure)
    key = module_object_key(dispatch["tenant_id"], digest.removeprefix("sha256:"))
    module = kernel.module(digest, read_object(s3, settings.s3_bucket, key))
    return run_dispatch(kernel, module, dispatch, QuietHost())


def verify(settings: Settings, run: str) -> Verification:
    dispatch, outcome = recorded(settings, run)
    kernel = Kernel()
    try:
        result = reexecute(settings, dispatch, kernel)
    finally:
        kernel.close()
    reproduced = None
    if result.ok and result.output is not None:
        reproduced = "sha256:" + hashlib.sha256(result.output).hexdigest()
    failure = None if result.ok else f"{result.reason}: {result.message}"
    return Verification(run, str(outcome["output_digest"]), reproduced, failure, result.fuel_used)
