"""The command processor: the single writer of every aggregate.

For each command on ``aion.commands`` (keyed by aggregate id, so one partition, one writer):
load the aggregate's state from the table, decide, produce the events (or the rejection) to the
aggregate's events topic and wait for Kafka's ack, then store the new state.

Why this order: events are produced before the state is saved, so a crash in between replays
the command against the old state and yields the same events with the same deterministic ids
(harmless duplicates that every consumer drops by event id or version). A command whose id is
already in the state's recent list was fully handled and is skipped.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import time
from collections.abc import Callable
from typing import Any, TypeVar

from faust.types import EventT

from aion.stack.s3 import stat_or_none
from commands.aggregate import Aggregate
from commands.aggregates import AGGREGATES, aggregate_for
from commands.model import Command, Context, Rejection, event_id, scoped_id
from schemas.codec import DecodeError, RegistryUnavailable
from schemas.modules import module_object_key
from schemas.topics import COMMANDS, events_topic
from streams import failpoints
from streams.app import StreamsApp
from streams.deadletter import send_to_deadletter

log = logging.getLogger(__name__)

T = TypeVar("T")
RECENT_COMMANDS = 128  # ids remembered per aggregate to recognise a redelivered command


def envelope_for(
    command: Command, aggregate: Aggregate, index: int, version: int, event_type: str
) -> dict[str, Any]:
    env = command.envelope
    return {
        "event_id": event_id(command.command_id, index),
        "event_type": event_type,
        "command_id": command.command_id,
        "correlation_id": env["correlation_id"],
        "causation_id": command.command_id,
        "tenant_id": env["tenant_id"],
        "aggregate_type": aggregate.name,
        "aggregate_id": env["aggregate_id"],
        "aggregate_version": version,
        "occurred_at": env["issued_at"],
        "actor": env["actor"],
        "traceparent": env.get("traceparent"),
        "tracestate": env.get("tracestate"),
    }


def outcome_records(
    command: Command, aggregate: Aggregate, state: Any, context: Context | None = None
) -> tuple[list[tuple[str, dict[str, Any]]], Any]:
    """The (record name, value) pairs to produce for a command, and the state after them."""
    decision = aggregate.handle(state, command, context)
    if isinstance(decision, Rejection):
        value = {
            "envelope": envelope_for(command, aggregate, 0, state.version, decision.type),
            "command_type": command.type,
            "code": decision.code,
            "reason": decision.reason,
            "field": decision.field,
            "current_version": state.version,
        }
        return [(decision.type, value)], state
    records = []
    for index, event in enumerate(decision):
        state = aggregate.evolve(state, event)
        value = {
            "envelope": envelope_for(command, aggregate, index, state.version, event.type),
            **event.payload,
        }
        records.append((event.type, value))
    return records, state


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


MANIFEST_COMMANDS = {"aion.agent.DeployAgent", "aion.agent.UpdateAgent"}


async def io_facts(streams: StreamsApp, command: Command) -> dict[tuple[str, str], Any]:
    """Facts a decider needs that live outside Kafka (the module in the S3 store), fetched
    here so that deciders stay pure."""
    if command.type not in MANIFEST_COMMANDS:
        return {}
    digest = str((command.payload.get("manifest") or {}).get("module_digest", ""))
    match = re.fullmatch(r"sha256:([0-9a-f]{64})", digest)
    if not match:
        return {}  # the decider refuses the syntax itself
    tenant_id = str(command.envelope["tenant_id"])
    key = module_object_key(tenant_id, match.group(1))
    found = await asyncio.to_thread(stat_or_none, streams.s3, streams.settings.s3_bucket, key)
    if found is None:
        return {}
    return {("module", scoped_id(tenant_id, digest)): {"status": "stored", "size": found.size}}


def context_for(
    table: Any, command: Command, facts: dict[tuple[str, str], Any] | None = None
) -> Context:
    """The decider's view of the other aggregates of its tenant, at the command's own time.

    They live in the same partition (commands are keyed by tenant), so this worker holds them
    and nobody else writes them: the view is consistent, not eventually consistent.
    """

    def lookup(aggregate_type: str, aggregate_id: str) -> dict[str, Any] | None:
        if facts and (aggregate_type, aggregate_id) in facts:
            return dict(facts[(aggregate_type, aggregate_id)])
        raw = table.get(f"{aggregate_type}:{aggregate_id}")
        other = AGGREGATES.get(aggregate_type)
        if not raw or other is None:
            return None
        return other.summary(other.load(json.loads(raw)["state"]))

    return Context(now_ms=_millis(command.envelope["issued_at"]), lookup=lookup)


def _millis(value: Any) -> int:
    """issued_at decodes as a datetime (timestamp-millis); deciders see epoch milliseconds."""
    return int(value.timestamp() * 1000) if hasattr(value, "timestamp") else int(value)


def register(streams: StreamsApp) -> None:
    app, table = streams.app, streams.aggregates

    @app.agent(streams.commands, name="command-processor")
    async def process(stream: Any) -> None:
        async for event in stream.events():
            await handle(streams, table, event)


async def handle(streams: StreamsApp, table: Any, event: EventT) -> None:
    message = event.message
    try:
        name, value = await registry_retry(streams.codec.decode, COMMANDS, message.value or b"")
        aggregate = aggregate_for(name)
    except (DecodeError, KeyError) as exc:
        await send_to_deadletter(streams, message, exc)
        return
    envelope = value.pop("envelope")
    command = Command(name, envelope, value)
    key = f"{aggregate.name}:{envelope['aggregate_id']}"
    stored = table.get(key)
    document = json.loads(stored) if stored else {"state": None, "recent": []}
    if command.command_id in document["recent"]:
        log.info("command %s was already handled; skipped", command.command_id)
        return
    state = aggregate.load(document["state"])
    facts = await io_facts(streams, command)
    try:
        context = context_for(table, command, facts)
        records, new_state = outcome_records(command, aggregate, state, context)
    except Exception as exc:  # a decider bug must not stop the partition: dead-letter it
        log.exception("decider failed on command %s", command.command_id)
        await send_to_deadletter(streams, message, exc)
        return
    topic = streams.topics[events_topic(aggregate.name)]
    started = time.monotonic()
    for record_name, record in records:
        data = await registry_retry(
            streams.codec.encode, topic.get_topic_name(), record_name, record
        )
        pending = await topic.send(
            key=str(envelope["aggregate_id"]).encode(),
            value=data,
            headers={
                "aion-type": record_name.encode(),
                "aion-command-id": command.command_id.encode(),
            },
        )
        await pending  # wait for the broker's ack before the state moves on
    failpoints.hit("after-produce")
    document["state"] = aggregate.dump(new_state)
    document["recent"] = [*document["recent"], command.command_id][-RECENT_COMMANDS:]
    table[key] = json.dumps(document).encode()
    log.info(
        "command %s %s -> %s in %.1f ms",
        command.type,
        command.command_id,
        [r[0] for r in records],
        (time.monotonic() - started) * 1000,
    )
