"""`aion policy simulate`'s pure part: recorded requests re-evaluated against candidate policies."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from aion.cli import app
from aion.policy_simulation import (
    CandidateError,
    Recorded,
    load_candidate,
    parse_duration,
    simulate,
)
from commands import enforcement

TENANT = {"status": "active", "users": {"alice": ["operator"]}}
MANIFEST = {
    "agent_name": "echo",
    "version": "1.0.0",
    "abi": "reactor",
    "models": [],
    "quotas": {"fuel": 1000, "memory_mb": 64, "timeout_ms": 5000},
}
ALLOW_ALL = '@id("allow-all") permit(principal, action, resource);'
NO_BIG_INPUTS = (
    '@id("no-big-inputs") forbid(principal, action == Action::"SubmitTask", resource) '
    "when { resource.input_bytes > 1000 };"
)
NO_DEPLOYS = 'forbid(principal, action == Action::"DeployAgent", resource);'


def deploy_request(tenant: dict[str, Any] = TENANT) -> dict[str, Any]:
    return enforcement.request_for("aion.agent.DeployAgent", "acme", "alice", tenant, 1, MANIFEST)


def task_request(task_id: str, input_bytes: int) -> dict[str, Any]:
    task = {"task_id": task_id, "input_bytes": input_bytes, "labels": {}}
    return enforcement.request_for(
        "aion.task.SubmitTask", "acme", "alice", TENANT, 2, MANIFEST, task
    )


def recorded(
    request: dict[str, Any] | None,
    tenant_policies: dict[str, str] | None = None,
    *,
    subject: str = "acme/echo",
) -> Recorded:
    """What the stream processor would have recorded under the tenant's policies of the time."""
    verdict = enforcement.evaluate(
        request or deploy_request(),
        enforcement.compile_policies(enforcement.policy_key(tenant_policies or {})),
    )
    action = (request or deploy_request())["action"]["id"]
    return Recorded(
        event_id=f"e-{subject}-{action}",
        enforcement_id=f"enf-{subject}",
        subject_type="task" if action == "SubmitTask" else "agent",
        subject_id=subject,
        action=action,
        decision=verdict.decision,
        policy_ids=verdict.policy_ids,
        occurred_at_ms=1_700_000_000_000,
        request=json.dumps(request) if request is not None else "",
    )


@pytest.fixture
def history() -> list[Recorded]:
    """A deployment and two tasks, all allowed by the platform default."""
    return [
        recorded(deploy_request()),
        recorded(task_request("small", 10), subject="acme/small"),
        recorded(task_request("big", 5000), subject="acme/big"),
    ]


def test_the_history_was_allowed_by_the_platform_default(history: list[Recorded]) -> None:
    assert [(r.decision, r.policy_ids) for r in history] == [
        ("allow", ("platform-default-permit",))
    ] * 3


def test_a_permissive_candidate_changes_nothing(history: list[Recorded]) -> None:
    result = simulate("acme", history, load_candidate(ALLOW_ALL))
    assert (len(result.outcomes), result.changes) == (3, [])
    simulated = {o.simulated.policy_ids for o in result.outcomes}
    assert simulated == {("allow-all", "platform-default-permit")}
    assert result.summary() == "3 decisions replayed, 0 would change"


def test_a_restrictive_candidate_changes_only_the_decisions_it_forbids(
    history: list[Recorded],
) -> None:
    result = simulate("acme", history, load_candidate(NO_BIG_INPUTS))
    [change] = result.changes
    assert change.recorded.subject_id == "acme/big"
    assert (change.recorded.decision, change.simulated.decision) == ("allow", "deny")
    assert change.simulated.policy_ids == ("no-big-inputs",)
    unchanged = [o for o in result.outcomes if not o.changed]
    assert [o.recorded.subject_id for o in unchanged] == ["acme/echo", "acme/small"]
    assert result.summary() == "3 decisions replayed, 1 would change"
    document = json.loads(json.dumps(result.as_dict()))
    assert (document["replayed"], document["changed"], document["skipped"]) == (3, 1, 0)
    assert document["candidate_policies"] == ["no-big-inputs"]
    assert document["changes"][0]["recorded"] == {
        "decision": "allow",
        "policy_ids": ["platform-default-permit"],
    }
    assert document["changes"][0]["simulated"]["decision"] == "deny"


def test_dropping_a_tenant_policy_turns_its_denials_into_allows() -> None:
    denied = recorded(deploy_request(), {"no-deploys": NO_DEPLOYS})
    assert (denied.decision, denied.policy_ids) == ("deny", ("no-deploys",))
    [change] = simulate("acme", [denied], load_candidate("// no policies at all\n")).changes
    assert (change.simulated.decision, change.simulated.policy_ids) == (
        "allow",
        ("platform-default-permit",),
    )


def test_the_baseline_still_wins_over_a_candidate_permit() -> None:
    suspended = recorded(deploy_request({"status": "suspended", "users": {}}))
    assert suspended.decision == "deny"
    result = simulate("acme", [suspended], load_candidate(ALLOW_ALL))
    assert result.changes == []
    assert result.outcomes[0].simulated.policy_ids == ("baseline-suspended-tenant",)


