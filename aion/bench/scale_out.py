"""Scenario 10, scale-out: one tenant's closed batch with 1 worker and 1 kernel, then with a
second worker and a second kernel process beside them (issue 16, item 4).

Only with the bench's own roles (not ``--api``): the extra processes get the same environment
and join the same consumer groups, and the trials start once the groups count them. On a
2-core machine the second pair competes with the first for the same cores (and with Kafka,
Postgres and the API), so this measures what the design allows here, not on more machines.
"""

from __future__ import annotations

import uuid

from aion.bench.harness import Figure
from aion.bench.ingest import bench_tenant, settle
from aion.bench.system import System
from aion.bench.task_load import Trial, closed_batch, deploy_echo

SCENARIO = "10 scale-out"


def _trials(system: System, tenant: str, size: int, trials: int) -> list[Trial]:
    """An untimed warm-up batch (every process has its partitions and tables by its end),
    then the timed ones."""
    closed_batch(system, tenant, [f"w{uuid.uuid4().hex[:8]}-{i}" for i in range(50)])
    found = []
    for _ in range(trials):
        run = uuid.uuid4().hex[:8]
        found.append(closed_batch(system, tenant, [f"s{run}-{i}" for i in range(size)]))
    return found


def scale_out(system: System, quick: bool) -> list[Figure]:
    """Nothing (and says so in the run's output) when the roles are not the bench's own."""
    if not system.owns_roles:
        return []
    size, trials = (100, 1) if quick else (200, 2)
    tenant = bench_tenant(system)
    deploy_echo(system, tenant)
    one = _trials(system, tenant, size, trials)
    with system.more(("worker", "kernel")):
        settle(system, tenant)
        two = _trials(system, tenant, size, trials)
    notes = "; ".join(n for n in (t.note() for t in one + two) if n)
    return [
        Figure(
            SCENARIO,
            f"tasks/s, 2 workers + 2 kernels, batch of {size:,}",
            "/s",
            [t.rate() for t in two],
            [t.rate() for t in one],
            "1 worker + 1 kernel",
            target="more processes raise one tenant's rate",
            check=lambda f: (f.ratio or 0) > 1.0,
            note=notes,
        )
    ]
