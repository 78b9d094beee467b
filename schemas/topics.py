"""The topic catalogue: every topic Aion owns, its key, its records, partitions and retention.

Topics are created explicitly from this list at start (the broker's auto-create is off), so
that partitions, retention and clean-up policy are decisions written here, not accidents.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import AdminClient, NewTopic

from schemas import catalog

COMMANDS = "aion.commands"
TASKS = "aion.tasks"
DISPATCH = "aion.kernel.dispatch"
DEADLETTER = "aion.deadletter"
AUDIT = "aion.audit"
AUDIT_NAMESPACE = "aion.audit"

WEEK_MS = 7 * 24 * 3600 * 1000
# Kafka's own default (message.max.bytes), written on every topic Aion creates so that the
# command processor checks its messages against the limit the topic was made with.
MAX_MESSAGE_BYTES = 1_048_588


def producer_config(bootstrap: str, **extra: object) -> dict[str, object]:
    """confluent-kafka producer settings every producer of ours starts from.

    ``murmur2_random`` hashes keys the way the Java clients and Faust's aiokafka producer do
    (librdkafka's default is CRC32): a tenant's commands must land on one partition whoever
    produces them (the API, the orchestrator's timer, a kernel worker, a user's Java client).
    """
    return {"bootstrap.servers": bootstrap, "partitioner": "murmur2_random", **extra}


EVENTS_PREFIX = "aion.events."


def events_topic(aggregate_type: str) -> str:
    return f"{EVENTS_PREFIX}{aggregate_type}"


@dataclass(frozen=True)
class TopicSpec:
    name: str
    key: str  # what the message key is
    records: tuple[str, ...]  # full names of the Avro records the topic carries
    retention_ms: int = -1  # -1: forever (events are the system of record)
    cleanup_policy: str = "delete"
    doc: str = ""
    config: dict[str, str] = field(default_factory=dict)
    max_message_bytes: int = MAX_MESSAGE_BYTES  # the largest record batch the broker takes

    def kafka_config(self) -> dict[str, str]:
        return {
            "retention.ms": str(self.retention_ms),
            "cleanup.policy": self.cleanup_policy,
            "max.message.bytes": str(self.max_message_bytes),
            **self.config,
        }


# Which events topic each record namespace belongs to: runs and artifacts are part of their
# task's history (ordered with it, keyed by the task), so they share the task's topic.
NAMESPACE_AGGREGATE = {
    "aion.tenant": "tenant",
    "aion.model": "model",
    "aion.agent": "agent",
    "aion.policy": "policy",
    "aion.task": "task",
    "aion.run": "task",
    "aion.artifact": "task",
    "aion.enforcement": "enforcement",
    "aion.api_key": "api_key",
}
REJECTED = "aion.CommandRejected"
EVENT_KEYS = {
    "tenant": "tenant id",
    "model": "<tenant>/<model name>",
    "agent": "<tenant>/<agent name>",
    "policy": "<tenant>/<policy id>",
    "task": "<tenant>/<task id>",
    "enforcement": "<tenant>/<subject id> of the decision's subject",
    "api_key": "<tenant>/<key id>",
}


# The task stage's commands (decision 56): a task's own commands and the kernel's reports of its
# runs, admission's answers, and the facts replicated to every partition. A task command that
# reaches aion.commands (from an older producer) is forwarded here unchanged.
TASK_STAGE_NAMESPACES = frozenset({"aion.task", "aion.run", "aion.facts"})
TASK_STAGE_ADMISSION = frozenset({"aion.admission.ScheduleRun", "aion.admission.AbortTask"})
TENANT_STAGE_ONLY = frozenset({"aion.task.Tick"})
TASK_STAGE_ONLY = frozenset({*TASK_STAGE_ADMISSION, "aion.facts.ReplicateFact"})


def task_stage_record(name: str) -> bool:
    """Whether a command record is decided by the task stage (on aion.tasks)."""
    if name in TENANT_STAGE_ONLY:
        return False
    return name in TASK_STAGE_ADMISSION or name.rsplit(".", 1)[0] in TASK_STAGE_NAMESPACES


def command_topic(name: str) -> str:
    """The topic a command record is produced to."""
    return TASKS if task_stage_record(name) else COMMANDS


def _records(kind: str, aggregate: str | None = None) -> tuple[str, ...]:
    chosen = []
    for name, record in catalog.all_records().items():
        namespace = name.rsplit(".", 1)[0]
        if kind == "task-command":
            wanted = record.is_command and task_stage_record(name)
        elif kind == "command":
            wanted = record.is_command and name not in TASK_STAGE_ONLY
        else:
            wanted = record.is_event and NAMESPACE_AGGREGATE.get(namespace) == aggregate
        if wanted:
            chosen.append(name)
    return tuple(chosen)


def _audit_records() -> tuple[str, ...]:
    return tuple(n for n in catalog.all_records() if n.rsplit(".", 1)[0] == AUDIT_NAMESPACE)


def _events_topic_spec(aggregate: str) -> TopicSpec:
    return TopicSpec(
        events_topic(aggregate),
        key=EVENT_KEYS[aggregate],
        records=(*_records("event", aggregate), REJECTED),
        doc=f"Facts about {aggregate} aggregates, and the commands refused for them. Kept "
        "forever: Kafka is the system of record.",
    )


TOPICS: tuple[TopicSpec, ...] = (
    TopicSpec(
        COMMANDS,
        key="tenant id: one writer per tenant, so cross-aggregate rules are checked consistently",
        records=_records("command"),
        retention_ms=WEEK_MS,
        doc="Commands accepted at the edge, waiting for their aggregate's decider, and the "
        "admission stage's requests (AdmitTask, SettleTask, WatchRun). Task commands produced "
        "here by an older client are forwarded to aion.tasks.",
    ),
    TopicSpec(
        TASKS,
        key="<tenant>/<task id>: one writer per task, so one tenant's tasks spread over every "
        "worker; ReplicateFact is sent to each partition",
        records=_records("task-command"),
        retention_ms=WEEK_MS,
        doc="The task stage's commands: SubmitTask and CancelTask from the API, the kernel "
        "workers' run reports, admission's ScheduleRun and AbortTask, and the tenant stage's "
        "replicated facts (decision 56).",
    ),
    *(_events_topic_spec(a) for a in EVENT_KEYS),
    TopicSpec(
        AUDIT,
        key="tenant id (_platform for a platform admin acting on no tenant)",
        records=_audit_records(),
        doc="Security facts the API observes that are not domain events: sign-ins, sign-outs "
        "and requests refused before anything was produced. With the events topics, the "
        "audit log's source. Kept forever.",
    ),
    TopicSpec(
        DISPATCH,
        key="run id (<tenant>/<task id>.<attempt>): runs spread evenly over the kernel workers",
        records=("aion.kernel.DispatchRun",),
        retention_ms=WEEK_MS,
        doc="Runs scheduled by the orchestrator, consumed by the kernel workers as one consumer "
        "group. Each message carries the manifest and input, so a worker reads nothing else.",
    ),
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


def max_message_bytes(name: str) -> int:
    """The topic's limit as Aion creates it; Kafka's default for a topic not in the catalogue
    (Faust's table changelogs)."""
    spec = next((t for t in TOPICS if t.name == name), None)
    return spec.max_message_bytes if spec else MAX_MESSAGE_BYTES


def create_missing_topics(bootstrap: str, wanted: list[NewTopic]) -> list[str]:
    """Create those of ``wanted`` that do not exist yet (safe when several processes race to);
    returns the names created now."""
    admin = AdminClient({"bootstrap.servers": bootstrap})
    existing = set(admin.list_topics(timeout=10).topics)
    missing = [topic for topic in wanted if topic.topic not in existing]
    if not missing:
        return []
    created = []
    for name, future in admin.create_topics(missing, request_timeout=30).items():
        try:
            future.result()
            created.append(name)
        except KafkaException as exc:
            if exc.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS:
                raise
    return created
