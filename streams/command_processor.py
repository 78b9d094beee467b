"""The command processor: the single writer of every aggregate, in two keyed stages.

Two Faust agents run the same loop (decision 56): the tenant stage on ``aion.commands`` (keyed
by tenant: the tenant's own aggregates, and admission of its tasks; ``streams.tenant_stage``)
and the task stage on ``aion.tasks`` (keyed by task: each task's own writer;
``streams.task_stage``). For each command: plan it, produce the planned messages and wait for
Kafka's acks, then store the changed documents in the stage's table. Commands come in batches
that share one wait for acks (``streams.group_commit``).

Why this order: messages are produced before the state is saved, so a crash in between replays
the command against the old state and yields the same messages with the same deterministic ids
(harmless duplicates that every consumer drops by event id or version, and the kernel by run
id). A command whose id is already in its document's recent list was handled and is skipped.

A command whose effects cannot be produced (too large, not fitting its schema, refused by the
broker) must not wedge its partition: it is rejected with the reason, or dead-lettered when
not even its rejection can be produced, and the partition goes on (decision 49).

Each command is handled in a CONSUMER span that continues the trace its envelope carries, and
every message it produces carries that span's ``traceparent`` (envelope and header), so the
kernel and the projections continue the same trace (``aion.tracing``).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any, NamedTuple, TypeVar

from faust.types import EventT
from opentelemetry import trace

from aion import metrics, telemetry, tracing
from commands.admission import INTERNAL
from commands.aggregates import aggregate_for
from commands.model import Command
from commands.task import ENFORCEMENT_DECIDED
from schemas.codec import DecodeError, RegistryUnavailable
from schemas.topics import TASKS
from streams import failpoints
from streams.app import StreamsApp
from streams.command_failures import INTERNAL_ERROR, CommandFailed, Failures
from streams.deadletter import send_to_deadletter
from streams.emitter import Emitter
from streams.group_commit import (
    BATCH_SIZE,
    BATCH_WAIT_SECONDS,
    Attempts,
    Decided,
    Failure,
    GroupCommit,
    processing,
)
from streams.module_facts import io_facts
from streams.outgoing import Limits, Outgoing, encode_writes, prepare
from streams.plan import TICK, Emission, Plan, millis
from streams.producibility import (
    CONFLICT,
    Refusal,
    Unproducible,
    broker_refused,
    fingerprint,
    is_message_refusal,
    refusal,
)
from streams.refusals import Remembered, rejection
from streams.stages import Stage, stages

log = logging.getLogger(__name__)
tracer = trace.get_tracer("aion.streams")
REJECTED = "aion.CommandRejected"

T = TypeVar("T")
RETRY_FIRST_SECONDS = 0.5
RETRY_MAX_SECONDS = 10.0


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
    app = streams.app
    tenant, task = stages(streams)

    @app.agent(streams.commands, name="command-processor")
    async def process(stream: Any) -> None:
        remembered, failures = Remembered(), Failures()
        async for events in stream.take_events(BATCH_SIZE, within=BATCH_WAIT_SECONDS):
            await handle_batch(streams, tenant, events, remembered, failures)

    @app.agent(streams.topics[TASKS], name="task-processor")
    async def process_tasks(stream: Any) -> None:
        remembered, failures = Remembered(), Failures()
        async for events in stream.take_events(BATCH_SIZE, within=BATCH_WAIT_SECONDS):
            await handle_batch(streams, task, events, remembered, failures)


async def handle_batch(
    streams: StreamsApp,
    stage: Stage,
    events: list[EventT],
    remembered: Remembered,
    failures: Failures,
) -> None:
    """Plan and send each command in order, wait for all their acks, then store their state.

    When Kafka did not acknowledge a message: a refusal of the message itself stores the batch
    up to the refused command and handles the rest again, the refused one now rejected; any
    other failure (a timeout, no broker) stores nothing and handles the whole batch again.
    When handling a command raised, the commands before it are stored, and the rest handled
    again after a backoff (``streams.command_failures``)."""
    attempts = Attempts()
    pending = list(events)
    delay = RETRY_FIRST_SECONDS
    while pending:
        batch = GroupCommit()
        failed: CommandFailed | None = None
        for position, event in enumerate(pending):
            if batch.halted:
                break
            with processing(event):
                try:
                    await handle(
                        streams, stage, batch, event, Handling(position, remembered, attempts)
                    )
                except CommandFailed as exc:
                    failed = exc
                    break
        failure = await batch.settle(stage.emitter.flush)
        if failure is None:
            store(streams, stage, batch.decided)
            if failed is None:
                return
            pending = await after_failure(failed, pending, remembered, failures)
            continue
        if not is_message_refusal(failure.error):
            log.warning(
                "Kafka did not acknowledge %s (%s); the batch again in %.1f s",
                failure.emission.topic,
                failure.error,
                delay,
            )
            await asyncio.sleep(delay)
            delay = min(delay * 2, RETRY_MAX_SECONDS)
            continue
        pending = recover(streams, stage, batch, failure, pending, remembered, attempts)


async def after_failure(
    failed: CommandFailed, pending: list[EventT], remembered: Remembered, failures: Failures
) -> list[EventT]:
    """The events to handle again after the command at ``failed.position`` raised: from that
    command on, after a backoff; the command rejected instead once it has failed too often."""
    retry = failures.record(failed)
    metrics.COMMAND_HANDLING_FAILURES.labels(
        failed.command_type, "rejected" if retry.rejected else "retried"
    ).inc()
    if retry.rejected is not None:
        remembered.put(failed.command_id, retry.rejected)
    await asyncio.sleep(retry.delay)
    return pending[failed.position :]


def store(streams: StreamsApp, stage: Stage, decided: list[Decided]) -> None:
    """The documents of acknowledged commands, in command order, each command's own last."""
    for each in decided:
        failpoints.hit("after-produce", each.command.type)
    # A document several commands of the batch wrote is stored once, as the last left it (the
    # tenant's scheduler, an agent's slots): what the commands wrote, without the versions a
    # later command replaced. Ordered by last write, so each command's own document still
    # comes after the others it wrote.
    final: dict[tuple[int, str], tuple[Decided, bytes | None]] = {}
    for each in decided:
        for key, raw in each.writes.items():
            final.pop((each.partition, key), None)
            final[(each.partition, key)] = (each, raw)
    # No await from here on: the batch's documents are stored together.
    for (_, key), (each, raw) in final.items():
        with processing(each.event):
            target = stage.target(key)
            if raw is None:
                target.pop(key, None)
            else:
                target[key] = raw
    for each in decided:
        observe(each.command, each.emissions)


