"""The Task aggregate's decide/evolve, driven through the generic Aggregate wrapper."""

from __future__ import annotations

import io
from collections.abc import Mapping
from typing import Any

import fastavro
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from commands import task
from commands.model import Command, Context, Event, Rejection, scoped_id
from schemas import catalog

AGG = task.aggregate
NOW = 1_700_000_000_000


def agent_summary(status: str = "deployed", agent_version: str = "1.2.0") -> dict[str, Any]:
    return {
        "status": status,
        "version": 1,
        "agent_version": agent_version,
        "quotas": {"fuel": 1000, "memory_mb": 64, "timeout_ms": 5000},
        "abi": "reactor",
        "module_digest": "sha256:" + "0" * 64,
        "input_schema": None,
    }


def context(
    agents: Mapping[str, str] | None = None,
    *,
    tenant_status: str | None = "active",
    now_ms: int = NOW,
) -> Context:
    """One tenant, acme, with agents (name -> status)."""
    agents = {"summarizer": "deployed", "old": "retired"} if agents is None else agents
    directory: dict[tuple[str, str], Mapping[str, Any]] = {}
    if tenant_status is not None:
        directory[("tenant", "acme")] = {"status": tenant_status, "version": 1, "limits": {}}
    for name, status in agents.items():
        directory[("agent", scoped_id("acme", name))] = agent_summary(status)
    return Context(now_ms=now_ms, lookup=lambda t, i: directory.get((t, i)))


CTX = context()


def envelope(task_id: str, **extra: Any) -> dict[str, Any]:
    env = {
        "command_id": extra.pop("command_id", "cmd-1"),
        "tenant_id": "acme",
        "aggregate_id": scoped_id("acme", task_id),
        "expected_version": None,
    }
    env.update(extra)
    return env


def submit(task_id: str = "t-1", agent_name: str = "summarizer", **fields: Any) -> Command:
    env = {k: fields.pop(k) for k in ("command_id", "expected_version", "address") if k in fields}
    address = env.pop("address", task_id)
    payload: dict[str, Any] = {"task_id": task_id, "agent_name": agent_name, "input": '{"q": 1}'}
    payload.update(fields)
    return Command(task.SUBMIT, envelope(address, **env), payload)


def cancel(reason: str | None = None, task_id: str = "t-1", **env: Any) -> Command:
    payload = {} if reason is None else {"reason": reason}
    return Command(task.CANCEL, envelope(task_id, **env), payload)


def rejected(decision: Any) -> tuple[str, str | None]:
    assert isinstance(decision, Rejection), decision
    return decision.code, decision.field


def submitted() -> task.TaskState:
    decision = AGG.handle(AGG.initial(), submit(), CTX)
    assert isinstance(decision, list)
    return AGG.fold(AGG.initial(), decision)


# Lifecycle events, as the orchestration and kernel stages will emit them.
def authorized(e: str = "enf-1") -> Event:
    return Event(task.AUTHORIZED, {"task_id": "t-1", "enforcement_id": e})


def task_rejected() -> Event:
    return Event(task.REJECTED, {"task_id": "t-1", "reason": "denied by policy", "field": None})


def scheduled(attempt: int = 1) -> Event:
    return Event(
        task.SCHEDULED,
        {"task_id": "t-1", "run_id": f"r{attempt}", "attempt": attempt, "dispatch_partition": 0},
    )


def started(attempt: int = 1) -> Event:
    return Event(
        task.RUN_STARTED,
        {"task_id": "t-1", "run_id": f"r{attempt}", "attempt": attempt, "worker": "w1"},
    )


def progress(attempt: int = 1, seq: int = 1) -> Event:
    return Event(
        task.RUN_PROGRESS,
        {"task_id": "t-1", "run_id": f"r{attempt}", "sequence": seq, "percent": 50.0,
         "message": "half"},
    )  # fmt: skip


def run_succeeded(attempt: int = 1) -> Event:
    return Event(
        task.RUN_SUCCEEDED,
        {"task_id": "t-1", "run_id": f"r{attempt}", "output_digest": f"sha256:{attempt}",
         "output_bytes": 10, "fuel_used": 5, "duration_ms": 7, "agent_name": "summarizer"},
    )  # fmt: skip


