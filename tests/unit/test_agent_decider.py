"""The Agent aggregate's decide/evolve, driven through the generic Aggregate wrapper."""

from __future__ import annotations

import io
import json
from collections.abc import Mapping
from typing import Any

import fastavro
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from commands import agent
from commands.model import Command, Context, Event, Rejection, scoped_id
from schemas import catalog

AGG = agent.aggregate
DIGEST = "sha256:" + "ab" * 32
LIMITS = {
    "max_concurrent_tasks": 8,
    "tasks_per_minute": 600,
    "max_fuel": 1_000_000,
    "max_memory_mb": 256,
    "max_timeout_ms": 30_000,
    "max_module_bytes": 10_000_000,
}


def tenant_summary(status: str = "active", limits: Mapping[str, int] | None = None) -> dict:
    return {"status": status, "version": 1, "limits": dict(limits or LIMITS), "users": {}}


def context(
    *,
    models: Mapping[str, str] | None = None,
    tenant: Mapping[str, Any] | None = None,
    tenant_id: str = "acme",
) -> Context:
    """A directory with one tenant and its models (name -> status)."""
    registered = {"gpt": "registered", "embed": "registered"} if models is None else models
    directory: dict[tuple[str, str], Mapping[str, Any]] = {
        ("tenant", tenant_id): tenant_summary() if tenant is None else tenant,
    }
    for name, status in registered.items():
        directory[("model", scoped_id(tenant_id, name))] = {
            "status": status,
            "version": 1,
            "kind": "llm",
        }
    directory[("module", scoped_id(tenant_id, DIGEST))] = {"status": "stored", "size": 33}
    return Context(now_ms=1_700_000_000_000, lookup=lambda t, i: directory.get((t, i)))


CTX = context()


def manifest(**overrides: Any) -> dict[str, Any]:
    m: dict[str, Any] = {
        "agent_name": "summarizer",
        "version": "1.0.0",
        "module_digest": DIGEST,
        "abi": "reactor",
        "quotas": {"fuel": 1000, "memory_mb": 64, "timeout_ms": 5000},
    }
    m.update(overrides)
    return m


def quotas(**overrides: Any) -> dict[str, Any]:
    q: dict[str, Any] = {"fuel": 1000, "memory_mb": 64, "timeout_ms": 5000}
    q.update(overrides)
    return q


def envelope(name: str = "summarizer", tenant_id: str = "acme", **extra: Any) -> dict[str, Any]:
    env = {
        "command_id": extra.pop("command_id", "cmd-1"),
        "tenant_id": tenant_id,
        "aggregate_id": scoped_id(tenant_id, name),
        "expected_version": None,
    }
    env.update(extra)
    return env


def deploy(m: dict[str, Any] | None = None, **env: Any) -> Command:
    m = manifest() if m is None else m
    name = env.pop("name", m.get("agent_name", "summarizer"))
    return Command(agent.DEPLOY, envelope(name, **env), {"manifest": m})


def update(m: dict[str, Any], **env: Any) -> Command:
    name = env.pop("name", m.get("agent_name", "summarizer"))
    return Command(agent.UPDATE, envelope(name, **env), {"manifest": m})


def retire(reason: str | None = None, name: str = "summarizer", **env: Any) -> Command:
    payload = {} if reason is None else {"reason": reason}
    return Command(agent.RETIRE, envelope(name, **env), payload)


def run(state: Any, *commands: Command, ctx: Context = CTX) -> Any:
    for command in commands:
        decision = AGG.handle(state, command, ctx)
        assert isinstance(decision, list), decision
        state = AGG.fold(state, decision)
    return state


def rejected(decision: Any) -> tuple[str, str | None]:
    assert isinstance(decision, Rejection), decision
    return decision.code, decision.field


def deployed() -> agent.AgentState:
    return run(AGG.initial(), deploy())


# --- deploy -----------------------------------------------------------------------------------


