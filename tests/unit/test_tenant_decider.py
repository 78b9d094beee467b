"""The Tenant aggregate's decide/evolve, driven through the generic Aggregate wrapper."""

from __future__ import annotations

import json
import re
import uuid
from typing import Any

import pytest
from fastavro.validation import validate
from hypothesis import given, settings
from hypothesis import strategies as st

from commands import tenant
from commands.aggregates import AGGREGATES, aggregate_for
from commands.model import EVENT_ID_NAMESPACE, Command, Event, Rejection, event_id
from schemas import catalog

AGG = AGGREGATES["tenant"]
DEFAULT_LIMITS = {
    "max_concurrent_tasks": 10,
    "tasks_per_minute": 600,
    "max_fuel": 10_000_000_000,
    "max_memory_mb": 256,
    "max_timeout_ms": 60_000,
    "max_module_bytes": 10_485_760,
}


def create(
    tenant_id: str = "acme",
    display_name: str = "Acme Corp",
    *,
    labels: dict[str, str] | None = None,
    expected_version: int | None = None,
    command_id: str = "cmd-1",
) -> Command:
    payload: dict[str, Any] = {"tenant_id": tenant_id, "display_name": display_name}
    if labels is not None:
        payload["labels"] = labels
    envelope = {"command_id": command_id, "expected_version": expected_version}
    return Command(tenant.CREATE, envelope, payload)


def created_state(tenant_id: str = "acme") -> tenant.TenantState:
    decision = AGG.handle(AGG.initial(), create(tenant_id))
    assert isinstance(decision, list)
    return AGG.fold(AGG.initial(), decision)


# --- decide ----------------------------------------------------------------------------------


def test_create_on_empty_state_emits_one_tenant_created_with_trimmed_name() -> None:
    decision = AGG.handle(AGG.initial(), create("acme", "  Acme Corp \t", labels={"team": "a"}))
    assert decision == [
        Event(
            "aion.tenant.TenantCreated",
            {
                "tenant_id": "acme",
                "display_name": "Acme Corp",
                "labels": {"team": "a"},
                "limits": DEFAULT_LIMITS,
            },
        )
    ]


def test_create_without_labels_emits_empty_labels() -> None:
    """labels has an Avro default of {}; the event must always carry the field."""
    decision = AGG.handle(AGG.initial(), create("acme"))
    assert isinstance(decision, list)
    assert decision[0].payload["labels"] == {}


def test_event_labels_are_a_copy_of_the_command_labels() -> None:
    labels = {"team": "a"}
    decision = AGG.handle(AGG.initial(), create(labels=labels))
    assert isinstance(decision, list)
    labels["team"] = "changed"
    assert decision[0].payload["labels"] == {"team": "a"}


def test_second_create_is_rejected_as_already_exists() -> None:
    state = created_state("acme")
    decision = AGG.handle(state, create("acme", "Again", command_id="cmd-2"))
    assert isinstance(decision, Rejection)
    assert (decision.code, decision.field) == ("already_exists", "/tenant_id")
    assert "acme" in decision.reason
    assert decision.type == "aion.CommandRejected"


@pytest.mark.parametrize(
    "tenant_id",
    [
        "ab",  # too short
        "a",
        "",
        "Acme",  # upper case
        "ACME",
        "-acme",  # leading dash
        "acme-",  # trailing dash
        "a" * 64,  # one too long
        "acme_corp",  # underscore
        "acme corp",
        "acmé",
    ],
)
def test_invalid_tenant_ids_are_rejected(tenant_id: str) -> None:
    decision = AGG.handle(AGG.initial(), create(tenant_id))
    assert isinstance(decision, Rejection)
    assert (decision.code, decision.field) == ("invalid", "/tenant_id")


@pytest.mark.parametrize("tenant_id", ["abc", "a1b", "0-9", "a" * 63, "my-tenant-01"])
def test_boundary_valid_tenant_ids_are_accepted(tenant_id: str) -> None:
    decision = AGG.handle(AGG.initial(), create(tenant_id))
    assert isinstance(decision, list)
    assert [e.payload["tenant_id"] for e in decision] == [tenant_id]


def test_tenant_id_with_trailing_newline_is_rejected() -> None:
    decision = AGG.handle(AGG.initial(), create("acme\n"))
    assert isinstance(decision, Rejection)
    assert (decision.code, decision.field) == ("invalid", "/tenant_id")


