"""What a client generator needs from /openapi.json: names, parameters, headers, bodies."""

from __future__ import annotations

import json
from typing import Any

from api.health import not_ready
from api.openapi import Operation, document
from api.operations import OPERATIONS


def doc() -> dict[str, Any]:
    return document(OPERATIONS)


def entries() -> list[tuple[str, str, dict[str, Any]]]:
    return [(m, p, e) for p, ops in doc()["paths"].items() for m, e in ops.items()]


def test_every_operation_has_a_unique_snake_case_operation_id() -> None:
    ids = [e["operationId"] for _, _, e in entries()]
    assert len(ids) == len(set(ids))
    assert all(i.isidentifier() and i == i.lower() for i in ids)


def test_a_command_is_named_after_its_record_unless_it_says_otherwise() -> None:
    paths = doc()["paths"]
    assert paths["/v1/tenants/{tenant}/agents"]["post"]["operationId"] == "deploy_agent"
    assert paths["/v1/tenants/{tenant}/users/{user}/roles"]["put"]["operationId"] == (
        "assign_roles"
    )


def test_the_same_name_twice_is_refused() -> None:
    twice = [
        Operation("GET", "/a", "a", operation_id="x"),
        Operation("GET", "/b", "b", operation_id="x"),
    ]
    try:
        document(twice)
    except ValueError as exc:
        assert "x" in str(exc)
    else:
        raise AssertionError("a duplicate operationId was accepted")


def test_commands_document_idempotency_if_match_and_prefer() -> None:
    for method, path, entry in entries():
        if "requestBody" in entry and "CommandAccepted" in json.dumps(entry["responses"]):
            headers = {p["name"] for p in entry["parameters"] if p["in"] == "header"}
            assert {"Idempotency-Key", "If-Match", "Prefer"} <= headers, (method, path)


def test_command_answers_have_their_body_schemas() -> None:
    responses = doc()["paths"]["/v1/tenants/{tenant}/tasks"]["post"]["responses"]
    assert responses["202"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/CommandAccepted"
    }
    assert responses["201"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/CommandOutcome"
    }


def test_lists_document_their_cursor_limit_and_filters_and_their_page() -> None:
    entry = doc()["paths"]["/v1/tenants/{tenant}/tasks"]["get"]
    query = {p["name"] for p in entry["parameters"] if p["in"] == "query"}
    assert {"limit", "cursor", "after_command", "status", "agent_name"} <= query
    page = entry["responses"]["200"]["content"]["application/json"]["schema"]
    assert page["required"] == ["items", "next_cursor"]
    assert "task_id" in page["properties"]["items"]["items"]["properties"]
    users = doc()["paths"]["/v1/tenants/{tenant}/users"]["get"]
    assert {"limit", "cursor"} <= {p["name"] for p in users["parameters"]}


def test_the_problem_schema_has_every_field_the_api_sets() -> None:
    properties = doc()["components"]["schemas"]["Problem"]["properties"]
    assert {"field", "errors", "reason", "policies", "command_id", "current_version"} <= set(
        properties
    )


def test_previously_missing_routes_are_documented() -> None:
    paths = doc()["paths"]
    assert paths["/v1/tenants/{tenant}/tasks/{task}/status"]["get"]["operationId"] == (
        "get_task_status"
    )
    assert "/openapi.json" in paths
    ready = paths["/readyz"]["get"]["responses"]["503"]
    assert "application/problem+json" in ready["content"]


def test_not_ready_is_a_problem_naming_what_failed() -> None:
    response = not_ready({"postgres": "ok", "kafka": "RuntimeError: no broker in metadata"})
    assert response.status_code == 503
    assert response.media_type == "application/problem+json"
    body = json.loads(bytes(response.body))
    assert body["status"] == 503 and body["type"].endswith("not-ready")
    assert body["failed"] == ["kafka"] and body["ready"] is False
    assert "kafka: RuntimeError: no broker in metadata" in body["detail"]