def run_failed(attempt: int = 1) -> Event:
    return Event(
        task.RUN_FAILED,
        {"task_id": "t-1", "run_id": f"r{attempt}", "reason": "out_of_fuel", "message": "",
         "fuel_used": 1000, "duration_ms": 7},
    )  # fmt: skip


def artifact(attempt: int = 1) -> Event:
    return Event(
        task.ARTIFACT_STORED,
        {"task_id": "t-1", "run_id": f"r{attempt}", "artifact_id": "a1", "digest": "sha256:x",
         "size_bytes": 10, "content_type": "application/json", "object_key": "acme/t-1/a1"},
    )  # fmt: skip


def succeeded(attempt: int = 1) -> Event:
    return Event(task.SUCCEEDED, {"task_id": "t-1", "run_id": f"r{attempt}"})


def failed() -> Event:
    return Event(task.FAILED, {"task_id": "t-1", "reason": "out_of_fuel"})


def retry_scheduled(attempt: int = 1) -> Event:
    return Event(
        task.RETRY_SCHEDULED,
        {"task_id": "t-1", "run_id": f"r{attempt}", "next_attempt": attempt + 1,
         "retry_at_ms": NOW + 1000, "reason": "out_of_fuel"},
    )  # fmt: skip


def timed_out() -> Event:
    return Event(task.TIMED_OUT, {"task_id": "t-1"})


def cancelled() -> Event:
    return Event(task.CANCELLED, {"task_id": "t-1", "reason": "user"})


def enforcement() -> Event:
    return Event(
        task.ENFORCEMENT_DECIDED,
        {"enforcement_id": "enf-1", "subject_type": "task", "subject_id": "acme/t-1",
         "action": "submit", "decision": "allow", "policy_ids": ["p1"], "diagnostics": [],
         "request": "{}"},
    )  # fmt: skip


# --- submit -----------------------------------------------------------------------------------


def test_submit_emits_task_submitted_bound_to_the_current_agent_version() -> None:
    command = submit(input='{"q": "é"}', labels={"team": "a"}, deadline_ms=NOW, submitted_by="u1")
    decision = AGG.handle(AGG.initial(), command, CTX)
    assert decision == [
        Event(
            task.SUBMITTED,
            {
                "task_id": "t-1",
                "agent_name": "summarizer",
                "agent_version": "1.2.0",
                "input": '{"q": "é"}',
                "input_bytes": 11,  # UTF-8 bytes, not characters
                "labels": {"team": "a"},
                "deadline_ms": NOW,
                "submitted_by": "u1",
            },
        )
    ]
    state = AGG.fold(AGG.initial(), decision)
    assert (state.status, state.version, state.attempt, state.agent_version) == (
        "submitted",
        1,
        0,
        "1.2.0",
    )


def test_submit_defaults_labels_deadline_and_submitter() -> None:
    decision = AGG.handle(AGG.initial(), submit(), CTX)
    assert isinstance(decision, list)
    p = decision[0].payload
    assert (p["labels"], p["deadline_ms"], p["submitted_by"]) == ({}, None, None)


def test_resubmitting_a_task_id_is_already_exists() -> None:
    decision = AGG.handle(submitted(), submit(command_id="cmd-2"), CTX)
    assert rejected(decision) == ("already_exists", "/task_id")


def test_resubmitting_a_finished_task_id_is_still_already_exists() -> None:
    state = AGG.fold(submitted(), [cancelled()])
    assert rejected(AGG.handle(state, submit(), CTX)) == ("already_exists", "/task_id")


@pytest.mark.parametrize(
    "task_id", ["", "a" * 65, "t_1", "t 1", "t/1", "t.1", "é", "t-1\n", None, 7]
)
def test_invalid_task_ids_are_rejected(task_id: Any) -> None:
    decision = AGG.handle(AGG.initial(), submit(task_id, address="x"), CTX)
    assert rejected(decision) == ("invalid", "/task_id")


@pytest.mark.parametrize("task_id", ["a", "A", "0", "-", "a" * 64, "Task-01-ABC"])
def test_boundary_task_ids_are_accepted(task_id: str) -> None:
    assert isinstance(AGG.handle(AGG.initial(), submit(task_id), CTX), list)


