"""The Qdrant projection: each tenant's agents and run outputs, searchable by meaning.

It writes Qdrant only (no Postgres cursor), and every write is idempotent and version-guarded
(``projections/vectors.py``), so the runner may checkpoint after the writes and apply an
event again after a crash: the same event twice, or an older one after a newer, changes
nothing, and a replayed RunSucceeded neither fetches nor embeds again.

- AgentDeployed / AgentUpdated: the agent's name, description, capabilities and labels.
- AgentRetired: the point keeps its version but loses its vector (out of search).
- ArtifactStored with artifact_id "output": where the run's output lies, kept as a point
  without a vector (status "pending"). The kernel worker records the output artifact just
  before RunSucceeded, in the same partition; the note lives in Qdrant, not in memory,
  because the two may fall in different batches with a restart between them.
- RunSucceeded: reads the output through ``fetch(object_key)`` and indexes its text, for the
  agents whose manifest says ``index_outputs`` (decision 52: an embedding costs more CPU than
  the run itself, so it is opted into, not paid for every task). A success that names no agent
  (recorded before RunSucceeded carried one) is indexed, as it was then. The note of an output
  that is not indexed is removed.

``fetch`` raising LookupError means the object is gone: the output is skipped with a warning.
Any other error propagates, so the runner retries the batch (an S3 outage loses nothing).
"""

from __future__ import annotations

import json
import logging
from collections import OrderedDict
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from commands.agent import DEPLOYED, RETIRED, UPDATED
from commands.task import ARTIFACT_STORED, RUN_SUCCEEDED
from projections.vectors import INDEXED, PENDING, Entry, Stored, VectorStore
from schemas.topics import events_topic

log = logging.getLogger(__name__)

Fetch = Callable[[str], bytes]
OUTPUT = "output"  # the artifact_id of a run's output (streams/kernel_worker.py)
# The model reads 256 tokens at most, about 1,000-1,500 characters of English: more is waste.
MAX_TEXT_CHARS = 2000
EXCERPT_CHARS = 280
MAX_DEPTH = 20  # deeper JSON is not worth reading (and recursion must stay bounded)
OPT_INS_CACHED = 4096  # (tenant, agent) -> index_outputs, remembered; the rest read from Qdrant


class VectorProjection:
    topics: tuple[str, ...] = (events_topic("agent"), events_topic("task"))

    def __init__(self, store: VectorStore, fetch: Fetch) -> None:
        self.store = store
        self.fetch = fetch
        # Its own checkpoints per embedder: another model means a new collection, filled
        # by replaying the topics from the start.
        self.name = f"vectors.{store.embedder.name}"
        self._opt_ins: OrderedDict[tuple[str, str], bool] = OrderedDict()

    def indexes_outputs(self, tenant: str, agent_name: str | None) -> bool:
        """Whether the agent's manifest opted its outputs into search (the agent's point
        says, read once and remembered); a success that names no agent predates the choice."""
        if agent_name is None:
            return True
        key = (tenant, agent_name)
        if key not in self._opt_ins:
            stored = self.store.get(tenant, "agent", agent_name)
            self._remember(key, bool(stored is not None and stored.fields.get("index_outputs")))
        self._opt_ins.move_to_end(key)
        return self._opt_ins[key]

    def _remember(self, key: tuple[str, str], opted: bool) -> None:
        self._opt_ins[key] = opted
        while len(self._opt_ins) > OPT_INS_CACHED:
            self._opt_ins.popitem(last=False)

    def apply(self, record_name: str, value: dict[str, Any]) -> None:
        env = value["envelope"]
        tenant, version = env["tenant_id"], int(env["aggregate_version"])
        if env["aggregate_type"] == "agent" and record_name in (DEPLOYED, UPDATED):
            name, manifest = value["agent_name"], value["manifest"]
            text, fields = agent_text(manifest), agent_fields(name, manifest)
            self.store.put(tenant, [Entry("agent", name, version, text, INDEXED, fields)])
            self._remember((tenant, name), fields["index_outputs"])
        elif env["aggregate_type"] == "agent" and record_name == RETIRED:
            reason = value.get("reason") or ""
            self._opt_ins.pop((tenant, value["agent_name"]), None)
            self.store.retire(tenant, "agent", value["agent_name"], version, reason=reason)
        elif record_name == ARTIFACT_STORED and value["artifact_id"] == OUTPUT:
            self.store.put(tenant, [_pending(version, value)])
        elif record_name == RUN_SUCCEEDED:
            self._index_output(tenant, version, value)

    def apply_batch(self, records: Sequence[tuple[str, dict[str, Any]]]) -> None:
        """A batch in event order, with run outputs indexed together: one embedding call and
        one upsert per tenant, and no pending note for an output whose run's success is in the
        same batch (the kernel records both in one command, so they usually are)."""
        notes: dict[tuple[str, str], Entry] = {}
        ready: dict[str, list[Entry]] = {}
        for record_name, value in records:  # agents first: a batch's opt-ins are current
            if value["envelope"]["aggregate_type"] == "agent":
                self.apply(record_name, value)
        unindexed = {
            (v["envelope"]["tenant_id"], v["run_id"])
            for name, v in records
            if name == RUN_SUCCEEDED
            and not self.indexes_outputs(v["envelope"]["tenant_id"], v.get("agent_name"))
        }
        indexed = self._indexed_versions(records, unindexed)
        for record_name, value in records:
            env = value["envelope"]
            tenant, version = env["tenant_id"], int(env["aggregate_version"])
            if env["aggregate_type"] == "agent":
                continue  # applied above
            if record_name == ARTIFACT_STORED and value["artifact_id"] == OUTPUT:
                notes[(tenant, value["run_id"])] = _pending(version, value)
            elif record_name == RUN_SUCCEEDED and (tenant, value["run_id"]) in unindexed:
                if notes.pop((tenant, value["run_id"]), None) is None:
                    self.store.delete(tenant, "run_output", value["run_id"])  # a late note
            elif record_name == RUN_SUCCEEDED:
                note = notes.pop((tenant, value["run_id"]), None)
                if indexed.get((tenant, value["run_id"]), -1) >= version:
                    continue  # already indexed by this event (a replay)
                entry = self._output_entry(tenant, version, value, note)
                if entry is not None:
                    ready.setdefault(tenant, []).append(entry)
        for (tenant, _), note in notes.items():
            ready.setdefault(tenant, []).append(note)  # its success comes in a later batch
        for tenant, entries in ready.items():
            self.store.put(tenant, entries)

    def _indexed_versions(
        self, records: Sequence[tuple[str, dict[str, Any]]], unindexed: set[tuple[str, str]]
    ) -> dict[tuple[str, str], int]:
        """(tenant, run) -> the stored version of each output the batch's successes name."""
        runs: dict[str, list[str]] = {}
        for record_name, value in records:
            tenant = value["envelope"]["tenant_id"]
            if record_name == RUN_SUCCEEDED and (tenant, value["run_id"]) not in unindexed:
                runs.setdefault(tenant, []).append(value["run_id"])
        found = {}
        for tenant, run_ids in runs.items():
            for run_id, version in self.store.versions(tenant, "run_output", run_ids).items():
                found[(tenant, run_id)] = version
        return found

    def _index_output(self, tenant: str, version: int, value: dict[str, Any]) -> None:
        if not self.indexes_outputs(tenant, value.get("agent_name")):
            self.store.delete(tenant, "run_output", value["run_id"])  # its note, if any
            return
        entry = self._output_entry(tenant, version, value, None)
        if entry is not None:
            self.store.put(tenant, [entry])

    def _output_entry(
        self, tenant: str, version: int, value: dict[str, Any], note: Entry | None
    ) -> Entry | None:
        """The indexed point of a run's output, from its note (this batch's, or stored)."""
        run_id = value["run_id"]
        noted: Entry | Stored | None = note or self.store.get(tenant, "run_output", run_id)
        if noted is not None and noted.version >= version:
            return None  # already indexed by this event (a replay)
        if noted is None or noted.fields.get("digest") != value["output_digest"]:
            log.warning("run %s/%s succeeded without a recorded output artifact", tenant, run_id)
            return None
        key = str(noted.fields["object_key"])
        try:
            data = self.fetch(key)
        except LookupError:
            log.warning("output %s of run %s/%s is gone; not indexed", key, tenant, run_id)
            return None
        text = output_text(data)
        fields = {
            **noted.fields,
            "output_bytes": value["output_bytes"],
            "excerpt": text[:EXCERPT_CHARS],
        }
        return Entry("run_output", run_id, version, text, INDEXED, fields)