def test_deploy_emits_agent_deployed_with_every_default_filled() -> None:
    decision = AGG.handle(AGG.initial(), deploy(), CTX)
    assert decision == [
        Event(
            agent.DEPLOYED,
            {
                "agent_name": "summarizer",
                "manifest": {
                    "agent_name": "summarizer",
                    "version": "1.0.0",
                    "module_digest": DIGEST,
                    "entrypoint": "run",
                    "abi": "reactor",
                    "models": [],
                    "quotas": {
                        "fuel": 1000,
                        "memory_mb": 64,
                        "timeout_ms": 5000,
                        "max_concurrency": 1,
                        "max_retries": 0,
                        "retry_backoff_ms": 1000,
                    },
                    "capabilities": [],
                    "input_schema": None,
                    "description": "",
                    "labels": {},
                    "index_outputs": False,
                },
            },
        )
    ]


def test_deploy_with_every_field_set_keeps_them() -> None:
    m = manifest(
        entrypoint="main",
        abi="wasi_command",
        models=["gpt", "embed"],
        quotas=quotas(max_concurrency=8, max_retries=3, retry_backoff_ms=0),
        capabilities=["progress", "model_inference", "scratch_dir"],
        input_schema='{"type": "object"}',
        description="Summarises",
        labels={"team": "a"},
        index_outputs=True,
    )
    decision = AGG.handle(AGG.initial(), deploy(m), CTX)
    assert isinstance(decision, list)
    assert decision[0].payload["manifest"] == m


def test_event_manifest_is_a_copy_of_the_command_manifest() -> None:
    m = manifest(models=["gpt"], labels={"k": "v"})
    decision = AGG.handle(AGG.initial(), deploy(m), CTX)
    assert isinstance(decision, list)
    m["models"].append("embed")
    m["labels"]["k"] = "changed"
    m["quotas"]["fuel"] = 1
    out = decision[0].payload["manifest"]
    assert (out["models"], out["labels"], out["quotas"]["fuel"]) == (["gpt"], {"k": "v"}, 1000)


def test_deploying_an_existing_agent_is_already_exists() -> None:
    decision = AGG.handle(deployed(), deploy(manifest(version="2.0.0")), CTX)
    assert rejected(decision) == ("already_exists", "/manifest/agent_name")


def test_deploying_a_retired_agent_is_already_exists() -> None:
    state = run(deployed(), retire())
    assert rejected(AGG.handle(state, deploy(), CTX)) == ("already_exists", "/manifest/agent_name")


@pytest.mark.parametrize(
    "name", ["", "A", "Summarizer", "sum_marizer", "sum marizer", "a" * 64, "agent\n", "é", None, 3]
)
def test_invalid_agent_names_are_rejected(name: Any) -> None:
    decision = AGG.handle(AGG.initial(), deploy(manifest(agent_name=name), name="x"), CTX)
    assert rejected(decision) == ("invalid", "/manifest/agent_name")


@pytest.mark.parametrize("name", ["a", "0", "-", "a-b-", "a" * 63, "agent-01"])
def test_boundary_agent_names_are_accepted(name: str) -> None:
    assert isinstance(AGG.handle(AGG.initial(), deploy(manifest(agent_name=name)), CTX), list)


def test_manifest_name_must_match_the_addressed_agent() -> None:
    decision = AGG.handle(AGG.initial(), deploy(manifest(), name="other"), CTX)
    assert rejected(decision) == ("invalid", "/manifest/agent_name")


def test_without_an_aggregate_id_the_name_is_not_cross_checked() -> None:
    command = deploy()
    del command.envelope["aggregate_id"]
    assert isinstance(AGG.handle(AGG.initial(), command, CTX), list)


@pytest.mark.parametrize(
    "version",
    ["1", "1.0", "1.0.0.0", "v1.0.0", "01.0.0", "1.00.0", "1.0.0-beta", "1.0.0+b", "", " 1.0.0",
     "1.0.0\n", "\u0661.0.0", "-1.0.0", None],
)  # fmt: skip
def test_non_semver_versions_are_rejected(version: Any) -> None:
    decision = AGG.handle(AGG.initial(), deploy(manifest(version=version)), CTX)
    assert rejected(decision) == ("invalid", "/manifest/version")


