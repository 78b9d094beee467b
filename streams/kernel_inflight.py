"""What a kernel worker has in flight: dispatches taken, runs going, reports not yet acked.

Two things the consumer loop needs to know, kept apart from running WASM:

* ``RunStarts``: which runs are executing, and whether a run that has been going for a while
  has had its start reported on its own (``STARTED_AFTER_S``). A short run is reported once,
  start and end together; a long one has its start recorded early, so the orchestrator's
  watchdog watches it while it runs.
* ``InFlight``: per partition, the offsets taken in order, each with the future of its run's
  last report. An offset is committed only once every run before it, and its own, was reported
  and acknowledged; a worker killed before that leaves the run to the partition's next owner.
"""

from __future__ import annotations

import threading
import time
from concurrent.futures import Future
from dataclasses import dataclass, field

from streams.run_reports import Run, RunReporter

STARTED_AFTER_S = 0.5  # a run still going after this has its start reported on its own


@dataclass
class Going:
    run: Run
    attempt: int
    since: float
    started: Future[None] | None = None  # the start report, once sent on its own


@dataclass
class RunStarts:
    lock: threading.Lock = field(default_factory=threading.Lock)
    going: dict[str, Going] = field(default_factory=dict)

    def begin(self, run: Run, attempt: int) -> None:
        with self.lock:
            self.going[run.run_id] = Going(run, attempt, time.monotonic())

    def end(self, run: Run) -> str:
        """How the run's final report records its start: here, or before (sent on its own)."""
        with self.lock:
            going = self.going.pop(run.run_id, None)
        if going is None or going.started is None:
            return "here"
        refused = going.started.done() and going.started.exception() is not None
        return "here" if refused else "before"

    def report_now(self, run: Run, reporter: RunReporter) -> None:
        """Report the run's start at once, if not yet (its first progress report follows)."""
        with self.lock:
            going = self.going.get(run.run_id)
            if going is not None and going.started is None:
                going.started = reporter.started(going.run, going.attempt)

    def report_long(self, reporter: RunReporter) -> None:
        """Report the start of each run going for longer than ``STARTED_AFTER_S``, once."""
        now = time.monotonic()
        with self.lock:  # under the lock: a run ending now cannot race its start report
            for going in self.going.values():
                if going.started is None and now - going.since >= STARTED_AFTER_S:
                    going.started = reporter.started(going.run, going.attempt)


class ReportFailed(RuntimeError):
    """A run's report was not acknowledged: its offset must never be committed."""


Taken = Future["Future[None] | None"]  # the run's execution, resolving to its report's ack


@dataclass
class InFlight:
    by_partition: dict[int, list[tuple[int, Taken]]] = field(default_factory=dict)

    def __len__(self) -> int:
        return sum(len(runs) for runs in self.by_partition.values())

    def add(self, partition: int, offset: int, taken: Taken) -> None:
        self.by_partition.setdefault(partition, []).append((offset, taken))

    @staticmethod
    def finished(taken: Taken) -> bool:
        """Done and acknowledged; raises ReportFailed if the run or its report failed."""
        if not taken.done():
            return False
        if taken.exception() is not None:
            raise ReportFailed(str(taken.exception()))
        acked = taken.result()
        if acked is None:
            return True
        if not acked.done():
            return False
        if acked.exception() is not None:
            raise ReportFailed(str(acked.exception()))
        return True

    def committable(self) -> dict[int, int]:
        """partition -> the next offset to commit, past every finished run at the front."""
        offsets = {}
        for partition, runs in self.by_partition.items():
            last = None
            while runs and self.finished(runs[0][1]):
                last = runs.pop(0)[0]
            if last is not None:
                offsets[partition] = last + 1
        return offsets