def test_task_id_must_match_the_addressed_task() -> None:
    decision = AGG.handle(AGG.initial(), submit("t-1", address="t-2"), CTX)
    assert rejected(decision) == ("invalid", "/task_id")


def test_unknown_agent_is_not_found() -> None:
    assert rejected(AGG.handle(AGG.initial(), submit(agent_name="ghost"), CTX)) == (
        "not_found",
        "/agent_name",
    )
    absent = context({"summarizer": "absent"})
    assert rejected(AGG.handle(AGG.initial(), submit(), absent)) == ("not_found", "/agent_name")


def test_agents_are_looked_up_in_the_tasks_own_tenant() -> None:
    directory = {
        ("tenant", "acme"): {"status": "active", "version": 1},
        ("agent", "other/summarizer"): agent_summary(),
    }
    ctx = Context(now_ms=NOW, lookup=lambda t, i: directory.get((t, i)))
    assert rejected(AGG.handle(AGG.initial(), submit(), ctx)) == ("not_found", "/agent_name")


def test_retired_agent_is_a_conflict() -> None:
    decision = AGG.handle(AGG.initial(), submit(agent_name="old"), CTX)
    assert rejected(decision) == ("conflict", "/agent_name")


@pytest.mark.parametrize("name", ["", "Summarizer", "a_b", "a" * 64])
def test_malformed_agent_names_are_invalid(name: str) -> None:
    decision = AGG.handle(AGG.initial(), submit(agent_name=name), CTX)
    assert rejected(decision) == ("invalid", "/agent_name")


@pytest.mark.parametrize(
    "text", ["", "{", "{'a': 1}", "NaN", '{"a": Infinity}', "[1,]", "[" * 100_000, None, 3]
)
def test_input_must_be_json_text(text: Any) -> None:
    decision = AGG.handle(AGG.initial(), submit(input=text), CTX)
    assert rejected(decision) == ("invalid", "/input")


@pytest.mark.parametrize("text", ["{}", "[]", "1", '"s"', "null", " true ", '{"a": [1.5e3]}'])
def test_any_json_value_is_a_valid_input(text: str) -> None:
    assert isinstance(AGG.handle(AGG.initial(), submit(input=text), CTX), list)


@pytest.mark.parametrize(("deadline", "ok"), [(NOW - 1, False), (0, False), (NOW, True),
                                               (NOW + 1, True), (None, True)])  # fmt: skip
def test_a_deadline_in_the_past_is_invalid(deadline: int | None, ok: bool) -> None:
    decision = AGG.handle(AGG.initial(), submit(deadline_ms=deadline), CTX)
    if ok:
        assert isinstance(decision, list)
    else:
        assert rejected(decision) == ("invalid", "/deadline_ms")


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"deadline_ms": "soon"}, "/deadline_ms"),
        ({"deadline_ms": True}, "/deadline_ms"),
        ({"deadline_ms": 2**63}, "/deadline_ms"),
        ({"labels": {"a": 1}}, "/labels"),
        ({"labels": ["a"]}, "/labels"),
        ({"submitted_by": 5}, "/submitted_by"),
    ],
)
def test_mistyped_fields_are_invalid(fields: dict[str, Any], field: str) -> None:
    assert rejected(AGG.handle(AGG.initial(), submit(**fields), CTX)) == ("invalid", field)


def test_field_rules_come_before_existence_and_the_agent() -> None:
    decision = AGG.handle(submitted(), submit(agent_name="ghost", input="{"), CTX)
    assert rejected(decision) == ("invalid", "/input")
    assert rejected(AGG.handle(submitted(), submit(agent_name="ghost"), CTX))[0] == "already_exists"


@pytest.mark.parametrize(("status", "code"), [(None, "not_found"), ("absent", "not_found"),
                                              ("suspended", "suspended")])  # fmt: skip
def test_absent_or_suspended_tenants_accept_no_task_commands(status: str | None, code: str) -> None:
    ctx = context(tenant_status=status)
    assert rejected(AGG.handle(AGG.initial(), submit(), ctx))[0] == code
    assert rejected(AGG.handle(submitted(), cancel(), ctx))[0] == code


