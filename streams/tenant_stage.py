"""The tenant stage: what a command on aion.commands (keyed by tenant) does to the write side.

One writer per tenant decides the tenant's own aggregates (the tenant, its models, agents,
policies and API keys) against their current state, and admits its tasks (decision 56):

1. an aggregate's command: its decider, enforcement (DeployAgent, UpdateAgent), and the new
   summaries of the tenant, agents, API keys and policies replicated to every partition of
   aion.tasks (``streams.facts``);
2. admission (AdmitTask, SettleTask, WatchRun from the task stage, and the timer's Tick): the
   tenant's scheduler (``commands.scheduler``) over its jobs, counters, queues and timers,
   which answers with ScheduleRun or AbortTask to the task's stage;
3. a task command that arrives here (an older producer) is forwarded to aion.tasks unchanged.

State documents: ``<aggregate>:<id>``, ``scheduler:<tenant>`` (counters, the wheel, the recent
admission commands), ``policies:<tenant>``, and admission's small entries (``job:``,
``queue:``, ``slots:``, ``parked:``, ``eligible:``, ``wheel:``): none grows with the backlog.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from commands import admission, orchestration
from commands.aggregate import Aggregate
from commands.aggregates import AGGREGATES, aggregate_for
from commands.model import Command, Event, scoped_id
from commands.scheduler import Scheduler
from commands.task import RETRY_SCHEDULED, RUN_FAILED, SCHEDULED, TIMED_OUT, TaskState
from schemas.topics import TASKS, task_stage_record
from streams import facts
from streams.plan import TICK, Emission, Plan, Read, Working, policies_key, state_key

POLICY_EVENTS = frozenset({"aion.policy.PolicyPut", "aion.policy.PolicyDeleted"})
TERMINAL_JOB = "ended"  # a job's status for the scheduler's counters as it is forgotten


def scheduler_key(tenant_id: str) -> str:
    return f"scheduler:{tenant_id}"


class TenantWork(Working):
    """One command of the tenant stage."""

    def __init__(self, *args: Any, task_partitions: int) -> None:
        super().__init__(*args)
        self.task_partitions = task_partitions
        self.scheduler: Scheduler | None = None
        self.replicated: dict[tuple[str, str], None] = {}  # facts changed, in order

    # --- aggregates and their replicated facts --------------------------------------------

    def on_applied(
        self, aggregate: Aggregate, aggregate_id: str, event: Event, before: Any, after: Any
    ) -> None:
        if aggregate.name in facts.REPLICATED:
            self.replicated[(aggregate.name, aggregate_id)] = None
        if event.type in POLICY_EVENTS:
            self.index_policy(event)
            self.replicated[(facts.POLICIES, self.tenant_id)] = None

    def index_policy(self, event: Event) -> None:
        key = policies_key(self.tenant_id)
        policies = self.tenant_policies()
        policy_id = str(event.payload["policy_id"])
        if event.type == "aion.policy.PolicyPut":
            policies[policy_id] = str(event.payload["cedar"])
        else:
            policies.pop(policy_id, None)
        self.document(key)["state"] = {"policies": policies}
        self.touch(key)

    def replicate_facts(self) -> None:
        for fact_type, fact_id in self.replicated:
            if fact_type == facts.POLICIES:
                summary: dict[str, Any] | None = {"policies": self.tenant_policies()}
            else:
                aggregate = AGGREGATES[fact_type]
                state = self.state(aggregate, fact_id)
                summary = facts.summary_of(fact_type, state, aggregate.summary)
            facts.replicate(self, fact_type, fact_id, summary, self.task_partitions)

    # --- admission ------------------------------------------------------------------------

    def job(self, task_id: str) -> TaskState:
        return admission.job_state(task_id, self.get(admission.job_key(self.tenant_id, task_id)))

    def set_job(self, before: TaskState, after: TaskState, event: Event) -> None:
        """Store a job's change and let the scheduler count it; an ended job is forgotten."""
        key = admission.job_key(self.tenant_id, str(after.task_id or before.task_id))
        if after.status == TERMINAL_JOB:
            self.delete(key)
        else:
            self.put(key, admission.job_entry(after))
        self.load_scheduler().on_event(before, after, event)

    def agent_summary(self, agent_name: str) -> dict[str, Any]:
        return dict(self.context().find("agent", scoped_id(self.tenant_id, agent_name)) or {})

    def manifest(self, agent_name: str) -> dict[str, Any] | None:
        manifest: dict[str, Any] | None = self.agent_summary(agent_name).get("manifest")
        return manifest

    def load_scheduler(self) -> Scheduler:
        if self.scheduler is None:
            document = self.document(scheduler_key(self.tenant_id))
            stored = document.get("state")
            old_jobs = stored.get("jobs") if isinstance(stored, dict) else None
            if not isinstance(stored, dict) or "queue" not in stored:
                document["state"] = orchestration.new_scheduler()
            self.scheduler = Scheduler(
                self.tenant_id,
                document["state"],
                self,
                self.now_ms,
                self.grace_ms,
                self.job,
                self.manifest,
            )
            if old_jobs:
                self.scheduler.adopt(old_jobs)
        return self.scheduler

    def to_task(self, task_id: str, record: str, body: dict[str, Any], purpose: str) -> None:
        aggregate_id = scoped_id(self.tenant_id, task_id)
        self.request(TASKS, aggregate_id, record, ("task", aggregate_id), body, purpose)

    def admit(self, payload: dict[str, Any]) -> None:
        task_id = str(payload["task_id"])
        if self.job(task_id).exists:
            return  # asked again (a redelivery): it is queued or running already
        after = admission.admitted(task_id, str(payload["agent_name"]), payload.get("deadline_ms"))
        self.set_job(TaskState(), after, Event("aion.task.TaskAuthorized", {"task_id": task_id}))

    def settle(self, payload: dict[str, Any]) -> None:
        task_id = str(payload["task_id"])
        before = self.job(task_id)
        if not before.exists:
            return  # settled before (a redelivery, or the answer to a stale ScheduleRun)
        if payload["outcome"] == admission.RETRY:
            current = before.status in ("scheduled", "running")
            if not current or before.attempt != int(payload["attempt"]):
                return  # about an earlier run
            after = replace(before, status="retrying")
            retry = {"task_id": task_id, "retry_at_ms": int(payload["retry_at_ms"])}
            self.set_job(before, after, Event(RETRY_SCHEDULED, retry))
            return
        after = replace(before, status=TERMINAL_JOB)
        self.set_job(before, after, Event("aion.admission.Settled", {"task_id": task_id}))

    def watch(self, payload: dict[str, Any]) -> None:
        task_id, run_id = str(payload["task_id"]), str(payload["run_id"])
        before = self.job(task_id)
        if before.status != "scheduled" or before.run_id != run_id:
            return  # the run ended, or was given up, before its start was heard of
        after = replace(before, status="running")
        self.set_job(before, after, Event("aion.admission.Watched", {"task_id": task_id}))
        self.load_scheduler().watch(task_id, run_id, int(payload["watch_until_ms"]))

    def decided(self, task_id: str, event: Event) -> None:
        """What the scheduler decided for a task: a slot (ScheduleRun, or AbortTask when its
        agent is no longer deployed), its deadline, or its silent run."""
        before = self.job(task_id)
        if event.type == SCHEDULED:
            attempt, run_id = int(event.payload["attempt"]), str(event.payload["run_id"])
            self.set_job(before, admission.scheduled(before, attempt, run_id), event)
            agent = self.agent_summary(str(before.agent_name))
            if agent.get("status") != "deployed":
                status = agent.get("status") or "absent"
                message = f"agent {before.agent_name} is {status}, not deployed"
                self.abort(task_id, admission.AGENT_UNAVAILABLE, None, message, attempt)
                return
            body = {"task_id": task_id, "attempt": attempt}
            self.to_task(task_id, admission.SCHEDULE_RUN, body, f"schedule/{task_id}/{attempt}")
        elif event.type == TIMED_OUT:
            if before.status in ("authorized", "retrying"):
                after = replace(before, status=admission.ENDING)
                self.set_job(before, after, event)
            self.abort(task_id, admission.DEADLINE, None, "", before.attempt)
        elif event.type == RUN_FAILED:
            p = event.payload
            self.abort(task_id, admission.RUN_LOST, str(p["run_id"]), p["message"], before.attempt)

    def abort(
        self, task_id: str, cause: str, run_id: str | None, message: str, attempt: int
    ) -> None:
        body = {"task_id": task_id, "cause": cause, "run_id": run_id, "message": message}
        self.to_task(task_id, admission.ABORT, body, f"abort/{task_id}/{cause}/{attempt}")

    def advance(self) -> None:
        """Let the tenant's scheduler fire its due timers and admit what its limits allow."""
        tenant = self.context().find("tenant", self.tenant_id)
        limits = orchestration.Limits.of(tenant)
        scheduler = self.load_scheduler()
        scheduler.advance(limits, self.decided)
        scheduler.prune()
        key = scheduler_key(self.tenant_id)
        document = self.document(key)
        due = scheduler.due_ms(limits)
        if scheduler.changed or document.get("due_ms") != due or self.command.type == TICK:
            document["due_ms"] = due
            document.pop("recent", None)  # kept by Ticks before decision 56
            self.touch(key)

    # --- forwarding -----------------------------------------------------------------------

    def forward(self) -> None:
        """A task command produced here by an older client: to its own stage, as it was."""
        command = self.command
        value = {"envelope": dict(command.envelope), **command.payload}
        key = str(command.envelope["aggregate_id"])
        self.plan.emissions.append(Emission(TASKS, key, command.type, value))