def recover(
    streams: StreamsApp,
    stage: Stage,
    batch: GroupCommit,
    failure: Failure,
    pending: list[EventT],
    remembered: Remembered,
    attempts: Attempts,
) -> list[EventT]:
    """After the broker refused a message: store the commands before its command (all theirs
    acknowledged, none planned on its state), remember the refusal, and return the events
    to handle again, from the refused command on (decision 49)."""
    failed = batch.decided[failure.index]
    store(streams, stage, batch.decided[: failure.index])
    refused = broker_refused(failure.emission.record, failure.emission.topic, failure.error)
    remembered.put(failed.command.command_id, refused)
    metrics.COMMANDS_UNPRODUCIBLE.labels(refused.code).inc()
    for emission, acknowledged in batch.acknowledged_from(failure.index):
        if acknowledged:
            attempts.produced[message_id(emission.value)] = fingerprint(emission.value)
    log.warning(
        "command %s %s refused by Kafka (%s); %d command(s) handled again",
        failed.command.type,
        failed.command.command_id,
        failure.error,
        len(pending) - failed.position,
    )
    return pending[failed.position :]


class Handling(NamedTuple):
    """How one event of a batch is handled: its place in the batch, and what recovery knows."""

    position: int
    remembered: Remembered
    attempts: Attempts


async def handle(
    streams: StreamsApp, stage: Stage, batch: GroupCommit, event: EventT, handling: Handling
) -> None:
    message = event.message
    attempts = handling.attempts
    if (message.partition, message.offset) in attempts.deadlettered:
        return  # dead-lettered in an earlier pass over this batch
    try:
        name, value = await registry_retry(streams.codec.decode, stage.topic, message.value or b"")
        if name != TICK and name not in INTERNAL:
            aggregate_for(name)
    except (DecodeError, KeyError) as exc:
        await deadletter(streams, event, exc, attempts)
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
            f"process {stage.topic}",
            context=tracing.parent_context(envelope, message.headers),
            kind=trace.SpanKind.CONSUMER,
            attributes=attributes,
        ),
        telemetry.log_context(**telemetry.envelope_ids(envelope)),
    ):
        try:
            await decide(streams, stage, batch, event, command, handling)
        except Exception as exc:  # settled, stored up to here, then handled again
            raise CommandFailed(handling.position, command.command_id, name) from exc


async def deadletter(
    streams: StreamsApp, event: EventT, error: Exception, attempts: Attempts
) -> None:
    await send_to_deadletter(streams, event.message, error)
    attempts.deadlettered.add((event.message.partition, event.message.offset))


