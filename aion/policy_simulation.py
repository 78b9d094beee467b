"""`aion policy simulate`: replay a tenant's recorded policy decisions against candidate policies.

Every EnforcementDecided event carries the Cedar request it was decided on, so a decision can
be evaluated again without the state it was made from. The candidate set is what the stream
processor would compile if the tenant's policies were replaced by the file's: the platform's
baseline and default policies plus the candidate's (``commands.enforcement``).

The re-evaluation (``simulate``) is pure; only ``read_decisions`` talks to Kafka, and it only
reads: it assigns partitions itself (no consumer group is joined, no offset committed) and
produces nothing.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from confluent_kafka import Message

from commands import enforcement
from commands.enforcement import Verdict
from commands.policy import check_cedar
from schemas.codec import Codec, DecodeError
from schemas.topics import events_topic
from streams.topic_snapshot import read_snapshot

TOPIC = events_topic("enforcement")

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86_400, "w": 604_800}
_DURATION = re.compile(r"(?:\d+[smhdw])+")


class CandidateError(ValueError):
    """A candidate policy file that cannot be used: it does not parse or is not valid Cedar
    for our schema (a usage error, so the CLI exits 2)."""


@dataclass(frozen=True)
class Recorded:
    """One recorded EnforcementDecided, reduced to what a replay needs and shows."""

    event_id: str
    enforcement_id: str
    subject_type: str
    subject_id: str
    action: str
    decision: str
    policy_ids: tuple[str, ...]
    occurred_at_ms: int
    request: str  # the Cedar request as JSON; "" when the event predates recorded requests

    @classmethod
    def from_event(cls, value: Mapping[str, Any]) -> Recorded:
        envelope = value["envelope"]
        return cls(
            event_id=str(envelope["event_id"]),
            enforcement_id=str(value["enforcement_id"]),
            subject_type=str(value["subject_type"]),
            subject_id=str(value["subject_id"]),
            action=str(value["action"]),
            decision=str(value["decision"]),
            policy_ids=tuple(value.get("policy_ids") or ()),
            occurred_at_ms=_millis(envelope["occurred_at"]),
            request=str(value.get("request") or ""),
        )

    @property
    def when(self) -> str:
        return datetime.fromtimestamp(self.occurred_at_ms / 1000, UTC).isoformat(timespec="seconds")


@dataclass(frozen=True)
class Outcome:
    recorded: Recorded
    simulated: Verdict

    @property
    def changed(self) -> bool:
        return self.simulated.decision != self.recorded.decision

    def as_dict(self) -> dict[str, Any]:
        r, s = self.recorded, self.simulated
        return {
            "subject_type": r.subject_type,
            "subject_id": r.subject_id,
            "action": r.action,
            "enforcement_id": r.enforcement_id,
            "occurred_at": r.when,
            "recorded": {"decision": r.decision, "policy_ids": list(r.policy_ids)},
            "simulated": {
                "decision": s.decision,
                "policy_ids": list(s.policy_ids),
                "diagnostics": list(s.diagnostics),
            },
        }


@dataclass(frozen=True)
class Simulation:
    tenant_id: str
    candidate_ids: tuple[str, ...]
    outcomes: tuple[Outcome, ...]
    skipped: tuple[Recorded, ...]  # recorded without a usable request: cannot be replayed

    @property
    def changes(self) -> list[Outcome]:
        return [o for o in self.outcomes if o.changed]

    def summary(self) -> str:
        line = f"{len(self.outcomes)} decisions replayed, {len(self.changes)} would change"
        if self.skipped:
            line += f" ({len(self.skipped)} without a recorded request skipped)"
        return line

    def as_dict(self) -> dict[str, Any]:
        return {
            "tenant_id": self.tenant_id,
            "candidate_policies": list(self.candidate_ids),
            "replayed": len(self.outcomes),
            "changed": len(self.changes),
            "skipped": len(self.skipped),
            "changes": [o.as_dict() for o in self.changes],
        }


def _millis(value: Any) -> int:
    """occurred_at decodes as a datetime (timestamp-millis); tests may pass milliseconds."""
    return int(value.timestamp() * 1000) if hasattr(value, "timestamp") else int(value)


def load_candidate(text: str) -> dict[str, str]:
    """The candidate file's policies by id, checked as PutPolicy checks a tenant's policy."""
    invalid = check_cedar(text)
    if invalid is not None:
        raise CandidateError(invalid.reason)
    try:
        return enforcement.candidate_policies(text)
    except ValueError as exc:
        raise CandidateError(f"invalid Cedar: {exc}") from exc


def parse_duration(text: str) -> timedelta:
    """``30m``, ``2h``, ``7d`` (also ``s``, ``w`` and sums such as ``1h30m``)."""
    compact = text.strip().lower()
    if not _DURATION.fullmatch(compact):
        raise ValueError(
            f"invalid duration {text!r}: use a whole number and a unit (s, m, h, d, w), "
            "e.g. 30m, 2h or 7d"
        )
    seconds = sum(int(n) * _UNITS[u] for n, u in re.findall(r"(\d+)([smhdw])", compact))
    if seconds <= 0:
        raise ValueError(f"invalid duration {text!r}: it must be longer than zero")
    return timedelta(seconds=seconds)


def simulate(
    tenant_id: str, recorded: Iterable[Recorded], candidate: Mapping[str, str]
) -> Simulation:
    """Each recorded decision evaluated again, with the candidate as the tenant's policies."""
    policies = enforcement.compile_policies(enforcement.policy_key(candidate))
    outcomes: list[Outcome] = []
    skipped: list[Recorded] = []
    for record in recorded:
        try:
            request = json.loads(record.request) if record.request else None
        except ValueError:
            request = None
        if not isinstance(request, dict):
            skipped.append(record)
            continue
        outcomes.append(Outcome(record, enforcement.evaluate(request, policies)))
    return Simulation(tenant_id, tuple(sorted(candidate)), tuple(outcomes), tuple(skipped))


# --- reading Kafka ----------------------------------------------------------------------------


def read_decisions(
    kafka: str, registry: str, tenant_id: str, since_ms: int | None = None
) -> list[Recorded]:
    """The tenant's EnforcementDecided events (from ``since_ms`` on), oldest first, read up to
    the end of each partition as it was when reading began; duplicates dropped by event id."""
    codec = Codec(registry)
    prefix = f"{tenant_id}/"
    found: dict[str, Recorded] = {}
    for message in read_snapshot(kafka, TOPIC, "policy-simulate", since_ms):
        record = _decision(codec, message, prefix, tenant_id, since_ms)
        if record is not None:
            found.setdefault(record.event_id, record)
    return sorted(found.values(), key=lambda r: (r.occurred_at_ms, r.subject_id, r.event_id))


def _decision(
    codec: Codec, message: Message, prefix: str, tenant_id: str, since_ms: int | None
) -> Recorded | None:
    """The message as the tenant's decision, or None (another tenant's, another record type,
    older than ``since_ms``, or not decodable)."""
    key = message.key()
    if key is not None and not key.decode("utf-8", "replace").startswith(prefix):
        return None  # another tenant's: not even decoded
    kind, timestamp = message.timestamp()
    if since_ms is not None and kind != 0 and timestamp < since_ms:  # 0: no timestamp
        return None
    try:
        name, value = codec.decode(TOPIC, message.value() or b"")
    except DecodeError:
        return None
    if name != enforcement.DECIDED or value["envelope"].get("tenant_id") != tenant_id:
        return None
    return Recorded.from_event(value)