@pytest.mark.parametrize("display_name", ["", "   ", "\t\n"])
def test_blank_display_name_is_rejected(display_name: str) -> None:
    decision = AGG.handle(AGG.initial(), create("acme", display_name))
    assert isinstance(decision, Rejection)
    assert (decision.code, decision.field) == ("invalid", "/display_name")


def test_invalid_id_is_reported_before_blank_name() -> None:
    decision = AGG.handle(AGG.initial(), create("X", ""))
    assert isinstance(decision, Rejection)
    assert decision.field == "/tenant_id"


@pytest.mark.parametrize("expected", [1, 5])
def test_expected_version_mismatch_on_empty_state_is_a_version_conflict(expected: int) -> None:
    decision = AGG.handle(AGG.initial(), create(expected_version=expected))
    assert isinstance(decision, Rejection)
    assert decision.code == "version_conflict"
    assert f"expected version {expected}" in decision.reason
    assert "version 0" in decision.reason


def test_expected_version_mismatch_wins_over_already_exists() -> None:
    """Concurrency is checked before the decider: a stale If-Match is a conflict, not 'exists'."""
    decision = AGG.handle(created_state(), create(expected_version=0))
    assert isinstance(decision, Rejection)
    assert decision.code == "version_conflict"


def test_matching_expected_version_is_accepted() -> None:
    decision = AGG.handle(AGG.initial(), create(expected_version=0))
    assert isinstance(decision, list)
    assert len(decision) == 1


def test_unsupported_command_type_is_rejected() -> None:
    command = Command("aion.tenant.DeleteTenant", {"command_id": "c"}, {"tenant_id": "acme"})
    decision = AGG.handle(created_state(), command)
    assert isinstance(decision, Rejection)
    assert decision.code == "unsupported"
    assert "aion.tenant.DeleteTenant" in decision.reason


def test_aggregate_for_routes_create_tenant_and_refuses_unknown() -> None:
    assert aggregate_for(tenant.CREATE) is AGG
    with pytest.raises(KeyError, match=re.escape("no aggregate handles aion.nope.Nope")):
        aggregate_for("aion.nope.Nope")


# --- evolve, load, dump ----------------------------------------------------------------------


def test_version_rises_by_exactly_one_per_event() -> None:
    event = Event(
        tenant.CREATED, {"tenant_id": "acme", "display_name": "Acme", "labels": {"k": "v"}}
    )
    one = AGG.fold(AGG.initial(), [event])
    two = AGG.fold(one, [event])
    assert (AGG.initial().version, one.version, two.version) == (0, 1, 2)
    assert one == tenant.TenantState(
        version=1, tenant_id="acme", display_name="Acme", status="active", labels={"k": "v"}
    )
    assert one.exists is True
    assert AGG.initial().exists is False


def test_unknown_event_leaves_state_and_version_unchanged() -> None:
    state = created_state()
    assert AGG.evolve(state, Event("aion.CommandRejected", {"code": "invalid"})) == state


def test_load_of_dump_is_identity() -> None:
    state = AGG.fold(
        AGG.initial(),
        [Event(tenant.CREATED, {"tenant_id": "acme", "display_name": "A", "labels": {"x": "1"}})],
    )
    document = AGG.dump(state)
    assert document == {
        "version": 1,
        "tenant_id": "acme",
        "display_name": "A",
        "status": "active",
        "labels": {"x": "1"},
        "limits": DEFAULT_LIMITS,
        "users": {},
        "suspension_reason": None,
    }
    assert AGG.load(document) == state
    assert AGG.load(AGG.dump(AGG.initial())) == AGG.initial()


@pytest.mark.parametrize("document", [None, {}])
def test_load_of_nothing_is_the_initial_state(document: dict[str, Any] | None) -> None:
    assert AGG.load(document) == tenant.TenantState()


# --- property: the decider's events are the state ---------------------------------------------