ADMISSION = {
    admission.ADMIT: TenantWork.admit,
    admission.SETTLE: TenantWork.settle,
    admission.WATCH: TenantWork.watch,
}


def plan_tenant_command(
    command: Command,
    read: Read,
    facts_given: dict[tuple[str, str], Any] | None = None,
    grace_ms: int = orchestration.DEFAULT_GRACE_MS,
    task_partitions: int = 1,
) -> Plan:
    """Everything a command on aion.commands leads to. Raises KeyError for a command no
    aggregate handles."""
    work = TenantWork(command, read, facts_given or {}, grace_ms, task_partitions=task_partitions)
    if task_stage_record(command.type):
        work.forward()
        return work.plan
    if command.type == TICK or command.type in ADMISSION:
        # Idempotent by content (a known job is not admitted again, a forgotten one not
        # settled, a Tick acts only on what is due), so no recent list: the timer reads every
        # scheduler document each second, and they stay small.
        if command.type in ADMISSION:
            ADMISSION[command.type](work, dict(command.payload))
        work.advance()
        return work.finish(None)
    aggregate = aggregate_for(command.type)
    aggregate_id = str(command.envelope["aggregate_id"])
    primary_key = state_key(aggregate.name, aggregate_id)
    if work.duplicate(primary_key):
        return Plan(duplicate=True)
    work.decide(aggregate, aggregate_id)
    work.replicate_facts()
    if work.scheduler is not None and work.scheduler.changed:
        work.advance()
    elif aggregate.name == "tenant" and (aggregate.name, aggregate_id) in work.replicated:
        work.advance()  # a reinstated tenant, or new limits: its queue may move now
    return work.finish(primary_key)
