"""The command processor: the single writer of every aggregate, and the task orchestrator.

For each command on ``aion.commands`` (keyed by tenant, so all of a tenant's aggregates have
one partition and one writer): plan it (``streams.plan``: decide, enforce, orchestrate),
produce the planned messages and wait for Kafka's acks, then store the changed documents.
Commands come in batches that share one wait for acks (``streams.group_commit``).

Why this order: messages are produced before the state is saved, so a crash in between replays
the command against the old state and yields the same messages with the same deterministic ids
(harmless duplicates that every consumer drops by event id or version, and the kernel by run
id). A command whose id is already in its document's recent list was handled and is skipped.

Each command is handled in a CONSUMER span that continues the trace its envelope carries, and
every message it produces carries that span's ``traceparent`` (envelope and header), so the
kernel and the projections continue the same trace (``aion.tracing``).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any, TypeVar

from faust.types import EventT
from opentelemetry import trace

from aion import metrics, telemetry, tracing
from commands.aggregates import aggregate_for
from commands.model import Command
from commands.task import ENFORCEMENT_DECIDED
from schemas.codec import DecodeError, RegistryUnavailable
from schemas.topics import COMMANDS
from streams import failpoints
from streams.app import StreamsApp
from streams.deadletter import send_to_deadletter
from streams.group_commit import BATCH_SIZE, BATCH_WAIT_SECONDS, GroupCommit, processing
from streams.module_facts import io_facts
from streams.plan import TICK, Emission, millis, plan_command

log = logging.getLogger(__name__)
tracer = trace.get_tracer("aion.streams")
REJECTED = "aion.CommandRejected"

T = TypeVar("T")


async def registry_retry(call: Callable[..., T], *args: Any) -> T:
    """Call, waiting out a registry outage: the partition stops, nothing is dead-lettered."""
    delay = 0.5
    while True:
        try:
            return call(*args)
        except RegistryUnavailable as exc:
            log.warning("schema registry unavailable (%s); retrying in %.1f s", exc, delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 10.0)


def register(streams: StreamsApp) -> None:
    app, table = streams.app, streams.aggregates

    @app.agent(streams.commands, name="command-processor")
    async def process(stream: Any) -> None:
        async for events in stream.take_events(BATCH_SIZE, within=BATCH_WAIT_SECONDS):
            await handle_batch(streams, table, events)


async def handle_batch(streams: StreamsApp, table: Any, events: list[EventT]) -> None:
    """Plan and send each command in order, wait for all their acks, then store their state."""
    batch = GroupCommit()
    for event in events:
        with processing(event):
            await handle(streams, table, batch, event)
    await batch.acknowledged()
    for decided in batch.decided:
        failpoints.hit("after-produce", decided.command.type)
    # No await from here on: each command's documents are stored together, its own last.
    for decided in batch.decided:
        with processing(decided.event):
            for key, raw in decided.writes.items():
                target = streams.schedulers if key.startswith("scheduler:") else table
                target[key] = raw
        observe(decided.command, decided.emissions)


async def handle(streams: StreamsApp, table: Any, batch: GroupCommit, event: EventT) -> None:
    message = event.message
    try:
        name, value = await registry_retry(streams.codec.decode, COMMANDS, message.value or b"")
        if name != TICK:
            aggregate_for(name)
    except (DecodeError, KeyError) as exc:
        await send_to_deadletter(streams, message, exc)
        return
    envelope = value.pop("envelope")
    command = Command(name, envelope, value)
    attributes = {
        **tracing.kafka_attributes(
            message.topic, message.key, message.partition, message.offset, streams.app.conf.id
        ),
        "messaging.message.id": command.command_id,
        "aion.command.type": name,
        "aion.tenant.id": str(envelope.get("tenant_id")),
    }
    with (
        tracer.start_as_current_span(
            f"process {COMMANDS}",
            context=tracing.parent_context(envelope, message.headers),
            kind=trace.SpanKind.CONSUMER,
            attributes=attributes,
        ),
        telemetry.log_context(**telemetry.envelope_ids(envelope)),
    ):
        await decide(streams, table, batch, event, command)


async def decide(
    streams: StreamsApp, table: Any, batch: GroupCommit, event: EventT, command: Command
) -> None:
    """Plan the command against the batch's view and send what it leads to (with its trace)."""
    facts = await io_facts(streams, command)
    try:
        plan = plan_command(
            command,
            documents_reader(streams, table, batch),
            facts,
            streams.settings.watchdog_grace_ms,
        )
    except Exception as exc:  # a decider bug must not stop the partition: dead-letter it
        log.exception("decider failed on command %s", command.command_id)
        await send_to_deadletter(streams, event.message, exc)
        return
    if plan.duplicate:
        log.info("command %s was already handled; skipped", command.command_id)
        return
    carrier = tracing.current_carrier()
    for emission in plan.emissions:
        topic = streams.topics[emission.topic]
        tracing.carry_into(emission.value["envelope"], carrier)
        data = await registry_retry(
            streams.codec.encode, emission.topic, emission.record, emission.value
        )
        batch.acks.append(
            await topic.send(
                key=emission.key.encode(),
                value=data,
                headers={
                    "aion-type": emission.record.encode(),
                    "aion-command-id": command.command_id.encode(),
                    **{name: text.encode() for name, text in carrier.items()},
                },
            )
        )
    batch.add(event, command, plan.emissions, plan.writes)
    log.info(
        "command %s %s -> %s", command.type, command.command_id, [e.record for e in plan.emissions]
    )


def outcome_of(emissions: list[Emission]) -> str:
    """accepted, rejected (by its decider) or denied (by a policy)."""
    for emission in emissions:
        if emission.record == REJECTED:
            return "rejected"
        if emission.record == ENFORCEMENT_DECIDED and emission.value["decision"] != "allow":
            return "denied"
    return "accepted"


def observe(command: Command, emissions: list[Emission]) -> None:
    """Metrics of a decided command: its outcome, its latency, the policy verdicts it had."""
    metrics.COMMANDS_DECIDED.labels(command.type, outcome_of(emissions)).inc()
    issued = command.envelope.get("issued_at")
    if issued is not None:
        waited = time.time() - millis(issued) / 1000
        metrics.COMMAND_DECISION_SECONDS.labels(command.type).observe(max(waited, 0.0))
    for emission in emissions:
        if emission.record == ENFORCEMENT_DECIDED:
            verdict = emission.value
            metrics.POLICY_DECISIONS.labels(verdict["action"], verdict["decision"]).inc()


def documents_reader(
    streams: StreamsApp, table: Any, batch: GroupCommit
) -> Callable[[str], dict[str, Any] | None]:
    def read(key: str) -> dict[str, Any] | None:
        return batch.read(key, streams.schedulers if key.startswith("scheduler:") else table)

    return read