VALID_ID = st.from_regex(re.compile(r"[a-z0-9][a-z0-9-]{1,61}[a-z0-9]"), fullmatch=True)
ANY_ID = st.one_of(
    VALID_ID,
    st.sampled_from(["acme", "beta", "Acme", "-x-", "a_b", "ab", "a" * 64, ""]),
    st.text(alphabet="abcAB-_ 09", max_size=70),
)
NAME = st.one_of(st.text(max_size=20), st.sampled_from(["", "  ", "Acme", " Acme "]))
COMMANDS = st.lists(
    st.tuples(ANY_ID, NAME, st.one_of(st.none(), st.integers(min_value=0, max_value=3))),
    max_size=12,
)
VALID_FULL = re.compile(r"[a-z0-9][a-z0-9-]{1,61}[a-z0-9]")


@settings(max_examples=200, deadline=None)
@given(COMMANDS)
def test_folding_emitted_events_reproduces_the_stepwise_state(
    steps: list[tuple[str, str, int | None]],
) -> None:
    state = AGG.initial()
    emitted: list[Event] = []
    model_created: tuple[str, str] | None = None  # an independent reference model
    for i, (tenant_id, name, expected) in enumerate(steps):
        decision = AGG.handle(state, create(tenant_id, name, expected_version=expected))
        model_version = 1 if model_created else 0
        if expected is not None and expected != model_version:
            assert isinstance(decision, Rejection)
            assert decision.code == "version_conflict", i
        elif not VALID_FULL.fullmatch(tenant_id) or not name.strip():
            assert isinstance(decision, Rejection)
            assert decision.code == "invalid", i
        elif model_created:
            assert isinstance(decision, Rejection)
            assert decision.code == "already_exists", i
        else:
            assert isinstance(decision, list), i
            model_created = (tenant_id, name.strip())
        if isinstance(decision, list):
            emitted += decision
            state = AGG.fold(state, decision)
        assert AGG.load(AGG.dump(state)) == state

    assert AGG.fold(AGG.initial(), emitted) == state
    assert state.version == len(emitted)
    assert sum(e.type == tenant.CREATED for e in emitted) <= 1
    if model_created is None:
        assert state == AGG.initial()
    else:
        assert (state.tenant_id, state.display_name, state.status) == (*model_created, "active")


# --- event ids -------------------------------------------------------------------------------


def test_event_id_is_deterministic_per_command_and_index() -> None:
    assert event_id("cmd-1", 0) == event_id("cmd-1", 0)
    assert event_id("cmd-1", 0) != event_id("cmd-1", 1)
    assert event_id("cmd-1", 0) != event_id("cmd-2", 0)
    parsed = uuid.UUID(event_id("cmd-1", 0))
    assert parsed.version == 5


def test_event_id_namespace_is_stable() -> None:
    """Changing the namespace would give a retried command new ids across an upgrade."""
    assert str(EVENT_ID_NAMESPACE) == "6f1d7c1e-5b9a-4f0e-9c55-2f8f5a3c9e10"
    assert event_id("cmd-1", 0) == str(uuid.uuid5(EVENT_ID_NAMESPACE, "cmd-1/0"))


def test_command_accessors() -> None:
    command = create(expected_version=3, command_id="abc")
    assert (command.command_id, command.expected_version) == ("abc", 3)
    assert Command(tenant.CREATE, {"command_id": 7}, {}).expected_version is None
    assert Command(tenant.CREATE, {"command_id": 7}, {}).command_id == "7"


# === limits, suspension, users ===============================================================

ACME_EVENT_ENVELOPE = {
    "event_id": "e",
    "event_type": "t",
    "command_id": "c",
    "correlation_id": "c",
    "causation_id": "c",
    "tenant_id": "acme",
    "aggregate_type": "tenant",
    "aggregate_id": "acme",
    "aggregate_version": 1,
    "occurred_at": 0,
    "actor": "test",
    "traceparent": None,
    "tracestate": None,
}


def assert_fits_its_avro_record(event: Event) -> None:
    """The event's payload plus an envelope is a valid value of its Avro record."""
    rec = catalog.record(event.type)
    assert rec.is_event
    assert set(event.payload) == {f["name"] for f in rec.payload_fields}, event.type
    validate({"envelope": ACME_EVENT_ENVELOPE, **event.payload}, rec.parsed, raise_errors=True)


def cmd(
    type_: str,
    payload: dict[str, Any] | None = None,
    *,
    expected_version: int | None = None,
    command_id: str = "cmd",
) -> Command:
    envelope = {
        "command_id": command_id,
        "tenant_id": "acme",
        "aggregate_id": "acme",
        "expected_version": expected_version,
    }
    return Command(type_, envelope, payload or {})


