"""A run during which a kernel worker died runs alone the next time (issue 17, finding 13)."""

from __future__ import annotations

import threading
import time

from streams.kernel_crashes import Isolation


def test_a_suspect_run_runs_alone() -> None:
    isolation = Isolation()
    going: list[int] = []
    seen_alone: list[int] = []
    lock = threading.Lock()

    def run(starts: int) -> None:
        with isolation.slot(starts):
            with lock:
                going.append(starts)
                if starts > 1:
                    seen_alone.append(len(going))
            time.sleep(0.05)
            with lock:
                going.remove(starts)

    threads = [threading.Thread(target=run, args=(1 if i % 4 else 2,)) for i in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert seen_alone and set(seen_alone) == {1}  # nothing else was running beside it
