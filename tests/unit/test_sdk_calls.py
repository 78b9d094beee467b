"""What the SDK's calls send (headers, bodies, parameters) and how its pages iterate; pure."""

from __future__ import annotations

import json
import uuid

import httpx
from aion_sdk import commands, queries
from aion_sdk.calls import NO_BODY, client_headers, path, request_kwargs
from aion_sdk.pages import Page


def test_every_command_carries_a_fresh_idempotency_key_unless_given() -> None:
    first = commands.register_model("t", "m", "local", "chat")
    second = commands.register_model("t", "m", "local", "chat")
    assert first.idempotency_key and second.idempotency_key
    assert first.idempotency_key != second.idempotency_key
    uuid.UUID(first.idempotency_key)
    given = commands.register_model("t", "m", "local", "chat", idempotency_key="mine")
    assert given.idempotency_key == "mine" and given.safe


def test_wait_and_if_match_become_prefer_and_if_match_headers() -> None:
    call = commands.assign_roles("t", "ada", ["admin"], wait=5, if_match=3)
    assert call.headers["Prefer"] == "wait=5"
    assert call.headers["If-Match"] == '"3"'
    assert commands.assign_roles("t", "ada", [], wait=0.5).headers["Prefer"] == "wait=0.5"
    assert "Prefer" not in commands.assign_roles("t", "ada", []).headers
    assert commands.remove_user("t", "ada", if_match='"7"').headers["If-Match"] == '"7"'


def test_a_task_is_given_its_id_and_its_input_as_json_text() -> None:
    call = commands.submit_task("t", "echo", {"text": "hi"}, labels={"a": "b"})
    body = call.json
    assert body["agent_name"] == "echo" and json.loads(body["input"]) == {"text": "hi"}
    uuid.UUID(body["task_id"])  # made here, so that a retry sends the same body
    assert "deadline_ms" not in body and body["labels"] == {"a": "b"}
    raw = commands.submit_task("t", "echo", input_json='"x"', task_id="k-1").json
    assert (raw["input"], raw["task_id"]) == ('"x"', "k-1")


def test_a_batch_names_every_task_and_sends_no_idempotency_key() -> None:
    body = commands.task_body("echo", 1)
    call = commands.submit_tasks("t", [body, {"agent_name": "echo", "input": "2"}])
    tasks = call.json["tasks"]
    assert tasks[0]["task_id"] == body["task_id"] and tasks[1]["task_id"]
    assert all(t.get("labels") is None for t in tasks)  # None fields are left out
    assert call.idempotency_key is None and call.safe


def test_bodies_leave_out_what_was_not_given_and_deletes_send_none() -> None:
    created = commands.create_tenant("acme", "Acme")
    assert created.json == {"tenant_id": "acme", "display_name": "Acme"}
    assert commands.delete_policy("t", "p").json is NO_BODY
    assert "json" not in request_kwargs(commands.delete_policy("t", "p"))
    revoke = commands.revoke_api_key("t", "0123456789abcdef", reason="leaked")
    assert revoke.params == (("reason", "leaked"),) and revoke.method == "DELETE"


def test_a_module_is_sent_as_raw_wasm_bytes() -> None:
    call = commands.upload_module("t", b"\0asm\1\0\0\0")
    kwargs = request_kwargs(call)
    assert kwargs["content"] == b"\0asm\1\0\0\0" and "json" not in kwargs
    assert kwargs["headers"]["Content-Type"] == "application/wasm"


def test_path_segments_are_encoded_but_an_artifact_path_keeps_its_slashes() -> None:
    assert path("/a/{x}", x="b/c d") == "/a/b%2Fc%20d"
    assert path("/m/{digest}", digest="sha256:ab") == "/m/sha256:ab"
    call = queries.download_artifact("t", "k", "k.1", "files/out.txt")
    assert call.path == "/v1/tenants/t/tasks/k/runs/k.1/artifacts/files/out.txt"


def test_list_filters_and_search_kinds_are_query_parameters() -> None:
    listing = queries.list_tasks("t", status="running", limit=2, after_command="c")
    assert listing.call.params == (("status", "running"), ("limit", "2"), ("after_command", "c"))
    assert listing.at("abc").params[-1] == ("cursor", "abc")
    assert listing.at("abc").params.count(("cursor", "abc")) == 1
    assert listing.at("def").params[-1] == ("cursor", "def")
    found = queries.search("t", "hello", kind=["agent", "run_output"], limit=5)
    assert found.params == (("q", "hello"), ("kind", "agent"), ("kind", "run_output"),
                            ("limit", "5"))  # fmt: skip


def test_credentials_become_headers() -> None:
    assert client_headers("tok", None, None)["Authorization"] == "Bearer tok"
    assert client_headers(None, "aion_k_s", None)["X-API-Key"] == "aion_k_s"
    assert "Authorization" not in client_headers(None, None, {"X-Trace": "1"})
    try:
        client_headers("tok", "key", None)
    except ValueError:
        pass
    else:
        raise AssertionError("a token and a key together must be refused")


def test_a_page_iterates_over_every_item_of_every_page() -> None:
    pages = {"": ([1, 2], "b"), "b": ([3, 4], "c"), "c": ([5], None)}
    asked: list[str] = []

    def fetch(cursor: str) -> Page[int]:
        asked.append(cursor)
        items, following = pages[cursor]
        return Page(items, following, fetch)

    first = Page([1, 2], "b", fetch)
    assert first.items == [1, 2] and first.has_next
    assert list(first) == [1, 2, 3, 4, 5]
    assert asked == ["b", "c"]
    assert [p.items for p in first.pages()] == [[1, 2], [3, 4], [5]]
    assert Page([9], None, fetch).next_page() is None


def test_a_command_answer_says_what_its_headers_said() -> None:
    call = commands.submit_task("t", "echo", 1, task_id="k-1", idempotency_key="key-1")
    request = httpx.Request(call.method, "http://aion" + call.path, headers=dict(call.headers))
    body = {"command_id": "c-1", "status": "pending", "status_url": "/v1/commands/c-1"}
    headers = {"Idempotent-Replayed": "true", "Location": "/v1/commands/c-1"}
    result = call.parse(httpx.Response(202, json=body, headers=headers, request=request))
    assert (result.command_id, result.status, result.task_id) == ("c-1", "pending", "k-1")
    assert result.replayed and not result.decided and result.idempotency_key == "key-1"
    assert result.location == "/v1/commands/c-1"