def _pending(version: int, value: dict[str, Any]) -> Entry:
    """Where a run's output lies, noted until its run succeeds (no vector yet)."""
    fields = {k: value[k] for k in ("task_id", "run_id", "object_key", "digest")}
    return Entry("run_output", value["run_id"], version, None, PENDING, fields)


def agent_fields(name: str, manifest: dict[str, Any]) -> dict[str, Any]:
    """What a search hit shows of an agent without a read of Postgres."""
    return {
        "agent_name": name,
        "agent_version": manifest.get("version"),
        "description": manifest.get("description") or "",
        "capabilities": [str(c) for c in manifest.get("capabilities") or []],
        "labels": dict(manifest.get("labels") or {}),
        "index_outputs": bool(manifest.get("index_outputs")),
    }


def agent_text(manifest: dict[str, Any]) -> str:
    """What a person would search an agent by, as one sentence-like text."""
    parts = [str(manifest["agent_name"]).replace("-", " ")]
    if manifest.get("description"):
        parts.append(str(manifest["description"]))
    capabilities = [str(c).replace("_", " ") for c in manifest.get("capabilities") or []]
    if capabilities:
        parts.append("capabilities: " + ", ".join(capabilities))
    labels = manifest.get("labels") or {}
    if labels:
        parts.append("labels: " + ", ".join(f"{k} {v}" for k, v in sorted(labels.items())))
    return ". ".join(part.strip().rstrip(".") for part in parts)


def output_text(data: bytes, limit: int = MAX_TEXT_CHARS) -> str:
    """A run's output as words: JSON keys and values without the punctuation, cut at ``limit``.

    Text that is not JSON (or a cut-off prefix of it) is taken as it is.
    """
    raw = data.decode("utf-8", errors="replace")
    try:
        parsed = json.loads(raw)
    except (ValueError, RecursionError):
        return raw[:limit].strip()
    text, size = [], 0
    for piece in _pieces(parsed, 0):
        text.append(piece)
        size += len(piece)
        if size >= limit:
            break
    return "".join(text)[:limit].strip()


def _pieces(value: Any, depth: int) -> Iterator[str]:
    if depth > MAX_DEPTH:
        return
    if isinstance(value, dict):
        for n, (key, item) in enumerate(value.items()):
            yield f"; {key}: " if n else f"{key}: "
            yield from _pieces(item, depth + 1)
    elif isinstance(value, list):
        for n, item in enumerate(value):
            if n:
                yield ", "
            yield from _pieces(item, depth + 1)
    elif isinstance(value, str):
        yield value
    else:
        yield json.dumps(value)
