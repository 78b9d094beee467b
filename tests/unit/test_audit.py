"""The audit log without a database: how each event is classified, the audit topic, and the
list's filters, cursors and their errors."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from api.audit import audit_query, page, parse_time
from api.listing import encode_cursor
from api.problems import Problem
from projections.audit import (
    ACCESS_DENIED,
    KINDS,
    OUTCOMES,
    SIGNED_IN,
    SIGNED_OUT,
    AuditEntry,
    AuditProjection,
    classify,
    target_of,
)
from schemas.topics import AUDIT, topic

AT = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)


def env(aggregate_type: str = "task", aggregate_id: str = "acme/t1", **extra: Any) -> Any:
    return {
        "tenant_id": "acme",
        "aggregate_type": aggregate_type,
        "aggregate_id": aggregate_id,
        "actor": "ana",
        "command_id": "c1",
        "event_id": "e1",
        "occurred_at": AT,
        **extra,
    }


def event(
    name: str, aggregate_type: str = "task", aggregate_id: str = "acme/t1", **fields: Any
) -> tuple[str, dict[str, Any]]:
    return name, {"envelope": env(aggregate_type, aggregate_id), **fields}


# --- classification --------------------------------------------------------------------------


def summary(entry: AuditEntry) -> tuple[str, str, str, str | None]:
    return entry.kind, entry.action, entry.outcome, entry.target


def test_policy_changes_are_their_own_kind() -> None:
    cedar = "permit(principal, action, resource);"
    put = classify(
        *event("aion.policy.PolicyPut", "policy", "acme/p1", policy_id="p1", cedar=cedar,
               policy_version=3)
    )  # fmt: skip
    assert summary(put) == ("policy_change", "PolicyPut", "ok", "policy/p1")
    assert put.detail == {"policy_id": "p1", "policy_version": 3}  # not the Cedar text
    deleted = classify(*event("aion.policy.PolicyDeleted", "policy", "acme/p1", policy_id="p1"))
    assert summary(deleted) == ("policy_change", "PolicyDeleted", "ok", "policy/p1")


def test_a_rejected_command_is_a_command_rejected_and_names_the_command() -> None:
    entry = classify(
        *event("aion.CommandRejected", "tenant", "acme", command_type="aion.tenant.AddUser",
               code="already_exists", reason="user ana exists", field="/user_id",
               current_version=2)
    )  # fmt: skip
    assert summary(entry) == ("command", "AddUser", "rejected", "tenant/acme")
    assert entry.detail == {"code": "already_exists", "reason": "user ana exists",
                            "field": "/user_id"}  # fmt: skip


@pytest.mark.parametrize(
    ("name", "aggregate"),
    [("aion.task.TaskRejected", "task"), ("aion.agent.AgentDeploymentRejected", "agent")],
)
def test_a_policys_denial_of_a_command_is_a_rejected_command(name: str, aggregate: str) -> None:
    entry = classify(*event(name, aggregate, "acme/x", reason="denied by p1", field=None))
    assert summary(entry) == ("command", name.rsplit(".")[-1], "rejected", f"{aggregate}/x")
    assert entry.detail == {"reason": "denied by p1"}


@pytest.mark.parametrize("decision", ["allow", "deny"])
def test_an_enforcement_keeps_its_decision_and_targets_its_subject(decision: str) -> None:
    entry = classify(*event("aion.enforcement.EnforcementDecided", "enforcement", "acme/e1",
                            enforcement_id="e1", subject_type="task", subject_id="acme/t9",
                            action="submit", decision=decision, policy_ids=["p1"],
                            diagnostics=["x"], request="{}"))  # fmt: skip
    assert (entry.kind, entry.outcome, entry.target) == ("enforcement", decision, "task/t9")
    assert entry.detail == {"enforcement_id": "e1", "action": "submit", "policy_ids": ["p1"]}


def test_sign_in_out_and_denials_come_from_the_audit_topic() -> None:
    signed_in = classify(*event(SIGNED_IN, "principal", "ana", method="oidc", subject="ana",
                                roles=["admin"], session_id="s1", token_id=None))  # fmt: skip
    assert (signed_in.kind, signed_in.outcome, signed_in.target) == ("login", "ok", None)
    assert signed_in.detail == {"method": "oidc", "roles": ["admin"], "session_id": "s1"}
    signed_out = classify(*event(SIGNED_OUT, "principal", "ana", subject="ana", session_id="s1"))
    assert (signed_out.kind, signed_out.action, signed_out.outcome) == ("logout", "SignedOut", "ok")
    denied = classify(*event(ACCESS_DENIED, "principal", "mallory", subject="mallory",
                             via="token", roles=[], method="POST", path="/v1/tenants/acme/tasks",
                             action="task.submit", reason="other tenant", status=403))  # fmt: skip
    assert (denied.kind, denied.outcome, denied.target) == (
        "denial", "denied", "/v1/tenants/acme/tasks")  # fmt: skip
    assert denied.detail["status"] == 403 and denied.detail["reason"] == "other tenant"
    assert "roles" not in denied.detail  # empty values are left out
    assert denied.detail["count"] == 1 and "first_at" not in denied.detail  # written before


def test_a_counted_denial_carries_its_count_and_its_first_and_last_time() -> None:
    first, last = datetime(2026, 12, 7, 12, 0, tzinfo=UTC), datetime(2026, 12, 7, 12, 1, tzinfo=UTC)
    denied = classify(*event(ACCESS_DENIED, "principal", "eve", subject="eve", via="token",
                             roles=["admin"], method="GET", path="/v1/tenants/acme/agents",
                             action="GET /v1/tenants/{tenant}/agents", reason="other tenant",
                             status=403, count=41, first_at=first, last_at=last))  # fmt: skip
    assert (denied.detail["count"], denied.detail["first_at"], denied.detail["last_at"]) == (
        41, first, last)  # fmt: skip


def test_any_other_event_is_a_command_that_went_through() -> None:
    entry = classify(*event("aion.task.TaskFailed", reason="out_of_fuel"))
    assert (entry.kind, entry.action, entry.outcome, entry.target) == (
        "command", "TaskFailed", "ok", "task/t1")  # fmt: skip
    assert entry.detail == {"reason": "out_of_fuel"}
    created = classify(*event("aion.tenant.TenantCreated", "tenant", "acme", display_name="A"))
    assert (created.target, created.detail) == ("tenant/acme", {})


def test_every_record_of_every_projected_topic_classifies_into_the_tables_values() -> None:
    """The table's check constraints hold for anything the projection can read."""
    for name in {r for t in AuditProjection.topics for r in topic(t).records}:
        fields = {"decision": "allow", "path": "/p", "command_type": "aion.X.Y"}
        entry = classify(*event(name, **fields))
        assert entry.kind in KINDS and entry.outcome in OUTCOMES, name


