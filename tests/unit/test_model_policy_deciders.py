"""The Model and Policy aggregates' deciders, driven through the generic Aggregate wrapper."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import pytest
from fastavro.validation import validate
from hypothesis import given, settings
from hypothesis import strategies as st

from commands import model_registry, policy
from commands.aggregate import Aggregate
from commands.model import Command, Context, Event, Rejection, scoped_id
from schemas import catalog

MODELS = model_registry.aggregate
POLICIES = policy.aggregate
CEDAR = 'permit(principal, action == Action::"SubmitTask", resource);'


def tenant_context(status: str = "active", tenant_id: str = "acme") -> Context:
    """A directory where the one tenant has the given standing (absent: not listed)."""

    def lookup(aggregate_type: str, aggregate_id: str) -> Mapping[str, Any] | None:
        if aggregate_type == "tenant" and aggregate_id == tenant_id and status != "absent":
            return {"status": status, "version": 3, "limits": {}, "users": {}}
        return None

    return Context(lookup=lookup)


ACTIVE = tenant_context()


def command(
    type_: str,
    payload: dict[str, Any],
    aggregate_id: str | None,
    *,
    expected_version: int | None = None,
    tenant_id: str = "acme",
) -> Command:
    envelope = {
        "command_id": "cmd-1",
        "tenant_id": tenant_id,
        "aggregate_id": aggregate_id,
        "expected_version": expected_version,
    }
    return Command(type_, envelope, payload)


def assert_fits_its_avro_record(event: Event, aggregate: Aggregate) -> None:
    rec = catalog.record(event.type)
    assert rec.is_event
    assert set(event.payload) == {f["name"] for f in rec.payload_fields}, event.type
    envelope = {
        "event_id": "e",
        "event_type": event.type,
        "command_id": "c",
        "correlation_id": "c",
        "causation_id": "c",
        "tenant_id": "acme",
        "aggregate_type": aggregate.name,
        "aggregate_id": "acme/x",
        "aggregate_version": 1,
        "occurred_at": 0,
        "actor": "test",
        "traceparent": None,
        "tracestate": None,
    }
    validate({"envelope": envelope, **event.payload}, rec.parsed, raise_errors=True)


def rejected(decision: Any) -> tuple[str, str | None]:
    assert isinstance(decision, Rejection), decision
    return decision.code, decision.field


def round_trips(aggregate: Aggregate, state: Any) -> bool:
    return bool(aggregate.load(json.loads(json.dumps(aggregate.dump(state)))) == state)


# === Model ===================================================================================


def register(
    model_name: str = "gpt-4o",
    *,
    provider: str = "openai",
    kind: str = "chat",
    parameters: dict[str, Any] | None = None,
    description: str | None = None,
    aggregate_id: str | None = None,
    expected_version: int | None = None,
) -> Command:
    payload: dict[str, Any] = {"model_name": model_name, "provider": provider, "kind": kind}
    if parameters is not None:
        payload["parameters"] = parameters
    if description is not None:
        payload["description"] = description
    key = aggregate_id if aggregate_id is not None else scoped_id("acme", model_name)
    return command(model_registry.REGISTER, payload, key, expected_version=expected_version)


def registered(**kwargs: Any) -> model_registry.ModelState:
    decision = MODELS.handle(MODELS.initial(), register(**kwargs), ACTIVE)
    assert isinstance(decision, list), decision
    return MODELS.fold(MODELS.initial(), decision)


def test_register_model_emits_model_registered_with_defaults() -> None:
    decision = MODELS.handle(MODELS.initial(), register(), ACTIVE)
    assert decision == [
        Event(
            model_registry.REGISTERED,
            {
                "tenant_id": "acme",
                "model_name": "gpt-4o",
                "provider": "openai",
                "kind": "chat",
                "parameters": {},
                "description": "",
            },
        )
    ]
    assert_fits_its_avro_record(decision[0], MODELS)


def test_registered_state_and_summary() -> None:
    state = registered(
        model_name="bge.small_v1",
        kind="embedding",
        parameters={"dim": "384"},
        description="small",
    )
    assert state == model_registry.ModelState(
        version=1,
        status="registered",
        tenant_id="acme",
        model_name="bge.small_v1",
        provider="openai",
        kind="embedding",
        parameters={"dim": "384"},
        description="small",
    )
    assert MODELS.summary(state) == {"status": "registered", "version": 1, "kind": "embedding"}
    assert MODELS.summary(MODELS.initial()) == {"status": "absent", "version": 0, "kind": None}
    assert round_trips(MODELS, state)


def test_registering_an_existing_name_is_already_exists() -> None:
    decision = MODELS.handle(registered(), register(provider="azure"), ACTIVE)
    assert rejected(decision) == ("already_exists", "/model_name")


@pytest.mark.parametrize("name", ["", "GPT", "a b", "a/b", "x" * 64, "модель", "gpt:4"])
def test_invalid_model_names_are_rejected(name: str) -> None:
    decision = MODELS.handle(MODELS.initial(), register(name, aggregate_id="acme/x"), ACTIVE)
    assert rejected(decision) == ("invalid", "/model_name")


@pytest.mark.parametrize("name", ["a", "x" * 63, "llama-3.1_8b", "0", "..", "-"])
def test_boundary_model_names_are_accepted(name: str) -> None:
    assert registered(model_name=name).model_name == name


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"provider": " "}, "/provider"),
        ({"kind": "vision"}, "/kind"),
        ({"parameters": {"t": 0.5}}, "/parameters/t"),
        ({"parameters": ["t"]}, "/parameters"),
    ],
)
def test_invalid_model_fields_are_rejected(kwargs: dict[str, Any], field: str) -> None:
    decision = MODELS.handle(MODELS.initial(), register(**kwargs), ACTIVE)
    assert rejected(decision) == ("invalid", field)


def test_model_name_must_match_the_aggregate_id() -> None:
    decision = MODELS.handle(MODELS.initial(), register(aggregate_id="acme/other"), ACTIVE)
    assert rejected(decision) == ("invalid", "/model_name")
    wrong_tenant = register(aggregate_id=scoped_id("beta", "gpt-4o"))
    assert rejected(MODELS.handle(MODELS.initial(), wrong_tenant, ACTIVE)) == (
        "invalid",
        "/model_name",
    )


@pytest.mark.parametrize(("status", "code"), [("absent", "not_found"), ("suspended", "suspended")])
def test_models_need_an_active_tenant(status: str, code: str) -> None:
    decision = MODELS.handle(MODELS.initial(), register(), tenant_context(status))
    assert rejected(decision)[0] == code
    assert rejected(MODELS.handle(MODELS.initial(), register()))[0] == "not_found"  # no context


def test_model_version_conflict_comes_first() -> None:
    decision = MODELS.handle(registered(), register(expected_version=0), tenant_context("absent"))
    assert rejected(decision)[0] == "version_conflict"


# === Policy ==================================================================================


def put(
    policy_id: str = "read-only",
    cedar: Any = CEDAR,
    *,
    description: str | None = None,
    aggregate_id: str | None = None,
    expected_version: int | None = None,
) -> Command:
    payload: dict[str, Any] = {"policy_id": policy_id, "cedar": cedar}
    if description is not None:
        payload["description"] = description
    key = aggregate_id if aggregate_id is not None else scoped_id("acme", policy_id)
    return command(policy.PUT, payload, key, expected_version=expected_version)


def delete(
    policy_id: str = "read-only",
    *,
    aggregate_id: str | None = None,
    expected_version: int | None = None,
) -> Command:
    key = aggregate_id if aggregate_id is not None else scoped_id("acme", policy_id)
    return command(policy.DELETE, {"policy_id": policy_id}, key, expected_version=expected_version)


def run(state: policy.PolicyState, *commands: Command) -> policy.PolicyState:
    for c in commands:
        decision = POLICIES.handle(state, c, ACTIVE)
        assert isinstance(decision, list), decision
        for event in decision:
            assert_fits_its_avro_record(event, POLICIES)
        state = POLICIES.fold(state, decision)
    return state


def test_put_policy_emits_policy_put_with_the_next_version() -> None:
    decision = POLICIES.handle(POLICIES.initial(), put(description="d"), ACTIVE)
    assert decision == [
        Event(
            policy.PUT_DONE,
            {
                "tenant_id": "acme",
                "policy_id": "read-only",
                "cedar": CEDAR,
                "description": "d",
                "policy_version": 1,
            },
        )
    ]
    state = run(POLICIES.initial(), put())
    assert state == policy.PolicyState(
        version=1, status="active", tenant_id="acme", policy_id="read-only", cedar=CEDAR
    )
    assert POLICIES.summary(state) == {"status": "active", "version": 1}
    assert POLICIES.summary(POLICIES.initial()) == {"status": "absent", "version": 0}


def test_put_replaces_the_policy_and_the_version_rises_by_one() -> None:
    state = run(POLICIES.initial(), put())
    decision = POLICIES.handle(state, put(cedar="forbid(principal, action, resource);"), ACTIVE)
    assert isinstance(decision, list)
    assert decision[0].payload["policy_version"] == 2
    state = POLICIES.fold(state, decision)
    assert (state.version, state.cedar) == (2, "forbid(principal, action, resource);")


def test_delete_then_put_re_creates_the_policy() -> None:
    state = run(POLICIES.initial(), put())
    assert POLICIES.handle(state, delete(), ACTIVE) == [
        Event(policy.DELETED, {"tenant_id": "acme", "policy_id": "read-only"})
    ]
    state = run(state, delete())
    assert POLICIES.summary(state) == {"status": "deleted", "version": 2}
    assert round_trips(POLICIES, state)
    state = run(state, put(description="again"))
    assert POLICIES.summary(state) == {"status": "active", "version": 3}
    assert state.description == "again"


def test_deleting_an_absent_or_deleted_policy_is_not_found() -> None:
    assert rejected(POLICIES.handle(POLICIES.initial(), delete(), ACTIVE)) == (
        "not_found",
        "/policy_id",
    )
    deleted = run(POLICIES.initial(), put(), delete())
    assert rejected(POLICIES.handle(deleted, delete(), ACTIVE)) == ("not_found", "/policy_id")


@pytest.mark.parametrize("cedar", ["", "  \n\t", None, 42])
def test_blank_cedar_is_rejected(cedar: Any) -> None:
    assert rejected(POLICIES.handle(POLICIES.initial(), put(cedar=cedar), ACTIVE)) == (
        "invalid",
        "/cedar",
    )


@pytest.mark.parametrize(
    ("cedar", "message"),
    [
        ("not cedar at all", "parse error"),
        ('permit(principal, action == Action::"Fly", resource);', "Fly"),
        (
            'permit(principal, action == Action::"SubmitTask", resource) '
            "when { resource.nope > 1 };",
            "attribute `nope` on entity type `Task` not found",
        ),
    ],
)
def test_cedar_is_validated_against_our_schema(cedar: str, message: str) -> None:
    """The validator's own message reaches the caller, naming /cedar."""
    decision = POLICIES.handle(POLICIES.initial(), put(cedar=cedar), ACTIVE)
    assert isinstance(decision, Rejection)
    assert (decision.code, decision.field) == ("invalid", "/cedar")
    assert message in decision.reason


