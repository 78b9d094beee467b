"""The SDK covers every endpoint of /openapi.json, in both clients: a route added to the API
without its SDK method fails here."""

from __future__ import annotations

import inspect

import pytest
from aion_sdk import AionClient, AsyncAionClient
from aion_sdk.endpoints import ENDPOINTS, UNDOCUMENTED

from aion.settings import Settings
from api.app import OPERATIONS, create_app, openapi
from api.openapi import document


def documented() -> set[tuple[str, str]]:
    """(method, path) of every operation of the document /openapi.json serves."""
    paths = document(OPERATIONS)["paths"]
    return {(method.upper(), path) for path, ops in paths.items() for method in ops}


def served() -> set[tuple[str, str]]:
    """(method, path template) of every route the application answers."""
    found = set()
    for route in create_app(Settings()).routes:
        template = str(getattr(route, "path", "")).replace("{artifact:path}", "{artifact}")
        for method in getattr(route, "methods", None) or ():
            if method != "HEAD":
                found.add((method, template))
    return found


def test_the_document_is_the_one_the_api_serves() -> None:
    # The /openapi.json handler answers document(OPERATIONS): the set compared below.
    assert "document(OPERATIONS)" in inspect.getsource(openapi)


def test_the_endpoint_table_is_exactly_the_documented_operations() -> None:
    table, doc = set(ENDPOINTS), documented()
    assert doc - table == set(), "endpoints without an SDK method: add them to aion_sdk"
    assert table - doc == set(), "SDK methods of endpoints the API no longer documents"


def test_each_sdk_method_is_named_after_its_operation_id() -> None:
    paths = document(OPERATIONS)["paths"]
    wrong = {
        (method, path): (name, paths[path][method.lower()]["operationId"])
        for (method, path), name in ENDPOINTS.items()
        if paths[path][method.lower()]["operationId"] != name
    }
    assert wrong == {}


def test_undocumented_routes_are_served_and_not_documented() -> None:
    assert set(UNDOCUMENTED) <= served()
    assert not set(UNDOCUMENTED) & documented()
    assert served() <= set(ENDPOINTS) | set(UNDOCUMENTED)


@pytest.mark.parametrize("client", [AionClient, AsyncAionClient])
def test_both_clients_have_every_method_of_the_table(client: type) -> None:
    names = {**ENDPOINTS, **UNDOCUMENTED}.values()
    missing = [name for name in names if not callable(getattr(client, name, None))]
    assert missing == []


def test_the_async_client_methods_are_coroutines_or_async_iterators() -> None:
    for name in {**ENDPOINTS, **UNDOCUMENTED}.values():
        method = getattr(AsyncAionClient, name)
        assert inspect.iscoroutinefunction(method) or inspect.isasyncgenfunction(method), name
        assert not inspect.iscoroutinefunction(getattr(AionClient, name)), name


def test_each_method_requests_its_own_endpoint() -> None:
    """The Call each method builds names the method and path of its table entry."""
    from aion_sdk import commands, queries

    samples = {
        "tenant": "t-1", "user": "u-1", "agent": "a-1", "policy": "p-1", "task": "k-1",
        "run": "k-1.1", "artifact": "output", "key": "0123456789abcdef", "model": "m-1",
        "digest": "sha256:" + "0" * 64, "command_id": "c-1",
    }  # fmt: skip
    for (method, template), name in {**ENDPOINTS, **UNDOCUMENTED}.items():
        build = getattr(commands, name, None) or getattr(queries, name, None)
        if build is None:
            assert name == "task_events"  # a stream: written out in each client
            continue
        params = inspect.signature(build).parameters
        args = {
            p: samples.get(p, "x")
            for p, spec in params.items()
            if spec.default is inspect.Parameter.empty
        }
        args = {p: {"agent_name": "a"} if p == "manifest" else v for p, v in args.items()}
        args = {p: [] if p in ("roles", "tasks") else v for p, v in args.items()}
        args = {p: b"\0asm" if p == "wasm" else v for p, v in args.items()}
        args = {p: samples["key"] if p == "key_id" else v for p, v in args.items()}
        made = build(**args)
        call = getattr(made, "call", made)
        assert call.method == method, name
        assert call.path == template.format(**samples), name