@pytest.mark.parametrize("version", ["0.0.0", "0.1.0", "10.20.30", "1.0.12345678901234567890"])
def test_semver_versions_are_accepted(version: str) -> None:
    assert isinstance(AGG.handle(AGG.initial(), deploy(manifest(version=version)), CTX), list)


@pytest.mark.parametrize(
    "digest",
    ["", "sha256:", "sha256:" + "a" * 63, "sha256:" + "a" * 65, "sha256:" + "A" * 64,
     "sha512:" + "a" * 64, "a" * 64, "sha256:" + "g" * 64, "sha256:" + "a" * 64 + "\n", None],
)  # fmt: skip
def test_malformed_module_digests_are_rejected(digest: Any) -> None:
    decision = AGG.handle(AGG.initial(), deploy(manifest(module_digest=digest)), CTX)
    assert rejected(decision) == ("invalid", "/manifest/module_digest")


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"entrypoint": ""}, "/manifest/entrypoint"),
        ({"entrypoint": "  "}, "/manifest/entrypoint"),
        ({"abi": "wasi"}, "/manifest/abi"),
        ({"abi": None}, "/manifest/abi"),
        ({"models": ["gpt", "gpt"]}, "/manifest/models/1"),
        ({"models": ["gpt", ""]}, "/manifest/models/1"),
        ({"models": "gpt"}, "/manifest/models"),
        ({"quotas": [1, 2]}, "/manifest/quotas"),
        ({"quotas": {"memory_mb": 1, "timeout_ms": 1}}, "/manifest/quotas/fuel"),
        ({"capabilities": ["network"]}, "/manifest/capabilities/0"),
        ({"capabilities": ["progress", "progress"]}, "/manifest/capabilities/1"),
        ({"input_schema": "not json"}, "/manifest/input_schema"),
        ({"input_schema": "[]"}, "/manifest/input_schema"),
        ({"input_schema": '"object"'}, "/manifest/input_schema"),
        ({"input_schema": "NaN"}, "/manifest/input_schema"),
        ({"input_schema": ""}, "/manifest/input_schema"),
        ({"input_schema": "[" * 100_000}, "/manifest/input_schema"),
        ({"labels": ["a"]}, "/manifest/labels"),
        ({"description": 3}, "/manifest/description"),
    ],
)
def test_field_rules_name_the_exact_field(overrides: dict[str, Any], field: str) -> None:
    decision = AGG.handle(AGG.initial(), deploy(manifest(**overrides)), CTX)
    assert rejected(decision) == ("invalid", field)


def test_a_manifest_that_is_not_an_object_is_invalid() -> None:
    command = Command(agent.DEPLOY, envelope(), {"manifest": "x"})
    assert rejected(AGG.handle(AGG.initial(), command, CTX)) == ("invalid", "/manifest")
    command = Command(agent.DEPLOY, envelope(), {})
    assert rejected(AGG.handle(AGG.initial(), command, CTX)) == ("invalid", "/manifest")


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("fuel", 0),
        ("fuel", -1),
        ("memory_mb", 0),
        ("timeout_ms", -5),
        ("max_concurrency", 0),
        ("max_retries", -1),
        ("retry_backoff_ms", -1),
        ("fuel", True),
        ("fuel", 1.5),
        ("memory_mb", 2**31),
        ("fuel", None),
    ],
)
def test_non_positive_or_mistyped_quotas_are_invalid(key: str, value: Any) -> None:
    decision = AGG.handle(AGG.initial(), deploy(manifest(quotas=quotas(**{key: value}))), CTX)
    assert rejected(decision) == ("invalid", f"/manifest/quotas/{key}")


