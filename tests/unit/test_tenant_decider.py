"""The Tenant aggregate's decide/evolve, driven through the generic Aggregate wrapper."""

from __future__ import annotations

import re
import uuid
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from commands import tenant
from commands.aggregates import AGGREGATES, aggregate_for
from commands.model import EVENT_ID_NAMESPACE, Command, Event, Rejection, event_id

AGG = AGGREGATES["tenant"]


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
            {"tenant_id": "acme", "display_name": "Acme Corp", "labels": {"team": "a"}},
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