def add_user(user_id: str, *roles: str, display_name: str = "Ann") -> Command:
    return cmd(
        tenant.ADD_USER, {"user_id": user_id, "display_name": display_name, "roles": list(roles)}
    )


def assign(user_id: str, *roles: str) -> Command:
    return cmd(tenant.ASSIGN_ROLE, {"user_id": user_id, "roles": list(roles)})


def remove(user_id: str) -> Command:
    return cmd(tenant.REMOVE_USER, {"user_id": user_id})


SUSPEND = cmd(tenant.SUSPEND, {"reason": "unpaid invoice"})
REINSTATE = cmd(tenant.REINSTATE)


def accept(state: tenant.TenantState, *commands: Command) -> tenant.TenantState:
    """Apply commands that must all be accepted."""
    for command in commands:
        decision = AGG.handle(state, command)
        assert isinstance(decision, list), decision
        for event in decision:
            assert_fits_its_avro_record(event)
        state = AGG.fold(state, decision)
    return state


def refused(state: tenant.TenantState, command: Command) -> tuple[str, str | None]:
    decision = AGG.handle(state, command)
    assert isinstance(decision, Rejection), decision
    return decision.code, decision.field


def test_default_limits_equal_the_avro_defaults() -> None:
    for name in (tenant.CREATE, tenant.CREATED):
        (limits,) = [f for f in catalog.record(name).payload_fields if f["name"] == "limits"]
        assert limits["default"] == DEFAULT_LIMITS
        assert {f["name"]: f["default"] for f in limits["type"]["fields"]} == DEFAULT_LIMITS
    assert tenant.default_limits() == DEFAULT_LIMITS
    assert tenant.TenantState().limits == DEFAULT_LIMITS


def test_given_limits_override_the_defaults_one_by_one() -> None:
    decision = AGG.handle(AGG.initial(), _create_with_limits({"max_fuel": 5}))
    assert isinstance(decision, list)
    assert decision[0].payload["limits"] == {**DEFAULT_LIMITS, "max_fuel": 5}
    assert_fits_its_avro_record(decision[0])
    assert AGG.fold(AGG.initial(), decision).limits == {**DEFAULT_LIMITS, "max_fuel": 5}


def _create_with_limits(limits: Any) -> Command:
    return cmd(tenant.CREATE, {"tenant_id": "acme", "display_name": "Acme", "limits": limits})


@pytest.mark.parametrize(
    ("limits", "field"),
    [
        ({"max_fuel": 0}, "/limits/max_fuel"),
        ({"max_memory_mb": -1}, "/limits/max_memory_mb"),
        ({"max_timeout_ms": True}, "/limits/max_timeout_ms"),
        ({"tasks_per_minute": 2**31}, "/limits/tasks_per_minute"),  # beyond Avro int
        ({"max_module_bytes": 2**63}, "/limits/max_module_bytes"),  # beyond Avro long
        ({"max_concurrent_tasks": "10"}, "/limits/max_concurrent_tasks"),
        ({"max_gpus": 1}, "/limits/max_gpus"),
        ([1, 2], "/limits"),
    ],
)
def test_invalid_limits_are_rejected(limits: Any, field: str) -> None:
    assert refused(AGG.initial(), _create_with_limits(limits)) == ("invalid", field)
    rejection = tenant.check_create({"tenant_id": "acme", "display_name": "A", "limits": limits})
    assert rejection is not None and rejection.field == field  # the API's own check agrees


def test_largest_limits_are_accepted() -> None:
    limits = {"max_fuel": 2**63 - 1, "max_memory_mb": 2**31 - 1}
    state = accept(AGG.initial(), _create_with_limits(limits))
    assert state.limits == {**DEFAULT_LIMITS, **limits}


def test_a_v1_tenant_created_without_limits_gets_the_default_limits() -> None:
    state = AGG.fold(
        AGG.initial(), [Event(tenant.CREATED, {"tenant_id": "acme", "display_name": "A"})]
    )
    assert (state.limits, state.labels, state.status) == (DEFAULT_LIMITS, {}, "active")