@pytest.mark.parametrize(
    ("key", "limit"),
    [
        ("fuel", "max_fuel"),
        ("memory_mb", "max_memory_mb"),
        ("timeout_ms", "max_timeout_ms"),
        ("max_concurrency", "max_concurrent_tasks"),
    ],
)
def test_quotas_must_be_within_the_tenant_limits(key: str, limit: str) -> None:
    at_limit = deploy(manifest(quotas=quotas(**{key: LIMITS[limit]})))
    assert isinstance(AGG.handle(AGG.initial(), at_limit, CTX), list)
    over = deploy(manifest(quotas=quotas(**{key: LIMITS[limit] + 1})))
    decision = AGG.handle(AGG.initial(), over, CTX)
    assert rejected(decision) == ("invalid", f"/manifest/quotas/{key}")
    assert isinstance(decision, Rejection)
    assert limit in decision.reason


def test_a_tenant_summary_without_limits_bounds_nothing() -> None:
    ctx = context(tenant={"status": "active", "version": 1})
    big = deploy(manifest(quotas=quotas(fuel=10**15, memory_mb=2**31 - 1)))
    assert isinstance(AGG.handle(AGG.initial(), big, ctx), list)


@pytest.mark.parametrize("models", [{}, {"gpt": "absent"}, {"gpt": "retired"}])
def test_unregistered_models_are_not_found_at_their_index(models: dict[str, str]) -> None:
    ctx = context(models={"embed": "registered", **models})
    decision = AGG.handle(AGG.initial(), deploy(manifest(models=["embed", "gpt"])), ctx)
    assert rejected(decision) == ("not_found", "/manifest/models/1")


def test_models_are_looked_up_in_the_agents_own_tenant() -> None:
    directory = {
        ("tenant", "acme"): tenant_summary(),
        ("model", "other/gpt"): {"status": "registered", "version": 1, "kind": "llm"},
    }
    ctx = Context(lookup=lambda t, i: directory.get((t, i)))
    decision = AGG.handle(AGG.initial(), deploy(manifest(models=["gpt"])), ctx)
    assert rejected(decision) == ("not_found", "/manifest/models/0")


def test_syntax_is_checked_before_existence_and_context() -> None:
    bad = manifest(version="x", models=["nope"])
    assert rejected(AGG.handle(deployed(), deploy(bad), CTX)) == ("invalid", "/manifest/version")


@pytest.mark.parametrize(
    ("tenant", "code"),
    [(None, "not_found"), ({"status": "absent", "version": 0}, "not_found"),
     ({"status": "suspended", "version": 2, "limits": LIMITS}, "suspended")],
)  # fmt: skip
def test_absent_or_suspended_tenants_accept_no_agent_commands(
    tenant: dict[str, Any] | None, code: str
) -> None:
    directory = {} if tenant is None else {("tenant", "acme"): tenant}
    ctx = Context(lookup=lambda t, i: directory.get((t, i)))
    for state, command in [
        (AGG.initial(), deploy()),
        (deployed(), update(manifest(version="2.0.0"))),
        (deployed(), retire()),
    ]:
        assert rejected(AGG.handle(state, command, ctx))[0] == code


def test_stale_expected_version_is_a_version_conflict() -> None:
    decision = AGG.handle(deployed(), update(manifest(version="2.0.0"), expected_version=0), CTX)
    assert rejected(decision)[0] == "version_conflict"


def test_unsupported_command_type_is_rejected() -> None:
    command = Command("aion.agent.PauseAgent", envelope(), {})
    assert rejected(AGG.handle(deployed(), command, CTX))[0] == "unsupported"


# --- update -----------------------------------------------------------------------------------


def test_update_with_a_greater_version_emits_agent_updated() -> None:
    m = manifest(version="1.1.0", quotas=quotas(fuel=2000), models=["gpt"])
    decision = AGG.handle(deployed(), update(m), CTX)
    assert isinstance(decision, list)
    assert [e.type for e in decision] == [agent.UPDATED]
    assert decision[0].payload["agent_name"] == "summarizer"
    assert decision[0].payload["manifest"] == agent.normalise_manifest(m)
    state = AGG.fold(deployed(), decision)
    assert (state.version, state.status) == (2, "deployed")
    assert state.manifest == agent.normalise_manifest(m)