def test_a_policy_on_our_attributes_is_valid() -> None:
    cedar = (
        'forbid(principal, action == Action::"DeployAgent", resource) '
        "when { resource.fuel > 1000000 };"
    )
    assert run(POLICIES.initial(), put(cedar=cedar)).cedar == cedar


@pytest.mark.parametrize("policy_id", ["", "Read", "a.b", "a_b", "x" * 64, "a/b"])
def test_invalid_policy_ids_are_rejected(policy_id: str) -> None:
    for c in (put(policy_id, aggregate_id="acme/x"), delete(policy_id, aggregate_id="acme/x")):
        assert rejected(POLICIES.handle(POLICIES.initial(), c, ACTIVE)) == ("invalid", "/policy_id")


@pytest.mark.parametrize("policy_id", ["a", "-", "x" * 63, "p-1"])
def test_boundary_policy_ids_are_accepted(policy_id: str) -> None:
    assert run(POLICIES.initial(), put(policy_id)).policy_id == policy_id


def test_policy_id_must_match_the_aggregate_id() -> None:
    for c in (put(aggregate_id="acme/other"), delete(aggregate_id="beta/read-only")):
        assert rejected(POLICIES.handle(POLICIES.initial(), c, ACTIVE)) == ("invalid", "/policy_id")