def test_suspend_then_reinstate() -> None:
    state = created_state()
    decision = AGG.handle(state, cmd(tenant.SUSPEND, {"reason": "  unpaid \n"}))
    assert decision == [Event(tenant.SUSPENDED, {"tenant_id": "acme", "reason": "unpaid"})]
    state = accept(state, cmd(tenant.SUSPEND, {"reason": "unpaid"}))
    assert (state.status, state.suspension_reason, state.version) == ("suspended", "unpaid", 2)
    assert tenant.summary(state)["status"] == "suspended"
    assert AGG.handle(state, REINSTATE) == [Event(tenant.REINSTATED, {"tenant_id": "acme"})]
    state = accept(state, REINSTATE)
    assert (state.status, state.suspension_reason, state.version) == ("active", None, 3)
    assert accept(state, add_user("ann", "admin")).users == {
        "ann": {"display_name": "Ann", "roles": ["admin"]}
    }


@pytest.mark.parametrize("reason", ["", "  ", None, 3])
def test_suspension_needs_a_reason(reason: Any) -> None:
    assert refused(created_state(), cmd(tenant.SUSPEND, {"reason": reason})) == (
        "invalid",
        "/reason",
    )


def test_suspending_a_suspended_tenant_is_a_conflict() -> None:
    state = accept(created_state(), SUSPEND)
    assert refused(state, SUSPEND) == ("conflict", "tenant_id")


def test_reinstating_an_active_tenant_is_a_conflict() -> None:
    assert refused(created_state(), REINSTATE) == ("conflict", "tenant_id")


@pytest.mark.parametrize(
    "command",
    [
        create("acme"),
        create("other"),
        add_user("bob", "viewer"),
        assign("ann", "viewer", "admin"),
        remove("ann"),
        cmd(tenant.ADD_USER, {}),  # the standing is checked before the fields
    ],
    ids=lambda c: c.type,
)
def test_a_suspended_tenant_refuses_every_command_but_reinstatement(command: Command) -> None:
    state = accept(created_state(), add_user("ann", "admin"), SUSPEND)
    assert refused(state, command) == ("suspended", "tenant_id")


@pytest.mark.parametrize(
    "command",
    [SUSPEND, REINSTATE, add_user("ann", "admin"), assign("ann", "admin"), remove("ann")],
    ids=lambda c: c.type,
)
def test_commands_on_an_absent_tenant_are_not_found(command: Command) -> None:
    assert refused(AGG.initial(), command) == ("not_found", "tenant_id")


def test_add_user_emits_user_added_with_the_ids() -> None:
    decision = AGG.handle(
        created_state(), add_user("auth0|42", "developer", "viewer", display_name=" Bo ")
    )
    assert decision == [
        Event(
            tenant.USER_ADDED,
            {
                "tenant_id": "acme",
                "user_id": "auth0|42",
                "display_name": "Bo",
                "roles": ["developer", "viewer"],
            },
        )
    ]


def test_user_ids_are_unique() -> None:
    state = accept(created_state(), add_user("ann", "admin"))
    assert refused(state, add_user("ann", "viewer")) == ("already_exists", "/user_id")


@pytest.mark.parametrize("user_id", ["", "a b", "a/b", " ann", "x" * 256, None, 7])
def test_invalid_user_ids_are_rejected(user_id: Any) -> None:
    command = cmd(tenant.ADD_USER, {"user_id": user_id, "display_name": "A", "roles": ["viewer"]})
    assert refused(created_state(), command) == ("invalid", "/user_id")


def test_blank_user_display_name_is_rejected() -> None:
    assert refused(created_state(), add_user("ann", "admin", display_name=" ")) == (
        "invalid",
        "/display_name",
    )


@pytest.mark.parametrize(
    ("roles", "field"),
    [
        ([], "/roles"),
        (["admin", "root"], "/roles/1"),
        (["viewer", "admin", "viewer"], "/roles/2"),
        (["Admin"], "/roles/0"),
    ],
)
def test_roles_must_be_known_non_empty_and_unique(roles: list[str], field: str) -> None:
    state = accept(created_state(), add_user("ann", "admin"))
    assert refused(state, add_user("bob", *roles)) == ("invalid", field)
    assert refused(state, assign("ann", *roles)) == ("invalid", field)