@pytest.mark.parametrize(
    ("current", "proposed", "ok"),
    [
        ("1.0.0", "1.0.1", True),
        ("1.0.0", "1.1.0", True),
        ("1.9.0", "1.10.0", True),  # numeric, not lexical
        ("1.10.0", "1.9.0", False),
        ("1.0.0", "1.0.0", False),
        ("2.0.0", "1.99.99", False),
        ("0.0.9", "0.1.0", True),
    ],
)
def test_update_needs_a_strictly_greater_semver(current: str, proposed: str, ok: bool) -> None:
    state = run(AGG.initial(), deploy(manifest(version=current)))
    decision = AGG.handle(state, update(manifest(version=proposed)), CTX)
    if ok:
        assert isinstance(decision, list)
    else:
        assert rejected(decision) == ("conflict", "/manifest/version")


def test_update_of_an_absent_agent_is_not_found() -> None:
    decision = AGG.handle(AGG.initial(), update(manifest(version="2.0.0")), CTX)
    assert rejected(decision) == ("not_found", "/manifest/agent_name")


def test_update_of_a_retired_agent_is_a_conflict() -> None:
    state = run(deployed(), retire())
    decision = AGG.handle(state, update(manifest(version="2.0.0")), CTX)
    assert rejected(decision) == ("conflict", "/manifest/agent_name")


def test_update_runs_the_same_field_and_context_rules() -> None:
    state = deployed()
    over = update(manifest(version="2.0.0", quotas=quotas(timeout_ms=30_001)))
    assert rejected(AGG.handle(state, over, CTX)) == ("invalid", "/manifest/quotas/timeout_ms")
    unknown = update(manifest(version="2.0.0", models=["nope"]))
    assert rejected(AGG.handle(state, unknown, CTX)) == ("not_found", "/manifest/models/0")
    renamed = update(manifest(version="2.0.0"), name="other")
    assert rejected(AGG.handle(state, renamed, CTX)) == ("invalid", "/manifest/agent_name")


# --- retire -----------------------------------------------------------------------------------


def test_retire_emits_agent_retired_with_the_reason() -> None:
    decision = AGG.handle(deployed(), retire("replaced"), CTX)
    assert decision == [Event(agent.RETIRED, {"agent_name": "summarizer", "reason": "replaced"})]
    state = AGG.fold(deployed(), decision)
    assert (state.status, state.version, state.retired_reason) == ("retired", 2, "replaced")


def test_retire_reason_defaults_to_empty() -> None:
    decision = AGG.handle(deployed(), retire(), CTX)
    assert isinstance(decision, list)
    assert decision[0].payload["reason"] == ""


def test_retiring_twice_is_a_conflict() -> None:
    state = run(deployed(), retire())
    assert rejected(AGG.handle(state, retire(command_id="c2"), CTX)) == ("conflict", None)


def test_retiring_an_absent_agent_is_not_found() -> None:
    assert rejected(AGG.handle(AGG.initial(), retire(), CTX))[0] == "not_found"


# --- evolve, summary, load/dump ---------------------------------------------------------------


def test_summary_shapes() -> None:
    assert agent.summary(AGG.initial()) == {
        "status": "absent",
        "version": 0,
        "agent_version": None,
        "manifest": None,
    }
    state = run(AGG.initial(), deploy(manifest(input_schema="{}")))
    summary = agent.summary(state)
    assert (summary["status"], summary["version"], summary["agent_version"]) == (
        "deployed",
        1,
        "1.0.0",
    )
    assert summary["manifest"]["quotas"] == {
        "fuel": 1000,
        "memory_mb": 64,
        "timeout_ms": 5000,
        "max_concurrency": 1,
        "max_retries": 0,
        "retry_backoff_ms": 1000,
    }
    assert summary["manifest"]["module_digest"] == DIGEST
    assert summary["manifest"]["input_schema"] == "{}"
    retired = run(state, retire())
    assert agent.summary(retired)["status"] == "retired"
    assert agent.summary(retired)["agent_version"] == "1.0.0"