@pytest.mark.parametrize(("status", "code"), [("absent", "not_found"), ("suspended", "suspended")])
def test_policies_need_an_active_tenant(status: str, code: str) -> None:
    active = run(POLICIES.initial(), put())
    for c in (put(), delete()):
        assert rejected(POLICIES.handle(active, c, tenant_context(status)))[0] == code


# === registry and routing ====================================================================


@pytest.mark.parametrize(
    ("module", "prefix", "name"),
    [(model_registry, "aion.model.", "model"), (policy, "aion.policy.", "policy")],
)
def test_commands_and_events_match_the_avro_records(module: Any, prefix: str, name: str) -> None:
    names = {n for n in catalog.all_records() if n.startswith(prefix)}
    aggregate = module.aggregate
    assert (aggregate.name, module.AGGREGATE, module.NAME) == (name, name, name)
    assert {n for n in names if catalog.record(n).is_command} == aggregate.commands
    assert {n for n in names if catalog.record(n).is_event} == module.EVENTS
    assert aggregate.tenant_scoped is True


def test_kinds_match_the_avro_enum() -> None:
    (kind,) = [
        f for f in catalog.record(model_registry.REGISTER).payload_fields if f["name"] == "kind"
    ]
    assert tuple(kind["type"]["symbols"]) == model_registry.KINDS


@pytest.mark.parametrize("aggregate", [MODELS, POLICIES], ids=lambda a: a.name)
def test_unsupported_commands_are_rejected(aggregate: Aggregate) -> None:
    c = command("aion.nope.Nope", {}, "acme/x")
    assert rejected(aggregate.handle(aggregate.initial(), c, ACTIVE))[0] == "unsupported"


