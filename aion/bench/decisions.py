"""Scenarios 5 and 6, in-process: kernel runs beside a bare wasmtime loop, and Cedar decisions
beside bare cedarpy on the very same request, policies and entities."""

from __future__ import annotations

import json
import tempfile
from collections.abc import Callable
from pathlib import Path

import cedarpy

from aion.bench.harness import Figure
from api.authorization import action_for, decide, request_for
from api.authorization import compiled as api_compiled
from api.principal import Principal
from commands import enforcement
from kernel.bench import INPUT, LIMITS, bare_step, rate
from kernel.mini_model import MiniHost
from kernel.module_cache import digest_of
from kernel.runtime import Kernel
from kernel.shipped import example_wasm

MANIFEST = {
    "agent_name": "echo",
    "version": "1.0.0",
    "abi": "reactor",
    "models": ["mini"],
    "capabilities": [],
    "labels": {"team": "search"},
    "quotas": {"fuel": 5000, "memory_mb": 16, "timeout_ms": 1000, "max_concurrency": 2},
}
TENANT = {"status": "active", "users": {"alice": ["developer"]}}
POLICIES = {
    "big-inputs": 'forbid(principal, action == Action::"SubmitTask", resource) '
    "when { resource.input_bytes > 100000 };",
    "prod-needs-operator": "forbid(principal, action, resource) "
    'when { resource.labels.contains("env=prod") } unless { principal in Role::"operator" };',
}


WASI_NAME = "runs/s (wasi_echo)"


def wasi_runs(trials: int, seconds: float) -> list[float]:
    """``Kernel.run`` of the WASI echo example (scenario 8's agent) alone, runs/s per trial."""
    wasm = example_wasm("wasi_echo")
    with tempfile.TemporaryDirectory() as tmp:
        kernel = Kernel(cache_dir=Path(tmp))
        module = kernel.module(digest_of(wasm), wasm)
        host = MiniHost()

        def step() -> object:
            return kernel.run(module, "wasi_command", "_start", INPUT, LIMITS, frozenset(), host)

        runs = [rate(step, seconds) for _ in range(trials)]
        kernel.close()
    return runs


def kernel_runs(trials: int, seconds: float) -> list[Figure]:
    wasm = example_wasm("echo")
    with tempfile.TemporaryDirectory() as tmp:
        kernel = Kernel(cache_dir=Path(tmp))
        module = kernel.module(digest_of(wasm), wasm)
        host = MiniHost()

        def ours_step() -> object:
            return kernel.run(module, "reactor", "run", INPUT, LIMITS, frozenset(), host)

        bare = bare_step(kernel.engine, module)
        ours, base = [], []
        for _ in range(trials):
            ours.append(rate(ours_step, seconds))
            base.append(rate(bare, seconds))
        kernel.close()
    # A difference of two noisy rates: near zero it can come out negative (derived).
    overheads = [1e6 / o - 1e6 / b for o, b in zip(ours, base, strict=True)]
    return [
        Figure(
            "5 kernel",
            "runs/s (echo)",
            "/s",
            ours,
            base,
            "bare wasmtime loop",
            target="per-run time at most 2x the bare loop's",
            check=lambda f: (f.ratio or 0) >= 0.5,
        ),
        Figure(
            "5 kernel",
            "overhead per run",
            "us",
            overheads,
            higher_is_better=False,
            derived=True,
            note="Kernel.run's time per run less the bare loop's, trial by trial",
        ),
        Figure(
            "5 kernel",
            WASI_NAME,
            "/s",
            wasi_runs(trials, seconds),
            note="the WASI command of scenario 8's tasks, Kernel.run alone",
        ),
    ]


def _bare_cedar(request: dict[str, object], policies: cedarpy.PolicySet) -> Callable[[], object]:
    def ref(uid: object) -> str:
        assert isinstance(uid, dict)
        return f"{uid['type']}::{json.dumps(uid['id'])}"

    bare_request = {
        "principal": ref(request["principal"]),
        "action": ref(request["action"]),
        "resource": ref(request["resource"]),
        "context": request["context"],
    }
    entities = request["entities"]
    return lambda: cedarpy.is_authorized(bare_request, policies, entities)  # type: ignore[arg-type]


def policy_decisions(trials: int, seconds: float) -> list[Figure]:
    task = {"task_id": "t-1", "input_bytes": 120, "labels": {"env": "dev"}}

    def enforce_request() -> dict[str, object]:
        return enforcement.request_for(
            "aion.task.SubmitTask", "acme", "alice", TENANT, 1, MANIFEST, task, ["developer"]
        )

    compiled = enforcement.compile_policies(enforcement.policy_key(POLICIES))
    request = enforce_request()

    # Ours: what the command processor does per decision (build the request, evaluate).
    def ours_enforce() -> object:
        return enforcement.evaluate(enforce_request(), compiled)

    caller = Principal("alice", "acme", frozenset({"developer"}))
    action = action_for("POST", "/v1/tenants/{tenant}/tasks")
    api_policies = tuple(sorted(POLICIES.items()))

    def ours_api() -> object:
        return decide(caller, action, "acme", api_policies)

    api_request = request_for(caller, action, "acme")
    figures = []
    for name, ours_step, bare in (
        ("enforcement decisions/s", ours_enforce, _bare_cedar(request, compiled)),
        ("API access decisions/s", ours_api, _bare_cedar(api_request, api_compiled(api_policies))),
    ):
        ours, base = [], []
        for _ in range(trials):
            ours.append(rate(ours_step, seconds))
            base.append(rate(bare, seconds))
        figures.append(
            Figure(
                "6 policy",
                name,
                "/s",
                ours,
                base,
                "bare cedarpy",
                target=">= 80% of bare cedarpy",
                check=lambda f: (f.ratio or 0) >= 0.8,
            )
        )
    return figures
