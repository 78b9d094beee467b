"""A dispatch that kills its kernel worker must not kill every next owner of its partition.

A run's offset is committed only once the run is reported, so a worker that dies during a run
(a crash in the runtime, the OOM killer, a failpoint in the tests) leaves it to the partition's
next owner, which runs it again: a run that kills every worker would go round forever, taking
the partition's other runs down with it (issue 17, finding 13).

So each kernel worker counts, in Redis, the times a run began executing without finishing:
``aion:kernel:starts:<run id>`` is incremented before the module runs and deleted once it
returned (whatever its outcome), so only a worker that died during the run leaves it
incremented. The key expires with the dispatch topic's retention (``STARTS_TTL_S``).

* A run that had begun before (``starts > 1``) runs alone in its worker (``Isolation``): no
  other run shares the process it may kill, so its neighbours of the last crash do not pile up
  crashes of their own.
* A run that began ``MAX_STARTS`` times already is not run again: it is reported failed as
  ``worker_lost`` (its kernel worker died), with a message that says so; the orchestrator then
  retries it or fails the task like any failure, under the agent's ``max_retries``.

Redis not answering makes the count unknown: the run runs (as before this cap), logged.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager

import redis

MAX_STARTS = 3
STARTS_TTL_S = 7 * 24 * 3600  # aion.kernel.dispatch keeps its messages 7 days
KEY_PREFIX = "aion:kernel:starts:"
log = logging.getLogger(__name__)


class StartCounter:
    def __init__(self, client: redis.Redis) -> None:
        self.redis = client

    def begin(self, run_id: str) -> int:
        """This start's number (1 for a first start; 1 too when Redis does not answer)."""
        key = KEY_PREFIX + run_id
        try:
            pipe = self.redis.pipeline(transaction=True)
            pipe.incr(key)
            pipe.expire(key, STARTS_TTL_S)
            starts, _ = pipe.execute()
            return int(starts)
        except redis.RedisError as exc:
            log.warning("run %s: starts not counted (%s); it runs", run_id, exc)
            return 1

    def finished(self, run_id: str) -> None:
        """The run returned: this worker survived it."""
        try:
            self.redis.delete(KEY_PREFIX + run_id)
        except redis.RedisError as exc:  # the key expires; a later crash counts from here
            log.warning("run %s: start count not cleared (%s)", run_id, exc)


class Isolation:
    """Runs share the worker, except a suspect one, which runs alone (the runs waiting behind
    it wait, and it waits for those going to end)."""

    def __init__(self) -> None:
        self.cond = threading.Condition()
        self.going = 0
        self.alone = False
        self.waiting_alone = 0

    @contextmanager
    def shared(self) -> Iterator[None]:
        with self.cond:
            self.cond.wait_for(lambda: not self.alone and not self.waiting_alone)
            self.going += 1
        try:
            yield
        finally:
            with self.cond:
                self.going -= 1
                self.cond.notify_all()

    @contextmanager
    def exclusive(self) -> Iterator[None]:
        with self.cond:
            self.waiting_alone += 1
            self.cond.wait_for(lambda: not self.alone and not self.going)
            self.waiting_alone -= 1
            self.alone = True
        try:
            yield
        finally:
            with self.cond:
                self.alone = False
                self.cond.notify_all()

    def slot(self, starts: int) -> AbstractContextManager[None]:
        """Alone for a run that began before, shared otherwise."""
        return self.exclusive() if starts > 1 else self.shared()