def test_stale_expected_version_is_a_version_conflict() -> None:
    assert rejected(AGG.handle(submitted(), cancel(expected_version=0), CTX))[0] == (
        "version_conflict"
    )
    assert isinstance(AGG.handle(submitted(), cancel(expected_version=1), CTX), list)


def test_unsupported_command_type_is_rejected() -> None:
    command = Command("aion.task.RetryTask", envelope("t-1"), {})
    assert rejected(AGG.handle(submitted(), command, CTX))[0] == "unsupported"


# --- cancel -----------------------------------------------------------------------------------


def test_cancel_emits_task_cancelled() -> None:
    decision = AGG.handle(submitted(), cancel("no longer needed"), CTX)
    assert decision == [Event(task.CANCELLED, {"task_id": "t-1", "reason": "no longer needed"})]
    state = AGG.fold(submitted(), decision)
    assert (state.status, state.version, state.reason) == ("cancelled", 2, "no longer needed")


def test_cancel_reason_defaults_to_empty() -> None:
    decision = AGG.handle(submitted(), cancel(), CTX)
    assert isinstance(decision, list)
    assert decision[0].payload == {"task_id": "t-1", "reason": ""}


def test_cancel_of_an_absent_task_is_not_found() -> None:
    assert rejected(AGG.handle(AGG.initial(), cancel(), CTX))[0] == "not_found"


NON_TERMINAL_HISTORIES = {
    "submitted": [],
    "authorized": [authorized()],
    "scheduled": [authorized(), scheduled()],
    "running": [authorized(), scheduled(), started()],
    "retrying": [authorized(), scheduled(), started(), run_failed(), retry_scheduled()],
}
TERMINAL_HISTORIES = {
    "rejected": [task_rejected()],
    "succeeded": [authorized(), scheduled(), started(), run_succeeded(), succeeded()],
    "failed": [authorized(), scheduled(), started(), run_failed(), failed()],
    "timed_out": [authorized(), scheduled(), started(), timed_out()],
    "cancelled": [cancelled()],
}


@pytest.mark.parametrize("status", sorted(NON_TERMINAL_HISTORIES))
def test_any_non_terminal_task_can_be_cancelled(status: str) -> None:
    state = AGG.fold(submitted(), NON_TERMINAL_HISTORIES[status])
    assert state.status == status
    decision = AGG.handle(state, cancel(), CTX)
    assert isinstance(decision, list)
    assert AGG.fold(state, decision).status == "cancelled"


@pytest.mark.parametrize("status", sorted(TERMINAL_HISTORIES))
def test_a_terminal_task_cannot_be_cancelled(status: str) -> None:
    state = AGG.fold(submitted(), TERMINAL_HISTORIES[status])
    assert state.status == status
    assert state.terminal
    assert rejected(AGG.handle(state, cancel(), CTX)) == ("conflict", None)


# --- evolve: the lifecycle --------------------------------------------------------------------


def test_a_retried_run_walks_the_whole_machine() -> None:
    history = [
        authorized("enf-9"),
        scheduled(1),
        started(1),
        progress(1, 1),
        run_failed(1),
        retry_scheduled(1),
        scheduled(2),
        started(2),
        progress(2, 1),
        progress(2, 2),
        artifact(2),
        run_succeeded(2),
        succeeded(2),
    ]
    state = submitted()
    seen = []
    for event in history:
        state = AGG.evolve(state, event)
        seen.append(state.status)
    assert seen == [
        "authorized", "scheduled", "running", "running", "running", "retrying", "scheduled",
        "running", "running", "running", "running", "running", "succeeded",
    ]  # fmt: skip
    assert state.version == 1 + len(history)
    assert (state.attempt, state.run_id, state.enforcement_id) == (2, "r2", "enf-9")
    assert state.output_digest == "sha256:2"
    assert task.summary(state) == {
        "status": "succeeded",
        "version": 14,
        "agent_name": "summarizer",
        "attempt": 2,
    }


def test_summary_of_the_initial_state() -> None:
    assert task.summary(AGG.initial()) == {
        "status": "absent",
        "version": 0,
        "agent_name": None,
        "attempt": 0,
    }