def test_detail_stays_small() -> None:
    entry = classify(*event("aion.task.TaskFailed", reason="x" * 10_000))
    assert len(entry.detail["reason"]) <= 501


def test_the_target_drops_the_tenant_prefix_but_not_a_lookalike() -> None:
    assert target_of(env("tenant", "acme")) == "tenant/acme"
    assert target_of(env("agent", "acme/echo")) == "agent/echo"
    assert target_of(env("agent", "acme-2/echo")) == "agent/acme-2/echo"


# --- the audit topic and its records ----------------------------------------------------------


def test_the_audit_topic_carries_the_three_records_forever_keyed_by_tenant() -> None:
    spec = topic(AUDIT)
    assert set(spec.records) == {SIGNED_IN, SIGNED_OUT, ACCESS_DENIED}
    assert spec.retention_ms == -1 and spec.key.startswith("tenant id")
    assert AUDIT in AuditProjection.topics


# --- the list ---------------------------------------------------------------------------------


def test_the_list_is_scoped_filtered_and_newest_first() -> None:
    sql, values, limit = audit_query(
        "acme",
        {"actor": "ana", "kind": "denial", "since": "2026-11-26T00:00:00Z",
         "until": "2026-11-27", "evil": "1"},
    )  # fmt: skip
    assert "where tenant_id = %s and actor = %s and kind = %s" in sql
    assert "occurred_at >= %s and occurred_at < %s" in sql
    assert sql.endswith(
        'order by occurred_at desc, topic desc, partition desc, "offset" desc limit 51'
    )
    assert values == ["acme", "ana", "denial", datetime(2026, 11, 26, tzinfo=UTC),
                      datetime(2026, 11, 27, tzinfo=UTC)]  # fmt: skip
    assert limit == 50


def test_a_page_continues_after_its_last_row() -> None:
    rows = [
        {"occurred_at": AT, "actor": "ana", "position": f"aion.audit:0:{i}", "topic": "aion.audit",
         "partition": 0, "offset": i}
        for i in (9, 8, 7)
    ]  # fmt: skip
    first = page(rows, 2)
    assert [i["position"] for i in first["items"]] == ["aion.audit:0:9", "aion.audit:0:8"]
    assert "offset" not in first["items"][0] and first["items"][0]["occurred_at"].endswith("+00:00")
    sql, values, _ = audit_query("acme", {"cursor": first["next_cursor"]})
    assert '(occurred_at, topic, partition, "offset") < (%s::timestamptz, %s, %s, %s)' in sql
    assert values == ["acme", AT.isoformat(), "aion.audit", 0, 8]
    assert page(rows[:2], 2)["next_cursor"] is None


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"kind": "everything"}, "kind"),
        ({"outcome": "maybe"}, "outcome"),
        ({"since": "yesterday"}, "since"),
        ({"until": "2026-13-01"}, "until"),
        ({"since": "2026-11-27", "until": "2026-11-26"}, "until"),
        ({"actor": "a\x00b"}, "actor"),
        ({"limit": "0"}, "limit"),
    ],
)
def test_a_bad_filter_is_a_422_naming_it(params: dict[str, str], field: str) -> None:
    with pytest.raises(Problem) as caught:
        audit_query("acme", params)
    assert (caught.value.status, caught.value.field) == (422, field)


@pytest.mark.parametrize(
    "key",
    [["not a time", "t", 0, 1], [AT.isoformat(), 5, 0, 1], [AT.isoformat(), "t", "0", 1],
     [AT.isoformat(), "t", 0, 2**63], [AT.isoformat(), "t", True, 1], [1, 2]],
)  # fmt: skip
def test_a_forged_cursor_is_a_400_naming_it(key: list[Any]) -> None:
    with pytest.raises(Problem) as caught:
        audit_query("acme", {"cursor": encode_cursor(key)})
    assert (caught.value.status, caught.value.field) == (400, "cursor")


def test_times_without_an_offset_are_utc() -> None:
    assert parse_time("since", "2026-11-26T12:00:00") == AT
    assert parse_time("since", "2026-11-26T13:00:00+01:00") == AT
