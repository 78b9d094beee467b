"""The demo that `make up` seeds: a tenant, a model, an agent and a task, through the public API.

Each step is idempotent (a 409 "already exists" counts as done), so `make up` can run again
on the same stack. The agents' modules (the kernel's shipped examples) are uploaded first and
referenced by their digests; the demo tasks then run in the kernel worker and succeed.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

import httpx
from rich.console import Console

from kernel.shipped import example_wasm

ECHO_WASM = example_wasm("echo")
STATS_WASM = example_wasm("text_stats")
MODULES = {"echo": ECHO_WASM, "text_stats": STATS_WASM}
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
                "module_digest": "sha256:" + hashlib.sha256(ECHO_WASM).hexdigest(),
                "quotas": {"fuel": 10_000_000, "memory_mb": 16, "timeout_ms": 2000},
                "description": "Echoes its input back.",
                "index_outputs": True,  # its outputs are searchable by meaning (decision 52)
            }
        },
    ),
    (
        "agent 'stats'",
        "/v1/tenants/demo/agents",
        {
            "manifest": {
                "agent_name": "stats",
                "version": "1.0.0",
                "abi": "reactor",
                "module_digest": "sha256:" + hashlib.sha256(STATS_WASM).hexdigest(),
                "quotas": {"fuel": 10_000_000, "memory_mb": 16, "timeout_ms": 2000},
                "description": "Counts the bytes, words and lines of a text.",
                "input_schema": '{"type": "object", "required": ["text"],'
                ' "properties": {"text": {"type": "string"}}}',
            }
        },
    ),
    (
        "task 'hello'",
        "/v1/tenants/demo/tasks",
        {"task_id": "hello", "agent_name": "echo", "input": '{"text": "hello, Aion"}'},
    ),
    (
        "task 'count'",
        "/v1/tenants/demo/tasks",
        {
            "task_id": "count",
            "agent_name": "stats",
            "input": '{"text": "the quick brown fox\\njumps over the lazy dog"}',
        },
    ),
]


@dataclass(frozen=True)
class StepResult:
    what: str
    status: int
    detail: str


def seed(api: str, token: str) -> list[StepResult]:
    """The demo's commands, sent as a platform admin (``token``)."""
    results = []
    headers = {"Authorization": f"Bearer {token}"}
    with httpx.Client(base_url=api, timeout=30, headers=headers) as client:
        for what, path, body in DEMO_STEPS[:1]:
            response = client.post(path, json=body, headers={"Prefer": "wait=20"})
            results.append(StepResult(what, response.status_code, _detail(response)))
        for name, wasm in MODULES.items():
            upload = client.post(
                "/v1/tenants/demo/modules",
                content=wasm,
                headers={"content-type": "application/wasm"},
            )
            # 200 means it was stored before: reported like a 409 "already exists".
            status = 409 if upload.status_code == 200 else upload.status_code
            results.append(StepResult(f"module '{name}'", status, _detail(upload)))
        for what, path, body in DEMO_STEPS[1:]:
            response = client.post(path, json=body, headers={"Prefer": "wait=20"})
            results.append(StepResult(what, response.status_code, _detail(response)))
    return results


def _detail(response: httpx.Response) -> str:
    if response.status_code < 300:
        return ""
    try:
        return str(response.json().get("detail", ""))
    except ValueError:
        return response.text[:200]


def print_results(results: list[StepResult], console: Console) -> None:
    for r in results:
        if r.status < 300:
            console.print(f"  demo {r.what} created")
        elif r.status == 409:
            console.print(f"  demo {r.what} already exists")
        else:
            console.print(f"[yellow]  demo {r.what}: {r.status} {r.detail}[/yellow]")
