"""Every 405 names the methods the path does serve, in ``Allow`` (RFC 9110, section 15.5.6).

The application's routes and error handlers, without the access gate (which needs the stack):
a method no route serves at a path is refused with problem+json and an ``Allow`` listing what
every route at that path serves, not only the first route Starlette matched.
"""

from __future__ import annotations

import re

import pytest
from starlette.applications import Starlette
from starlette.routing import Route
from starlette.testclient import TestClient

from aion.settings import Settings
from api.app import create_app

APP = create_app(Settings())
ROUTER_ONLY = Starlette(routes=APP.routes, exception_handlers=APP.exception_handlers)


def served() -> dict[str, set[str]]:
    """A concrete path for each route template, and every method some route serves there
    (``/v1/tenants/x/tasks/batch`` is also the task ``batch``)."""
    routes = [r for r in APP.routes if isinstance(r, Route)]
    paths = {re.sub(r"\{[^}]+\}", "x", r.path) for r in routes}
    return {
        path: {m for r in routes if r.path_regex.match(path) for m in r.methods or ()}
        for path in paths
    }


@pytest.mark.parametrize(("path", "methods"), sorted(served().items()))
def test_a_method_not_served_is_a_405_with_allow(path: str, methods: set[str]) -> None:
    refused = TestClient(ROUTER_ONLY).request("TRACE", path)
    assert refused.status_code == 405
    assert refused.headers["content-type"] == "application/problem+json"
    assert set(refused.headers["allow"].split(", ")) == methods
    assert refused.json()["type"].endswith("/method-not-allowed")


def test_a_path_served_by_several_routes_allows_all_their_methods() -> None:
    assert {"GET", "POST"} <= served()["/v1/tenants/x/agents"]


def test_the_console_names_its_methods_too() -> None:
    refused = TestClient(ROUTER_ONLY).post("/console/")
    assert refused.status_code == 405
    assert refused.headers["allow"] == "GET, HEAD"
