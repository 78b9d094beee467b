"""The demo that `make up` seeds: a tenant, a model, an agent and a task, through the public API.

Each step is idempotent (a 409 "already exists" counts as done), so `make up` can run again
on the same stack. The agent's module digest names a module that the kernel issue will ship
(an echo agent); until workers run modules, the demo task stays `submitted`.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

import httpx
from rich.console import Console

ECHO_WAT = '(module (func (export "run")))'  # stands in until the kernel ships its examples
DEMO_STEPS: list[tuple[str, str, dict[str, Any]]] = [
    (
        "tenant 'demo'",
        "/v1/tenants",
        {"tenant_id": "demo", "display_name": "Demo tenant", "labels": {"origin": "make up"}},
    ),
    (
        "model 'mini'",
        "/v1/tenants/demo/models",
        {
            "model_name": "mini",
            "provider": "local",
            "kind": "embedding",
            "description": "a small deterministic local model",
        },
    ),
    (
        "agent 'echo'",
        "/v1/tenants/demo/agents",
        {
            "manifest": {
                "agent_name": "echo",
                "version": "1.0.0",
                "abi": "reactor",
                "models": ["mini"],
                "module_digest": "sha256:" + hashlib.sha256(ECHO_WAT.encode()).hexdigest(),
                "quotas": {"fuel": 10_000_000, "memory_mb": 16, "timeout_ms": 2000},
                "description": "Echoes its input back.",
            }
        },
    ),
    (
        "task 'hello'",
        "/v1/tenants/demo/tasks",
        {"task_id": "hello", "agent_name": "echo", "input": '{"text": "hello, Aion"}'},
    ),
]


@dataclass(frozen=True)
class StepResult:
    what: str
    status: int
    detail: str


def seed(api: str) -> list[StepResult]:
    results = []
    with httpx.Client(base_url=api, timeout=30) as client:
        for what, path, body in DEMO_STEPS:
            response = client.post(path, json=body, headers={"Prefer": "wait=20"})
            detail = "" if response.status_code < 300 else response.json().get("detail", "")
            results.append(StepResult(what, response.status_code, detail))
    return results


def print_results(results: list[StepResult], console: Console) -> None:
    for r in results:
        if r.status < 300:
            console.print(f"  demo {r.what} created")
        elif r.status == 409:
            console.print(f"  demo {r.what} already exists")
        else:
            console.print(f"[yellow]  demo {r.what}: {r.status} {r.detail}[/yellow]")