def test_decisions_without_a_recorded_request_are_skipped_not_replayed() -> None:
    result = simulate("acme", [recorded(None), recorded(deploy_request())], {})
    assert (len(result.outcomes), len(result.skipped)) == (1, 1)
    assert result.summary() == (
        "1 decisions replayed, 0 would change (1 without a recorded request skipped)"
    )


def test_no_decisions_give_zero_counts() -> None:
    result = simulate("ghost", [], load_candidate(NO_BIG_INPUTS))
    assert result.as_dict() == {
        "tenant_id": "ghost",
        "candidate_policies": ["no-big-inputs"],
        "replayed": 0,
        "changed": 0,
        "skipped": 0,
        "changes": [],
    }


# --- naming the candidate's policies ----------------------------------------------------------


def test_a_single_unnamed_policy_is_the_candidate() -> None:
    assert list(enforcement.candidate_policies(NO_DEPLOYS)) == ["candidate"]


def test_policies_are_named_by_their_id_annotation_else_by_position() -> None:
    text = "\n".join([NO_DEPLOYS, NO_BIG_INPUTS, "permit(principal, action, resource);"])
    named = enforcement.candidate_policies(text)
    assert list(named) == ["candidate#1", "no-big-inputs", "candidate#3"]
    # Each is one policy, compiled under its own name.
    verdict = enforcement.evaluate(
        deploy_request(), enforcement.compile_policies(enforcement.policy_key(named))
    )
    assert verdict.policy_ids == ("candidate#1",)


def test_more_than_ten_policies_keep_their_source_order() -> None:
    text = "\n".join(
        f'@id("p{i}") forbid(principal, action, resource) when {{ resource.fuel > {i} }};'
        for i in range(12)
    )
    assert list(enforcement.candidate_policies(text)) == [f"p{i}" for i in range(12)]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (f"{ALLOW_ALL}\n{ALLOW_ALL}", "more than one policy"),
        ('@id("platform-default-permit") forbid(principal, action, resource);', "platform"),
        ("permit(principal == ?principal, action, resource);", "templates"),
    ],
)
def test_unusable_names_and_templates_are_refused(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        enforcement.candidate_policies(text)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("permit(principal, action", "unexpected end of input"),
        (
            'forbid(principal, action == Action::"SubmitTask", resource) '
            "when { resource.nope > 1 };",
            "attribute `nope` on entity type `Task` not found",
        ),
        (f"{ALLOW_ALL}\n{ALLOW_ALL}", "more than one policy"),
    ],
)
def test_an_invalid_file_is_a_candidate_error(text: str, message: str) -> None:
    with pytest.raises(CandidateError, match="invalid Cedar") as raised:
        load_candidate(text)
    assert message in str(raised.value)


# --- durations and the recorded event ---------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("30m", timedelta(minutes=30)),
        ("2h", timedelta(hours=2)),
        ("7d", timedelta(days=7)),
        ("45s", timedelta(seconds=45)),
        ("1w", timedelta(weeks=1)),
        (" 1h30m ", timedelta(minutes=90)),
    ],
)
def test_durations(text: str, expected: timedelta) -> None:
    assert parse_duration(text) == expected


@pytest.mark.parametrize("text", ["", "5", "h", "2 h", "-2h", "1.5h", "3y", "0m", "2h-"])
def test_bad_durations(text: str) -> None:
    with pytest.raises(ValueError, match="invalid duration"):
        parse_duration(text)


def test_a_decoded_event_becomes_a_recorded_decision() -> None:
    at = datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC)
    value = {
        "envelope": {"event_id": "e1", "tenant_id": "acme", "occurred_at": at},
        "enforcement_id": "enf-1",
        "subject_type": "task",
        "subject_id": "acme/t-1",
        "action": "SubmitTask",
        "decision": "deny",
        "policy_ids": ["no-big-inputs"],
        "diagnostics": [],
        "request": "{}",
    }
    record = Recorded.from_event(value)
    assert record.occurred_at_ms == int(at.timestamp() * 1000)
    assert record.when == "2025-01-02T03:04:05+00:00"
    assert (record.decision, record.policy_ids) == ("deny", ("no-big-inputs",))


# --- the command line's refusals (before it reads anything) -----------------------------------


def run(*args: str) -> Any:
    return CliRunner().invoke(app, ["policy", "simulate", "--tenant", "acme", *args])


def test_the_cli_refuses_an_invalid_file_with_status_2(tmp_path: Path) -> None:
    bad = tmp_path / "bad.cedar"
    bad.write_text("forbid(principal, action, resource) when { resource.nope > 1 };")
    result = run("--policies", str(bad))
    assert result.exit_code == 2, result.output
    assert "invalid Cedar" in result.output
    assert "attribute `nope`" in result.output


def test_the_cli_refuses_a_bad_duration_with_status_2(tmp_path: Path) -> None:
    good = tmp_path / "good.cedar"
    good.write_text(ALLOW_ALL)
    result = run("--policies", str(good), "--since", "yesterday")
    assert result.exit_code == 2, result.output
    assert "invalid duration 'yesterday'" in result.output


def test_the_cli_refuses_a_missing_file_with_status_2(tmp_path: Path) -> None:
    result = run("--policies", str(tmp_path / "nowhere.cedar"))
    assert result.exit_code == 2, result.output