def test_assign_role_replaces_the_roles() -> None:
    state = accept(created_state(), add_user("ann", "admin"), add_user("bob", "viewer"))
    decision = AGG.handle(state, assign("bob", "operator", "developer"))
    assert decision == [
        Event(
            tenant.ROLES_ASSIGNED,
            {"tenant_id": "acme", "user_id": "bob", "roles": ["operator", "developer"]},
        )
    ]
    state = accept(state, assign("bob", "operator", "developer"))
    assert state.users["bob"] == {"display_name": "Ann", "roles": ["operator", "developer"]}


def test_assigning_or_removing_an_unknown_user_is_not_found() -> None:
    state = accept(created_state(), add_user("ann", "admin"))
    assert refused(state, assign("bob", "viewer")) == ("not_found", "/user_id")
    assert refused(state, remove("bob")) == ("not_found", "/user_id")


def test_the_last_admin_cannot_lose_admin_or_leave() -> None:
    state = accept(created_state(), add_user("ann", "admin", "viewer"), add_user("bob", "viewer"))
    assert refused(state, assign("ann", "viewer")) == ("conflict", "/roles")
    assert refused(state, remove("ann")) == ("conflict", "/user_id")
    assert accept(state, assign("ann", "viewer", "admin")).users["ann"]["roles"] == [
        "viewer",
        "admin",
    ]
    # With a second admin, either may step down or leave.
    state = accept(state, assign("bob", "admin"))
    assert accept(state, assign("ann", "viewer")).users["ann"]["roles"] == ["viewer"]
    assert "ann" not in accept(state, remove("ann")).users


def test_without_any_admin_users_may_be_removed_freely() -> None:
    state = accept(created_state(), add_user("bob", "viewer"), add_user("cy", "viewer"))
    decision = AGG.handle(state, remove("bob"))
    assert decision == [Event(tenant.USER_REMOVED, {"tenant_id": "acme", "user_id": "bob"})]
    assert list(accept(state, remove("bob")).users) == ["cy"]


def test_the_last_member_cannot_leave() -> None:
    """Issue 17, finding 12: a tenant that records members accepts only them at the API; an
    empty record would hand the tenant back to the identity provider's claims, and a removed
    user's token would work again."""
    state = accept(created_state(), add_user("bob", "viewer"), add_user("cy", "viewer"))
    state = accept(state, remove("bob"))
    assert refused(state, remove("cy")) == ("conflict", "/user_id")


def test_summary_shape() -> None:
    assert tenant.summary(AGG.initial()) == {
        "status": "absent",
        "version": 0,
        "limits": DEFAULT_LIMITS,
        "users": {},
    }
    state = accept(
        created_state(), add_user("ann", "admin"), add_user("bob", "viewer", "developer")
    )
    assert AGG.summary(state) == {
        "status": "active",
        "version": 3,
        "limits": DEFAULT_LIMITS,
        "users": {"ann": ["admin"], "bob": ["viewer", "developer"]},
    }


def test_summary_and_state_do_not_share_mutable_values() -> None:
    state = accept(created_state(), add_user("ann", "admin"))
    seen = tenant.summary(state)
    seen["users"]["ann"].append("viewer")
    seen["limits"]["max_fuel"] = 1
    assert state.users["ann"]["roles"] == ["admin"]
    assert state.limits == DEFAULT_LIMITS


def test_load_of_dump_is_identity_with_users_and_suspension() -> None:
    state = accept(created_state(), add_user("ann", "admin"), SUSPEND)
    assert AGG.load(json_round_trip(AGG.dump(state))) == state


def json_round_trip(document: dict[str, Any]) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(json.dumps(document))
    return loaded


def test_every_tenant_command_is_routed_and_has_a_command_record() -> None:
    names = {n for n in catalog.all_records() if n.startswith("aion.tenant.")}
    assert AGG.commands == {n for n in names if catalog.record(n).is_command}
    assert {n for n in names if catalog.record(n).is_event} == tenant.EVENTS
    for command in AGG.commands:
        assert aggregate_for(command) is AGG
    assert tenant.aggregate is AGG
    assert AGG.tenant_scoped is False


# --- property: random command sequences --------------------------------------------------------

