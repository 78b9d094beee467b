"""The console's pure parts on the server: which file a path is, the CSRF rule for cookie
sessions, the tenants list's prefix filter, consumer-group lag and the policy what-if."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from aion.policy_simulation import CandidateError, simulate
from api.access import csrf_refusal
from api.console.routes import STATIC, resolve
from api.policy_simulate import candidate_set, recorded_from_row
from api.principal import Principal
from api.service_health import group_lag
from api.tenant_list import like_prefix
from commands import enforcement

SESSION = Principal("ana", "acme", frozenset({"admin"}), via="session")
TOKEN = Principal("ana", "acme", frozenset({"admin"}), via="token")


# --- the console's files ---------------------------------------------------------------------


def test_a_page_path_is_the_index_and_an_asset_is_itself() -> None:
    assert resolve("/") == STATIC / "index.html"
    assert resolve("") == STATIC / "index.html"
    assert resolve("/tasks/hello") == STATIC / "index.html"
    assert resolve("/app.js") == STATIC / "app.js"
    assert resolve("/pages/task.js") == STATIC / "pages" / "task.js"


@pytest.mark.parametrize("path", ["/nothing.js", "/../routes.py", "/pages/../../routes.py",
                                  "/..\\routes.py", "/pages/./task.js"])  # fmt: skip
def test_unknown_assets_and_escapes_are_not_found(path: str) -> None:
    assert resolve(path) is None


def test_every_module_the_console_imports_is_a_file_it_serves() -> None:
    """An import or a <script> naming a file that is not there would fail only in a browser."""
    import re

    named: set[str] = set()
    for source in [*STATIC.glob("*.js"), *STATIC.glob("pages/*.js"), STATIC / "index.html"]:
        named |= set(re.findall(r"[\"'](/console/[\w./-]+\.(?:js|css))[\"']", source.read_text()))
    assert named, "no module named"
    for name in named:
        assert resolve(name.removeprefix("/console")) is not None, name


def test_the_console_is_package_data() -> None:
    """Every static file matches a pattern of pyproject.toml's package data for ``api``."""
    import tomllib

    root = Path(__file__).resolve().parents[2]
    patterns = tomllib.loads((root / "pyproject.toml").read_text())["tool"]["setuptools"][
        "package-data"
    ]["api"]
    api_dir = STATIC.parent.parent
    for file in STATIC.rglob("*"):
        if file.is_file():
            relative = file.relative_to(api_dir)
            assert any(relative.match(p) for p in patterns), relative


# --- CSRF ------------------------------------------------------------------------------------


def test_a_cookie_session_needs_the_console_header_to_change_anything() -> None:
    refused = csrf_refusal("POST", SESSION, {})
    assert refused is not None and refused.status == 403 and refused.code == "csrf"
    assert csrf_refusal("DELETE", SESSION, {"x-aion-console": "0"}) is not None
    assert csrf_refusal("PUT", SESSION, {"x-aion-console": "1"}) is None


def test_reads_and_other_credentials_need_no_header() -> None:
    assert csrf_refusal("GET", SESSION, {}) is None
    assert csrf_refusal("HEAD", SESSION, {}) is None
    assert csrf_refusal("POST", TOKEN, {}) is None
    key = Principal("key:0123456789abcdef", "acme", frozenset({"admin"}), via="api_key")
    assert csrf_refusal("POST", key, {}) is None


# --- the tenants list --------------------------------------------------------------------------


def test_a_prefix_matches_literally() -> None:
    assert like_prefix("acme") == "acme%"
    assert like_prefix("a_b%") == "a\\_b\\%%"
    assert like_prefix("a\\") == "a\\\\%"


# --- consumer-group lag ----------------------------------------------------------------------


def test_group_lag_counts_from_the_committed_offset_or_the_log_start() -> None:
    ends = {("t", 0): (0, 10), ("t", 1): (5, 8), ("t", 2): (0, 4)}
    committed = {("t", 0): 7, ("t", 1): 2, ("t", 2): 4}
    assert group_lag(committed, ends) == 3 + 3 + 0
    assert group_lag({}, ends) == 0
    assert group_lag({("gone", 0): 3}, ends) == 0


# --- the policy what-if ----------------------------------------------------------------------

MANIFEST = {"agent_name": "echo", "version": "1.0.0", "abi": "reactor", "models": [],
            "quotas": {"fuel": 1000, "memory_mb": 64, "timeout_ms": 5000}}  # fmt: skip
TENANT = {"status": "active", "users": {"alice": ["operator"]}}
NO_ECHO = 'forbid(principal, action == Action::"SubmitTask", resource) when { resource.agent_name == "echo" };'  # noqa: E501


def row(decision: str = "allow") -> dict[str, object]:
    task = {"task_id": "t1", "input_bytes": 10, "labels": {}}
    request = enforcement.request_for(
        "aion.task.SubmitTask", "acme", "alice", TENANT, 2, MANIFEST, task
    )
    return {
        "enforcement_id": "e1", "subject_type": "task", "subject_id": "t1",
        "action": "SubmitTask", "decision": decision, "policy_ids": ["platform-default-permit"],
        "request": request, "decided_at": datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC),
    }  # fmt: skip


def test_the_candidate_replaces_the_policy_of_its_id_and_keeps_the_others() -> None:
    current = {"keep": "forbid(principal, action, resource) when { false };", "edit": "x"}
    made = candidate_set(current, "edit", NO_ECHO)
    assert made == {"keep": current["keep"], "edit": NO_ECHO}
    assert candidate_set({}, "new", NO_ECHO) == {"new": NO_ECHO}


def test_an_invalid_candidate_names_the_validators_error() -> None:
    with pytest.raises(CandidateError, match="invalid Cedar"):
        candidate_set({}, "p", "forbid(principal, action, resource) when { resource.nope == 1 };")
    with pytest.raises(CandidateError):
        candidate_set({}, "p", "this is not cedar")


def test_a_read_model_row_replays_like_a_recorded_event() -> None:
    recorded = recorded_from_row(row())
    assert recorded.when == "2026-01-02T03:04:05+00:00"
    assert recorded.subject_id == "t1" and recorded.policy_ids == ("platform-default-permit",)
    result = simulate("acme", [recorded], candidate_set({}, "no-echo", NO_ECHO))
    assert result.as_dict()["changed"] == 1
    assert result.changes[0].simulated.policy_ids == ("no-echo",)
    unchanged = simulate("acme", [recorded], {})
    assert unchanged.as_dict()["changed"] == 0


def test_a_row_without_a_request_is_skipped() -> None:
    recorded = recorded_from_row({**row(), "request": None})
    result = simulate("acme", [recorded], candidate_set({}, "no-echo", NO_ECHO))
    assert result.as_dict()["skipped"] == 1 and result.as_dict()["replayed"] == 0
