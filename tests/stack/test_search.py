"""Semantic search: agents and run outputs, by meaning, within the tenant only.

The Qdrant projection runs inside the API process here (embedded mode), with the real
all-MiniLM-L6-v2 embedder.
"""

from __future__ import annotations

import time
from typing import Any

import httpx

from aion.settings import Settings
from tests.stack.test_kernel_runs import agent, example, run_task
from tests.stack.test_orchestration import new_tenant
from tests.stack.test_tenants_api import assert_problem


def search(
    api: httpx.Client, tenant: str, q: str, until: int, **params: Any
) -> list[dict[str, Any]]:
    """Search, polling until at least ``until`` hits (the projection is asynchronous)."""
    deadline = time.monotonic() + 60
    while True:
        found = api.get(f"/v1/tenants/{tenant}/search", params={"q": q, **params})
        assert found.status_code == 200, found.text
        items: list[dict[str, Any]] = found.json()["items"]
        if len(items) >= until or time.monotonic() > deadline:
            return items
        time.sleep(0.5)


def test_agents_and_outputs_are_found_by_meaning_and_never_across_tenants(
    api: httpx.Client, settings: Settings
) -> None:
    tenant = new_tenant(api)
    echo = example("echo")
    described = {
        "summarizer": "Condenses long reports and articles into a short abstract.",
        "translator": "Translates text from one human language into another.",
        "resizer": "Crops and scales photographs to thumbnails.",
    }
    for name, description in described.items():
        # Outputs are indexed for the agents that opt in (decision 52); the resizer does not.
        opted = name != "resizer"
        deployed = agent(api, tenant, name, echo, description=description, index_outputs=opted)
        assert deployed.status_code == 201, deployed.text
    hits = search(api, tenant, "write a brief summary of this document", 3, kind="agent")
    assert hits[0]["id"] == "summarizer", hits
    hits = search(api, tenant, "make my picture smaller", 3, kind="agent")
    assert hits[0]["id"] == "resizer", hits

    run_task(api, settings, tenant, "translator", {"text": "the weather in Paris is sunny"},
             "TaskSucceeded")  # fmt: skip
    run_task(api, settings, tenant, "resizer", {"text": "heavy rain is falling over France"},
             "TaskSucceeded")  # fmt: skip
    run_task(api, settings, tenant, "summarizer", {"text": "quarterly revenue grew by ten percent"},
             "TaskSucceeded")  # fmt: skip
    outputs = search(api, tenant, "is it raining in France?", 2, kind="run_output")
    assert outputs[0]["kind"] == "run_output"
    assert "Paris" in str(outputs[0]), outputs
    # The summarizer's output (projected after the resizer's) is in: the resizer's never is.
    assert "revenue" in str(outputs), outputs
    assert "heavy rain" not in str(outputs), outputs

    other = new_tenant(api)
    assert search(api, other, "write a brief summary of this document", 1) == []
    assert_problem(api.get(f"/v1/tenants/{other}/search", params={"q": " "}), 422, "q")
    assert_problem(
        api.get(f"/v1/tenants/{other}/search", params={"q": "x", "kind": "secrets"}), 422, "kind"
    )
    assert_problem(api.get("/v1/tenants/ghost-tenant/search", params={"q": "x"}), 404, "tenant")