async def decide(
    streams: StreamsApp,
    stage: Stage,
    batch: GroupCommit,
    event: EventT,
    command: Command,
    handling: Handling,
) -> None:
    """Plan the command against the batch's view, check that all of it can be produced, and
    send it (with its trace); else send its rejection instead."""
    position, remembered, attempts = handling
    read = documents_reader(stage, batch, event.message.partition)
    refused = remembered.get(command.command_id)  # refused in an earlier pass over the batch
    if refused is not None and refused.code == INTERNAL_ERROR:
        plan = Plan()  # its handling failed MAX_ATTEMPTS times: only its rejection is sent
    else:
        facts = await io_facts(streams, command)
        try:
            plan = stage.planner(command, read, facts, streams.settings.watchdog_grace_ms)
        except Exception as exc:  # a decider bug must not stop the partition: dead-letter it
            log.exception("decider failed on command %s", command.command_id)
            await deadletter(streams, event, exc, attempts)
            return
    if plan.duplicate:
        log.info("command %s was already handled; skipped", command.command_id)
        return
    carrier = tracing.current_carrier()
    headers = {
        "aion-command-id": command.command_id.encode(),
        **{name: text.encode() for name, text in carrier.items()},
    }
    limits = Limits(int(streams.app.conf.producer_max_request_size))
    for emission in plan.emissions:
        tracing.carry_into(emission.value["envelope"], carrier)
    emissions = plan.emissions
    ready: list[Outgoing] = []
    writes: dict[str, bytes | None] = {}
    if refused is None:
        ready, refused = await prepare(emissions, encoder(streams), headers, limits, command.type)
        if refused is None:
            writes, refused = encode_writes(plan.writes, limits)
        if refused is not None:
            metrics.COMMANDS_UNPRODUCIBLE.labels(refused.code).inc()
    if refused is None and changes_what_was_sent(ready, attempts):
        metrics.COMMANDS_UNPRODUCIBLE.labels(CONFLICT).inc()
        conflict = refusal(CONFLICT, "re-planned after a refusal, its events would differ")
        await deadletter(streams, event, Unproducible(conflict), attempts)
        return
    if refused is not None:
        log.warning("command %s %s refused: %s", command.type, command.command_id, refused)
        instead = await rejected(streams, command, refused, read, headers, limits, remembered)
        if instead is None and (command.type == TICK or command.type in INTERNAL):
            log.error("internal command %s %s dead-lettered", command.type, command.command_id)
        if instead is None:
            await deadletter(streams, event, Unproducible(refused), attempts)
            return
        ready, writes = instead
        emissions = [outgoing.emission for outgoing in ready]
    decided = Decided(event, command, emissions, writes, position=position)
    await send(stage.emitter, batch, decided, ready)
    # The stages' own messages to each other are many (three per task) and say little alone.
    level = logging.DEBUG if command.type in INTERNAL else logging.INFO
    log.log(
        level,
        "command %s %s -> %s",
        command.type,
        command.command_id,
        [e.record for e in emissions],
    )


async def rejected(
    streams: StreamsApp,
    command: Command,
    refused: Refusal,
    read: Callable[[str], dict[str, Any] | None],
    headers: dict[str, bytes],
    limits: Limits,
    remembered: Remembered,
) -> tuple[list[Outgoing], dict[str, bytes | None]] | None:
    """The rejection that replaces a command's plan, ready to send; None when it has no
    caller (a timer Tick) or cannot be produced either: then the command is dead-lettered."""
    internal = command.type == TICK or command.type in INTERNAL
    if internal or remembered.must_deadletter(command.command_id):
        return None
    emission, documents = rejection(command, refused, read)
    ready, again = await prepare([emission], encoder(streams), headers, limits, None)
    if again is not None:
        return None
    writes, again = encode_writes(documents, limits)
    return None if again is not None else (ready, writes)


def message_id(value: dict[str, Any]) -> str:
    """An event's id, or an internal command's (both derived from the command's id)."""
    envelope = value["envelope"]
    return str(envelope.get("event_id") or envelope["command_id"])


def changes_what_was_sent(ready: list[Outgoing], attempts: Attempts) -> bool:
    """True when an event of this re-planned command was acknowledged in an earlier pass with
    other contents: sending it would give one event id two meanings."""
    for outgoing in ready:
        value = outgoing.emission.value
        before = attempts.produced.get(message_id(value))
        if before is not None and before != fingerprint(value):
            return True
    return False


async def send(
    emitter: Emitter, batch: GroupCommit, decided: Decided, ready: list[Outgoing]
) -> None:
    """Send the command's messages; one the client refuses at once halts the batch there."""
    for outgoing in ready:
        emission = outgoing.emission
        try:
            ack = emitter.send(
                emission.topic, outgoing.key, outgoing.value, outgoing.headers, emission.partition
            )
        except Exception as exc:  # e.g. the client's own size check: settled with the others
            failed: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
            failed.set_exception(exc)
            decided.acks.append(failed)
            batch.halted = True
            break
        decided.acks.append(ack)
    batch.add(decided)


def encoder(streams: StreamsApp) -> Callable[[str, str, dict[str, Any]], Awaitable[bytes]]:
    """The codec's encode, waiting out a registry outage."""

    async def encode(topic: str, record: str, value: dict[str, Any]) -> bytes:
        return await registry_retry(streams.codec.encode, topic, record, value)

    return encode


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
    stage: Stage, batch: GroupCommit, partition: int
) -> Callable[[str], dict[str, Any] | None]:
    def read(key: str) -> dict[str, Any] | None:
        return batch.read(key, stage.target(key), partition)

    return read