def test_deployment_rejected_and_unknown_events_change_nothing() -> None:
    state = deployed()
    verdict = Event(
        agent.DEPLOYMENT_REJECTED, {"agent_name": "summarizer", "reason": "policy", "field": None}
    )
    assert AGG.evolve(state, verdict) == state
    assert AGG.evolve(state, Event("aion.CommandRejected", {})) == state


def test_load_of_dump_is_identity() -> None:
    for state in (AGG.initial(), deployed(), run(deployed(), retire())):
        assert AGG.load(AGG.dump(state)) == state
    assert AGG.load(None) == AGG.initial()


def test_the_aggregate_is_tenant_scoped_and_handles_its_three_commands() -> None:
    assert AGG.name == "agent"
    assert AGG.tenant_scoped is True
    assert AGG.commands == {agent.DEPLOY, agent.UPDATE, agent.RETIRE}


# --- the records on the wire ------------------------------------------------------------------

EVENT_ENVELOPE = {
    "event_id": "e",
    "event_type": "t",
    "command_id": "c",
    "correlation_id": "c",
    "causation_id": "c",
    "tenant_id": "acme",
    "aggregate_type": "agent",
    "aggregate_id": "acme/summarizer",
    "aggregate_version": 1,
    "occurred_at": 1_700_000_000_000,
    "actor": "test",
    "traceparent": None,
    "tracestate": None,
}


def round_trip(name: str, payload: dict[str, Any]) -> dict[str, Any]:
    parsed = catalog.record(name).parsed
    buf = io.BytesIO()
    fastavro.schemaless_writer(buf, parsed, {"envelope": EVENT_ENVELOPE, **payload})
    buf.seek(0)
    back = fastavro.schemaless_reader(buf, parsed)
    back.pop("envelope")
    return back


def test_every_emitted_event_serialises_with_its_avro_schema() -> None:
    m = manifest(models=["gpt"], capabilities=["progress"], input_schema="{}", labels={"a": "b"})
    state = AGG.initial()
    for command in (deploy(m), update({**m, "version": "1.0.1"}), retire("old")):
        decision = AGG.handle(state, command, CTX)
        assert isinstance(decision, list)
        for event in decision:
            assert round_trip(event.type, event.payload) == event.payload
        state = AGG.fold(state, decision)
    verdict = {"agent_name": "summarizer", "reason": "denied", "field": "/manifest/quotas"}
    assert round_trip(agent.DEPLOYMENT_REJECTED, verdict) == verdict


def test_command_records_are_commands_and_the_manifest_is_a_shared_sub_record() -> None:
    for name in AGG.commands:
        assert catalog.record(name).is_command, name
    assert agent.MANIFEST not in catalog.all_records()  # a shared type, not a message
    raw = json.loads((catalog.AVRO_DIR / f"{agent.MANIFEST}.avsc").read_text())
    manifest_fields = [f["name"] for f in raw["fields"]]
    assert manifest_fields == list(agent.normalise_manifest(manifest()))
    inlined = catalog.record(agent.DEPLOY).schema["fields"][1]["type"]
    assert inlined["name"] == agent.MANIFEST
    assert [f["name"] for f in inlined["fields"]] == manifest_fields


# --- property: the decider's events are the state ---------------------------------------------