@pytest.mark.parametrize(
    ("history", "status"),
    [
        ([task_rejected()], "rejected"),
        ([scheduled()], "submitted"),  # not yet authorized
        ([authorized(), started()], "authorized"),  # not yet scheduled
        ([authorized(), succeeded()], "authorized"),
        ([authorized(), started()], "authorized"),
        ([authorized(), scheduled(), started(), run_failed(), scheduled(2)], "running"),  # no retry
        ([authorized(), scheduled(), started(2)], "scheduled"),  # another run's start
        ([authorized(), scheduled(), started(), succeeded(2)], "running"),  # another run
        ([authorized(), authorized("enf-2")], "authorized"),
    ],
)
def test_out_of_turn_events_count_a_version_but_do_not_move_the_status(
    history: list[Event], status: str
) -> None:
    state = AGG.fold(submitted(), history)
    assert state.status == status
    assert state.version == 1 + len(history)


def test_a_stale_run_outcome_does_not_set_the_output() -> None:
    state = AGG.fold(submitted(), [authorized(), scheduled(1), started(1), run_failed(1)])
    state = AGG.fold(state, [retry_scheduled(1), scheduled(2), started(2), run_succeeded(1)])
    assert state.output_digest is None


@pytest.mark.parametrize("status", sorted(TERMINAL_HISTORIES))
def test_no_event_moves_a_terminal_task(status: str) -> None:
    state = AGG.fold(submitted(), TERMINAL_HISTORIES[status])
    for event in EVERY_EVENT:
        after = AGG.evolve(state, event)
        assert after.status == status, event.type


def test_enforcement_decisions_belong_to_another_aggregate() -> None:
    state = submitted()
    assert AGG.evolve(state, enforcement()) == state
    assert AGG.evolve(state, Event("aion.CommandRejected", {"code": "invalid"})) == state


def test_load_of_dump_is_identity() -> None:
    state = AGG.fold(submitted(), TERMINAL_HISTORIES["succeeded"])
    assert AGG.load(AGG.dump(state)) == state
    assert AGG.load(AGG.dump(submitted())) == submitted()
    assert AGG.load({}) == AGG.initial()


def test_the_aggregate_is_tenant_scoped_and_handles_submit_cancel_and_kernel_reports() -> None:
    assert (AGG.name, AGG.tenant_scoped) == ("task", True)
    assert AGG.commands == {task.SUBMIT, task.CANCEL, task.FINISHED, *task.REPORTS}
    assert AGG.unconditional == {task.FINISHED, *task.REPORTS}


@pytest.mark.parametrize(
    "history",
    [[authorized()], [authorized(), scheduled()], [authorized(), scheduled(), started()],
     [authorized(), scheduled(), started(), run_failed(), retry_scheduled()]],
)  # fmt: skip
def test_a_task_times_out_from_any_live_status_after_authorization(history: list[Event]) -> None:
    state = AGG.fold(submitted(), [*history, timed_out()])
    assert state.status == "timed_out"


def test_a_run_refused_before_starting_can_fail_or_retry_the_task() -> None:
    base = AGG.fold(submitted(), [authorized(), scheduled(), run_failed()])
    assert base.status == "scheduled"
    assert AGG.evolve(base, failed()).status == "failed"
    assert AGG.evolve(base, retry_scheduled()).status == "retrying"


def report(kind: str, **payload: Any) -> Command:
    return Command(kind, envelope("t-1"), {"task_id": "t-1", **payload})


def test_kernel_reports_are_recorded_as_run_events_even_for_a_suspended_tenant() -> None:
    state = AGG.fold(submitted(), [authorized(), scheduled()])
    command = report("aion.run.RecordRunStarted", run_id="r1", attempt=1, worker="w1")
    decision = AGG.handle(state, command, context(tenant_status="suspended"))
    assert decision == [Event(task.RUN_STARTED, {"task_id": "t-1", "run_id": "r1",
                                                 "attempt": 1, "worker": "w1"})]  # fmt: skip
    assert AGG.fold(state, decision).status == "running"


def test_a_kernel_report_for_an_absent_or_other_task_is_refused() -> None:
    command = report("aion.run.RecordRunStarted", run_id="r1", attempt=1, worker="w1")
    assert rejected(AGG.handle(AGG.initial(), command, CTX))[0] == "not_found"
    other = Command(command.type, command.envelope, {**command.payload, "task_id": "t-2"})
    assert rejected(AGG.handle(submitted(), other, CTX)) == ("invalid", "/task_id")