@pytest.mark.parametrize("aggregate", [MODELS, POLICIES], ids=lambda a: a.name)
def test_unknown_events_leave_the_state_alone(aggregate: Aggregate) -> None:
    assert aggregate.evolve(aggregate.initial(), Event("aion.CommandRejected", {})) == (
        aggregate.initial()
    )
    assert aggregate.load(None) == aggregate.initial()


# === properties ==============================================================================

EXPECTED = st.one_of(st.none(), st.none(), st.integers(min_value=0, max_value=4))
TENANT = st.sampled_from(["active", "active", "active", "suspended", "absent"])

MODEL_STEP = st.tuples(
    st.sampled_from(["gpt-4o", "gpt-4o", "GPT", "llama"]),  # the aggregate is acme/gpt-4o
    st.sampled_from(["openai", " "]),
    st.sampled_from([*model_registry.KINDS, "vision"]),
    EXPECTED,
    TENANT,
)


@settings(max_examples=300, deadline=None)
@given(st.lists(MODEL_STEP, max_size=12))
def test_model_sequences_match_a_reference_model(
    steps: list[tuple[str, str, str, int | None, str]],
) -> None:
    state = MODELS.initial()
    emitted: list[Event] = []
    for i, (name, provider, kind, expected, standing) in enumerate(steps):
        c = register(
            name,
            provider=provider,
            kind=kind,
            aggregate_id=scoped_id("acme", "gpt-4o"),
            expected_version=expected,
        )
        decision = MODELS.handle(state, c, tenant_context(standing))
        version = 1 if emitted else 0
        if expected is not None and expected != version:
            want = "version_conflict"
        elif standing != "active":
            want = "not_found" if standing == "absent" else "suspended"
        elif name == "GPT" or provider == " " or kind == "vision" or name != "gpt-4o":
            want = "invalid"
        elif emitted:
            want = "already_exists"
        else:
            want = "accepted"
        if want == "accepted":
            assert isinstance(decision, list), (i, decision)
            assert [e.type for e in decision] == [model_registry.REGISTERED]
            assert_fits_its_avro_record(decision[0], MODELS)
            state = MODELS.fold(state, decision)
            emitted += decision
        else:
            assert rejected(decision)[0] == want, i
        assert round_trips(MODELS, state)

    assert MODELS.fold(MODELS.initial(), emitted) == state
    assert state.version == len(emitted) <= 1
    assert MODELS.summary(state)["status"] == ("registered" if emitted else "absent")


POLICY_STEP = st.tuples(
    st.sampled_from(["put", "put", "delete"]),
    st.sampled_from(["p1", "p1", "p1", "P1", "p2"]),  # the aggregate is acme/p1
    st.sampled_from([CEDAR, "", " "]),
    EXPECTED,
    TENANT,
)


@settings(max_examples=300, deadline=None)
@given(st.lists(POLICY_STEP, max_size=15))
def test_policy_sequences_match_a_reference_model(
    steps: list[tuple[str, str, str, int | None, str]],
) -> None:
    state = POLICIES.initial()
    emitted: list[Event] = []
    status = "absent"  # the reference model
    for i, (verb, policy_id, cedar, expected, standing) in enumerate(steps):
        key = scoped_id("acme", "p1")
        if verb == "put":
            c = put(policy_id, cedar, aggregate_id=key, expected_version=expected)
        else:
            c = delete(policy_id, aggregate_id=key, expected_version=expected)
        decision = POLICIES.handle(state, c, tenant_context(standing))
        if expected is not None and expected != len(emitted):
            want = "version_conflict"
        elif standing != "active":
            want = "not_found" if standing == "absent" else "suspended"
        elif policy_id != "p1" or (verb == "put" and not cedar.strip()):
            want = "invalid"
        elif verb == "delete" and status != "active":
            want = "not_found"
        else:
            want = "accepted"
        if want != "accepted":
            assert rejected(decision)[0] == want, i
            continue
        assert isinstance(decision, list), (i, decision)
        (event,) = decision
        assert_fits_its_avro_record(event, POLICIES)
        state = POLICIES.fold(state, decision)
        emitted.append(event)
        if verb == "put":
            status = "active"
            assert event.type == policy.PUT_DONE
            assert event.payload["policy_version"] == state.version
            assert state.cedar == cedar
        else:
            status = "deleted"
            assert event.type == policy.DELETED
        assert POLICIES.summary(state) == {"status": status, "version": len(emitted)}
        assert round_trips(POLICIES, state)

    assert POLICIES.fold(POLICIES.initial(), emitted) == state
    assert state.version == len(emitted)
    assert state.status == status