USERS = st.sampled_from(["ann", "bob", "ann", "bob", "ann", "bob", "bad id"])
VALID_ROLES = st.lists(st.sampled_from(tenant.ROLES), min_size=1, max_size=3, unique=True)
ROLE_LISTS = st.one_of(
    VALID_ROLES,
    VALID_ROLES,
    VALID_ROLES,
    st.lists(st.sampled_from([*tenant.ROLES, "root"]), max_size=3),  # empty, unknown, twice
)
USER_STEPS = st.one_of(
    st.builds(lambda u, rs: add_user(u, *rs), USERS, ROLE_LISTS),
    st.builds(lambda u, rs: add_user(u, *rs), USERS, ROLE_LISTS),
    st.builds(lambda u, rs: assign(u, *rs), USERS, ROLE_LISTS),
    st.builds(remove, USERS),
)
STEP = st.one_of(
    USER_STEPS,
    USER_STEPS,
    USER_STEPS,
    USER_STEPS,
    st.builds(
        lambda tid, name: create(tid, name),
        st.sampled_from(["acme", "Bad"]),
        st.sampled_from(["Acme", " "]),
    ),
    st.builds(lambda r: cmd(tenant.SUSPEND, {"reason": r}), st.sampled_from(["why", " "])),
    st.just(REINSTATE),
)
EXPECTED = st.one_of(st.none(), st.none(), st.integers(min_value=0, max_value=8))
SEQUENCES = st.tuples(
    # Mostly start with a valid create, to reach the interesting states often.
    st.sampled_from([True, True, True, False]),
    st.lists(st.tuples(STEP, EXPECTED), min_size=4, max_size=30),
)
EXPECTED_EVENT = {
    tenant.CREATE: tenant.CREATED,
    tenant.SUSPEND: tenant.SUSPENDED,
    tenant.REINSTATE: tenant.REINSTATED,
    tenant.ADD_USER: tenant.USER_ADDED,
    tenant.ASSIGN_ROLE: tenant.ROLES_ASSIGNED,
    tenant.REMOVE_USER: tenant.USER_REMOVED,
}


def check_invariants(state: tenant.TenantState) -> None:
    assert state.status in ("absent", "active", "suspended")
    if state.status == "absent":
        assert state == AGG.initial()
    assert (state.suspension_reason is not None) == (state.status == "suspended")
    for user in state.users.values():
        roles = user["roles"]
        assert roles, "a user always has a role"
        assert len(set(roles)) == len(roles), "no role twice"
        assert set(roles) <= set(tenant.ROLES)
    assert set(state.limits) == set(DEFAULT_LIMITS)
    assert AGG.load(json_round_trip(AGG.dump(state))) == state


@settings(max_examples=300, deadline=None)
@given(SEQUENCES)
def test_random_command_sequences_keep_the_invariants(
    sequence: tuple[bool, list[tuple[Command, int | None]]],
) -> None:
    start, steps = sequence
    commands = [(create("acme", "Acme"), None)] if start else []
    state = AGG.initial()
    emitted: list[Event] = []
    for i, (step, expected) in enumerate([*commands, *steps]):
        command = Command(step.type, {**step.envelope, "expected_version": expected}, step.payload)
        decision = AGG.handle(state, command)
        if expected is not None and expected != state.version:
            assert isinstance(decision, Rejection) and decision.code == "version_conflict", i
        elif state.status == "suspended" and command.type not in (tenant.REINSTATE, tenant.SUSPEND):
            # A suspended tenant's state only changes by reinstatement.
            assert isinstance(decision, Rejection) and decision.code == "suspended", i
        elif state.status == "absent" and command.type != tenant.CREATE:
            assert isinstance(decision, Rejection) and decision.code == "not_found", i
        if isinstance(decision, Rejection):
            assert decision.code in (
                "already_exists",
                "not_found",
                "invalid",
                "version_conflict",
                "suspended",
                "conflict",
            )
            continue
        assert [e.type for e in decision] == [EXPECTED_EVENT[command.type]], i
        for event in decision:
            assert_fits_its_avro_record(event)
        had_admin = bool(state.admins())
        was_suspended = state.status == "suspended"
        state = AGG.fold(state, decision)
        emitted += decision
        check_invariants(state)
        if had_admin:
            assert state.admins(), "the last admin never goes"
        if was_suspended:
            assert command.type == tenant.REINSTATE and state.status == "active"

    assert AGG.fold(AGG.initial(), emitted) == state
    assert state.version == len(emitted)
    assert sum(e.type == tenant.CREATED for e in emitted) == (0 if state == AGG.initial() else 1)