VERSIONS = st.sampled_from(["0.9.0", "1.0.0", "1.0.1", "1.1.0", "1.10.0", "2.0.0", "bad"])
STEP = st.one_of(
    st.tuples(
        st.sampled_from(["deploy", "update"]),
        VERSIONS,
        st.lists(st.sampled_from(["gpt", "embed", "ghost"]), max_size=2, unique=True),
        st.integers(min_value=-1, max_value=LIMITS["max_fuel"] + 1),
        st.one_of(st.none(), st.integers(min_value=0, max_value=4)),
    ),
    st.tuples(
        st.just("retire"),
        st.just(""),
        st.just([]),
        st.just(0),
        st.one_of(st.none(), st.integers(min_value=0, max_value=4)),
    ),
)


def semver(text: str) -> tuple[int, ...]:
    return tuple(int(x) for x in text.split("."))


@settings(max_examples=300, deadline=None)
@given(st.lists(STEP, max_size=15))
def test_folding_emitted_events_reproduces_the_stepwise_state(
    steps: list[tuple[str, str, list[str], int, int | None]],
) -> None:
    state = AGG.initial()
    emitted: list[Event] = []
    status, current = "absent", None  # an independent reference model
    for i, (kind, version, models, fuel, expected) in enumerate(steps):
        if kind == "retire":
            command = retire(command_id=f"c{i}", expected_version=expected)
        else:
            m = manifest(version=version, models=models, quotas=quotas(fuel=fuel))
            maker = deploy if kind == "deploy" else update
            command = maker(m, command_id=f"c{i}", expected_version=expected)
        decision = AGG.handle(state, command, CTX)

        if expected is not None and expected != len(emitted):
            assert rejected(decision)[0] == "version_conflict", i
        elif kind == "retire":
            want = {"absent": "not_found", "retired": "conflict"}.get(status)
            assert (rejected(decision)[0] if want else "ok") == (want or "ok"), i
            status = "retired" if not want else status
        elif version == "bad" or fuel < 1:
            assert rejected(decision)[0] == "invalid", i
        elif kind == "deploy" and status != "absent":
            assert rejected(decision) == ("already_exists", "/manifest/agent_name"), i
        elif kind == "update" and status != "deployed":
            assert rejected(decision)[0] == ("not_found" if status == "absent" else "conflict"), i
        elif "ghost" in models:
            assert rejected(decision)[0] == "not_found", i
        elif fuel > LIMITS["max_fuel"]:
            assert rejected(decision) == ("invalid", "/manifest/quotas/fuel"), i
        elif kind == "update" and current is not None and semver(version) <= semver(current):
            assert rejected(decision) == ("conflict", "/manifest/version"), i
        else:
            assert isinstance(decision, list), (i, decision)
            status, current = "deployed", version

        if kind == "update" and state.status == "retired":
            assert isinstance(decision, Rejection)  # a retired agent never accepts an update
        if isinstance(decision, list):
            emitted += decision
            state = AGG.fold(state, decision)
        assert AGG.load(AGG.dump(state)) == state

    assert AGG.fold(AGG.initial(), emitted) == state
    assert state.version == len(emitted)
    assert state.status == status
    assert agent.summary(state)["agent_version"] == current
    if status == "retired":
        assert emitted[-1].type == agent.RETIRED
    assert sum(e.type == agent.DEPLOYED for e in emitted) <= 1
    assert sum(e.type == agent.RETIRED for e in emitted) <= 1


def test_the_module_must_have_been_uploaded_to_the_agents_tenant() -> None:
    directory = {
        ("tenant", "acme"): tenant_summary(),
        ("model", "acme/gpt"): {"status": "registered", "version": 1, "kind": "llm"},
        ("module", f"other/{DIGEST}"): {"status": "stored", "size": 33},
    }
    ctx = Context(lookup=lambda t, i: directory.get((t, i)))
    decision = AGG.handle(AGG.initial(), deploy(manifest(models=["gpt"])), ctx)
    assert rejected(decision) == ("not_found", "/manifest/module_digest")
    directory[("module", f"acme/{DIGEST}")] = {"status": "stored", "size": 33}
    assert not isinstance(
        AGG.handle(AGG.initial(), deploy(manifest(models=["gpt"])), ctx), Rejection
    )
