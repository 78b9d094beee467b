"""The topic catalogue: every topic Aion owns, its key, its records, partitions and retention.

Topics are created explicitly from this list at start (the broker's auto-create is off), so
that partitions, retention and clean-up policy are decisions written here, not accidents.
"""

from __future__ import annotations

from dataclasses import dataclass, field

COMMANDS = "aion.commands"
DISPATCH = "aion.kernel.dispatch"
DEADLETTER = "aion.deadletter"

WEEK_MS = 7 * 24 * 3600 * 1000


def events_topic(aggregate_type: str) -> str:
    return f"aion.events.{aggregate_type}"


@dataclass(frozen=True)
class TopicSpec:
    name: str
    key: str  # what the message key is
    records: tuple[str, ...]  # full names of the Avro records the topic carries
    retention_ms: int = -1  # -1: forever (events are the system of record)
    cleanup_policy: str = "delete"
    doc: str = ""
    config: dict[str, str] = field(default_factory=dict)

    def kafka_config(self) -> dict[str, str]:
        return {
            "retention.ms": str(self.retention_ms),
            "cleanup.policy": self.cleanup_policy,
            **self.config,
        }


TOPICS: tuple[TopicSpec, ...] = (
    TopicSpec(
        COMMANDS,
        key="aggregate id (e.g. the tenant id): one writer per aggregate",
        records=("aion.tenant.CreateTenant",),
        retention_ms=WEEK_MS,
        doc="Commands accepted at the edge, waiting for their aggregate's decider.",
    ),
    TopicSpec(
        events_topic("tenant"),
        key="tenant id",
        records=("aion.tenant.TenantCreated", "aion.CommandRejected"),
        doc="Facts about tenants, and the commands refused for them. Kept forever.",
    ),
)


TOPICS += (
    TopicSpec(
        DEADLETTER,
        key="the key of the failed message",
        records=(),
        retention_ms=30 * 24 * 3600 * 1000,
        doc="Messages that failed to decode or made a processor throw: the original bytes, "
        "with aion-error and aion-source-topic/partition/offset headers.",
    ),
)


def topic(name: str) -> TopicSpec:
    return next(t for t in TOPICS if t.name == name)