ARTIFACT = {
    "artifact_id": "output",
    "digest": "sha256:0",
    "size_bytes": 2,
    "content_type": "application/json",
    "object_key": "artifacts/acme/sha256/0",
}


def finished(start: str, **outcome: Any) -> Command:
    spent = {"fuel_used": 5, "duration_ms": 3}
    fields = {"run_id": "r1", "attempt": 1, "worker": "w1", "start": start, **spent}
    return report(task.FINISHED, artifacts=[ARTIFACT], **fields, **outcome)


def test_a_whole_run_report_records_the_run_events_of_the_one_fact_reports_in_order() -> None:
    state = AGG.fold(submitted(), [authorized(), scheduled()])
    decision = AGG.handle(state, finished("here", output_digest="sha256:0", output_bytes=2), CTX)
    run = {"task_id": "t-1", "run_id": "r1"}
    assert decision == [
        Event(task.RUN_STARTED, {**run, "attempt": 1, "worker": "w1"}),
        Event(task.ARTIFACT_STORED, {**run, **ARTIFACT}),
        Event(task.RUN_SUCCEEDED, {**run, "output_digest": "sha256:0", "output_bytes": 2,
                                   "agent_name": "summarizer", "fuel_used": 5,
                                   "duration_ms": 3}),
    ]  # fmt: skip
    assert AGG.fold(state, decision).status == "running"  # the orchestrator ends the task


def test_a_whole_run_report_of_a_long_or_refused_run_records_no_second_start() -> None:
    state = AGG.fold(submitted(), [authorized(), scheduled()])
    for start in ("before", "never"):
        failure = {"failure_reason": "refused", "failure_message": "no module"}
        decision = AGG.handle(state, finished(start, **failure), CTX)
        assert isinstance(decision, list)
        assert [e.type for e in decision] == [task.ARTIFACT_STORED, task.RUN_FAILED]
        assert decision[-1].payload["reason"] == "refused"
    assert rejected(AGG.handle(AGG.initial(), finished("here"), CTX))[0] == "not_found"


# --- the records on the wire ------------------------------------------------------------------

EVENT_ENVELOPE = {
    "event_id": "e",
    "event_type": "t",
    "command_id": "c",
    "correlation_id": "c",
    "causation_id": "c",
    "tenant_id": "acme",
    "aggregate_type": "task",
    "aggregate_id": "acme/t-1",
    "aggregate_version": 1,
    "occurred_at": NOW,
    "actor": "test",
    "traceparent": None,
    "tracestate": None,
}


def submitted_event() -> Event:
    decision = AGG.handle(AGG.initial(), submit(deadline_ms=NOW, labels={"a": "b"}), CTX)
    assert isinstance(decision, list)
    return decision[0]


EVERY_EVENT = [
    submitted_event(),
    authorized(),
    task_rejected(),
    scheduled(),
    started(),
    progress(),
    run_succeeded(),
    run_failed(),
    artifact(),
    succeeded(),
    failed(),
    retry_scheduled(),
    timed_out(),
    cancelled(),
    enforcement(),
]


@pytest.mark.parametrize("event", EVERY_EVENT, ids=lambda e: e.type)
def test_every_event_serialises_with_its_avro_schema(event: Event) -> None:
    rec = catalog.record(event.type)
    assert rec.is_event
    buf = io.BytesIO()
    fastavro.schemaless_writer(buf, rec.parsed, {"envelope": EVENT_ENVELOPE, **event.payload})
    buf.seek(0)
    back = fastavro.schemaless_reader(buf, rec.parsed)
    back.pop("envelope")
    assert back == event.payload


def test_every_avsc_of_the_task_family_is_an_event_or_a_command() -> None:
    prefixes = ("aion.task.", "aion.run.", "aion.artifact.", "aion.enforcement.")
    names = {n for n in catalog.all_records() if n.startswith(prefixes)}
    commands = {task.SUBMIT, task.CANCEL, task.FINISHED, *task.REPORTS, "aion.task.Tick"}
    assert names == {e.type for e in EVERY_EVENT} | commands
    assert catalog.record(task.SUBMIT).is_command
    assert catalog.record(task.CANCEL).is_command


