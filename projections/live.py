"""The Redis read model: each task's hot status, its event stream for live progress, and
per-tenant counters.

Keys are tenant-prefixed (``aion:<tenant>:...``), so no key of one tenant can be named from
another's path. Every write happens in one Lua script, guarded by the task's version: the
status hash, the stream entry and the counter increment are applied together, and only when
the event is newer than what Redis holds, so a duplicate or a replayed event changes nothing
(and counts nothing twice). A task's stream entry ids are its versions (``<version>-0``), which
makes them resumable SSE ids and lets Redis itself refuse an out-of-order entry. A finished
task's keys expire after a day: Postgres keeps the history, Redis keeps what is hot.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import psycopg

from aion.redis_clients import RedisLimits, sync_client
from commands.model import Event
from commands.task import (
    CANCELLED,
    FAILED,
    REJECTED,
    RUN_STARTED,
    SUBMITTED,
    SUCCEEDED,
    TASK_EVENTS,
    TERMINAL,
    TIMED_OUT,
    TaskState,
    evolve,
)
from projections.runner import Delivered, Position
from schemas.topics import events_topic

FINISHED_TTL_SECONDS = 24 * 3600
STREAM_MAXLEN = 1000
COUNTED = {
    SUBMITTED: "tasks_submitted",
    REJECTED: "tasks_rejected",
    SUCCEEDED: "tasks_succeeded",
    FAILED: "tasks_failed",
    TIMED_OUT: "tasks_timed_out",
    CANCELLED: "tasks_cancelled",
    RUN_STARTED: "runs_started",
}

# KEYS: status hash, event stream, counters hash.
# ARGV: version, status, attempt, run_id, updated_at, event type, data, counter, finished.
APPLY = """
local current = tonumber(redis.call('HGET', KEYS[1], 'version') or '0')
if tonumber(ARGV[1]) <= current then return 0 end
redis.call('HSET', KEYS[1], 'version', ARGV[1], 'status', ARGV[2], 'attempt', ARGV[3],
           'run_id', ARGV[4], 'updated_at', ARGV[5])
redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[10], ARGV[1] .. '-0', 'type', ARGV[6],
           'data', ARGV[7])
if ARGV[8] ~= '' then redis.call('HINCRBY', KEYS[3], ARGV[8], 1) end
if ARGV[9] == '1' then
  redis.call('EXPIRE', KEYS[1], ARGV[11])
  redis.call('EXPIRE', KEYS[2], ARGV[11])
end
return 1
"""


def status_key(tenant_id: str, task_id: str) -> str:
    return f"aion:{tenant_id}:task:{task_id}"


def stream_key(tenant_id: str, task_id: str) -> str:
    return f"aion:{tenant_id}:task:{task_id}:events"


def counters_key(tenant_id: str) -> str:
    return f"aion:{tenant_id}:counters"


def _text(value: Any) -> Any:
    return value.isoformat() if hasattr(value, "isoformat") else value


def event_data(record_name: str, value: dict[str, Any]) -> str:
    """What a live client sees of an event: its fields (not the input) and when it happened."""
    env = value["envelope"]
    body = {k: _text(v) for k, v in value.items() if k not in ("envelope", "input")}
    body["occurred_at"] = _text(env["occurred_at"])
    body["version"] = env["aggregate_version"]
    return json.dumps(body, separators=(",", ":"))


class LiveProjection:
    name = "live"
    topics: tuple[str, ...] = (events_topic("task"),)

    def __init__(self, url: str, limits: RedisLimits | None = None) -> None:
        # Timeouts: a Redis that stops answering fails the batch (and the runner retries)
        # instead of hanging the projection thread forever.
        self.redis = sync_client(url, limits or RedisLimits())
        self.script = self.redis.register_script(APPLY)

    def apply(
        self, cur: psycopg.Cursor[Any], record_name: str, value: dict[str, Any], at: Position
    ) -> None:
        if record_name not in TASK_EVENTS:
            return
        env = value["envelope"]
        tenant_id, task_id = env["tenant_id"], str(value["task_id"])
        raw: Any = self.redis.hgetall(status_key(tenant_id, task_id))
        self._write(self.redis, held_state(task_id, raw), record_name, value)

    def apply_batch(self, cur: psycopg.Cursor[Any], batch: Sequence[Delivered]) -> None:
        """A batch in two round trips instead of two per event: every task's hash read in one
        pipeline, each event folded in memory in order (with the script's own version guard,
        so each sees what applying them one by one would have left), every script in one."""
        events = [(name, value) for name, value, _ in batch if name in TASK_EVENTS]
        if not events:
            return
        tasks = {
            status_key(v["envelope"]["tenant_id"], str(v["task_id"])): str(v["task_id"])
            for _, v in events
        }
        reads = self.redis.pipeline(transaction=False)
        for key in tasks:
            reads.hgetall(key)
        held = {
            key: held_state(task_id, raw)
            for (key, task_id), raw in zip(tasks.items(), reads.execute(), strict=True)
        }
        writes = self.redis.pipeline(transaction=False)
        for name, value in events:
            key = status_key(value["envelope"]["tenant_id"], str(value["task_id"]))
            held[key] = self._write(writes, held[key], name, value)
        writes.execute()

    def _write(
        self, client: Any, before: TaskState, record_name: str, value: dict[str, Any]
    ) -> TaskState:
        """Send the event's guarded write; returns what Redis holds for the task after it."""
        env = value["envelope"]
        tenant_id, task_id = env["tenant_id"], str(value["task_id"])
        version = int(env["aggregate_version"])
        after = evolve(before, Event(record_name, value))
        self.script(
            keys=[
                status_key(tenant_id, task_id),
                stream_key(tenant_id, task_id),
                counters_key(tenant_id),
            ],
            args=[
                int(env["aggregate_version"]),
                after.status,
                after.attempt,
                after.run_id or "",
                _text(env["occurred_at"]),
                record_name.rsplit(".", 1)[1],
                event_data(record_name, value),
                COUNTED.get(record_name, ""),
                # A finished task's keys expire; so do those of a late event after they did.
                "1" if after.status in TERMINAL or after.status == "absent" else "0",
                STREAM_MAXLEN,
                FINISHED_TTL_SECONDS,
            ],
            client=client,
        )
        if version <= before.version:
            return before  # the script's guard: an older or repeated event changes nothing
        return TaskState(
            version=version,
            task_id=task_id,
            status=after.status,
            attempt=after.attempt,
            run_id=after.run_id,
        )


def held_state(task_id: str, raw: Any) -> TaskState:
    """The task as its Redis hash holds it (what the script keeps of its state)."""
    held = {k.decode(): v.decode() for k, v in (raw or {}).items()}
    return TaskState(
        version=int(held.get("version", 0)),
        task_id=task_id,
        status=held.get("status", "absent"),
        attempt=int(held.get("attempt", 0)),
        run_id=held.get("run_id") or None,
    )