def test_every_status_changing_event_is_declared_in_the_machine() -> None:
    assert set(task.TRANSITIONS) | task.RECORDED_ONLY == task.TASK_EVENTS
    assert {e.type for e in EVERY_EVENT} == task.TASK_EVENTS | {task.ENFORCEMENT_DECIDED}


# --- property: the decider's events are the state ---------------------------------------------

LIFECYCLE = [
    authorized(),
    task_rejected(),
    scheduled(1),
    scheduled(2),
    started(1),
    started(2),
    progress(1),
    run_succeeded(1),
    run_succeeded(2),
    run_failed(1),
    retry_scheduled(1),
    artifact(1),
    succeeded(1),
    succeeded(2),
    failed(),
    timed_out(),
    cancelled(),
    submitted_event(),  # a duplicate append must not reset the task either
    enforcement(),
]
STEP = st.one_of(
    st.tuples(
        st.just("submit"),
        st.sampled_from(["summarizer", "old", "ghost"]),
        st.sampled_from(['{"q": 1}', "{bad"]),
        st.one_of(st.none(), st.sampled_from([NOW - 1, NOW, NOW + 60_000])),
        st.one_of(st.none(), st.integers(min_value=0, max_value=4)),
    ),
    st.tuples(
        st.just("cancel"),
        st.just(""),
        st.just(""),
        st.just(None),
        st.one_of(st.none(), st.integers(min_value=0, max_value=4)),
    ),
    st.tuples(st.just("event"), st.integers(0, len(LIFECYCLE) - 1), st.just(""), st.just(None),
              st.just(None)),
)  # fmt: skip


@settings(max_examples=400, deadline=None)
@given(st.lists(STEP, max_size=20))
def test_folding_emitted_events_reproduces_the_stepwise_state(steps: list[tuple]) -> None:
    state = AGG.initial()
    emitted: list[Event] = []
    decided: list[Event] = []  # the decider's own events
    for i, (kind, a, b, deadline, expected) in enumerate(steps):
        before = state
        if kind == "event":  # a later stage appends one of its events to the stream
            decision: Any = [LIFECYCLE[a]]
        elif kind == "submit":
            command = submit(agent_name=a, input=b, deadline_ms=deadline, command_id=f"c{i}",
                             expected_version=expected)  # fmt: skip
            decision = AGG.handle(state, command, CTX)
        else:
            decision = AGG.handle(state, cancel(command_id=f"c{i}", expected_version=expected), CTX)

        counted = len([e for e in emitted if e.type in task.TASK_EVENTS])
        if kind != "event" and expected is not None and expected != counted:
            assert rejected(decision)[0] == "version_conflict", i
        elif kind == "submit":
            if b == "{bad":
                assert rejected(decision) == ("invalid", "/input"), i
            elif deadline is not None and deadline < NOW:
                assert rejected(decision) == ("invalid", "/deadline_ms"), i
            elif state.exists:
                assert rejected(decision) == ("already_exists", "/task_id"), i
            elif a == "ghost":
                assert rejected(decision) == ("not_found", "/agent_name"), i
            elif a == "old":
                assert rejected(decision) == ("conflict", "/agent_name"), i
            else:
                assert isinstance(decision, list), (i, decision)
        elif kind == "cancel":
            if not state.exists:
                assert rejected(decision)[0] == "not_found", i
            elif state.terminal:
                assert rejected(decision) == ("conflict", None), i
            else:
                assert [e.type for e in decision] == [task.CANCELLED], i

        if isinstance(decision, list):
            emitted += decision
            decided += decision if kind != "event" else []
            state = AGG.fold(state, decision)
        if before.terminal:
            assert state.status == before.status, i  # a task never leaves a terminal status
        if before.status != state.status:
            allowed = task.TRANSITIONS[emitted[-1].type]
            assert before.status in allowed[0] and state.status == allowed[1], i
        assert AGG.load(AGG.dump(state)) == state

    assert AGG.fold(AGG.initial(), emitted) == state
    assert state.version == len([e for e in emitted if e.type in task.TASK_EVENTS])
    assert sum(e.type == task.SUBMITTED for e in decided) <= 1
    assert sum(e.type == task.CANCELLED for e in decided) <= 1
