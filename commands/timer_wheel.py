"""One tenant's timers (deadlines, watchdogs, retry backoffs) as a wheel of small entries.

Pure, no I/O: it works over ``commands.entries.Entries``. A timer is due in the first whole
second at or after its time (never early, at most a second late). Each second that holds
timers has pages of at most ``PAGE`` timers (``<prefix>:<second>:<page>``); each minute that
holds any has a summary (``<prefix>:m:<minute>``: second -> [pages, pages fired]). The owner
document keeps ``next_s`` (the earliest second holding timers), ``cursor_s`` (every earlier
second was fired) and ``pending``. So no entry grows with the number of timers: 100,000 tasks
with the same deadline are 391 pages of one second, fired a bounded number of pages per command.

Timers are never removed early: a timer whose task ended or moved on is fired and found stale
by its owner (lazy deletion), which costs one read and spares every ending a search.
Finding the next second after one is fired reads the minute summaries ahead, at most
``HORIZON_MINUTES`` of them; beyond that the wheel sets a waypoint there and looks again when
that time comes.
"""

from __future__ import annotations

from typing import Any

from commands.entries import Entries

PAGE = 256
HORIZON_MINUTES = 1440

Timer = list[Any]  # [kind, task id, token, since_ms]


def new_wheel() -> dict[str, Any]:
    return {"next_s": None, "cursor_s": 0, "pending": 0}


def second_of(at_ms: int) -> int:
    """The first whole second at or after ``at_ms``."""
    return -(-int(at_ms) // 1000)


class TimerWheel:
    def __init__(self, entries: Entries, prefix: str, meta: dict[str, Any]) -> None:
        self.entries = entries
        self.prefix = prefix
        self.meta = meta  # the owner document's "wheel", changed in place

    def _page_key(self, second: int, page: int) -> str:
        return f"{self.prefix}:{second}:{page}"

    def _minute_key(self, minute: int) -> str:
        return f"{self.prefix}:m:{minute}"

    def add(self, at_ms: int, timer: Timer) -> None:
        second = max(second_of(at_ms), int(self.meta["cursor_s"]))
        minute_key = self._minute_key(second // 60)
        summary = self.entries.get(minute_key) or {}
        pages, fired = summary.get(str(second), [0, 0])
        page = self.entries.get(self._page_key(second, pages - 1)) if pages else None
        if page is None or len(page["timers"]) >= PAGE:
            page, pages = {"timers": []}, pages + 1
        page["timers"].append(timer)
        self.entries.put(self._page_key(second, pages - 1), page)
        summary[str(second)] = [pages, fired]
        self.entries.put(minute_key, summary)
        self.meta["pending"] = int(self.meta["pending"]) + 1
        due = self.meta["next_s"]
        self.meta["next_s"] = second if due is None else min(int(due), second)

    def next_ms(self) -> int | None:
        due = self.meta["next_s"]
        return None if due is None else int(due) * 1000

    def fire(self, now_ms: int, max_pages: int) -> tuple[list[Timer], bool]:
        """The timers due at ``now_ms``, at most ``max_pages`` pages; and whether more are due."""
        fired: list[Timer] = []
        budget = max_pages
        while (due := self.next_ms()) is not None and due <= now_ms and budget > 0:
            second = int(self.meta["next_s"])
            minute_key = self._minute_key(second // 60)
            summary = self.entries.get(minute_key) or {}
            pages, done = summary.get(str(second), [0, 0])
            while done < pages and budget > 0:
                key = self._page_key(second, done)
                timers = (self.entries.get(key) or {"timers": []})["timers"]
                fired.extend(timers)
                self.meta["pending"] = max(int(self.meta["pending"]) - len(timers), 0)
                self.entries.delete(key)
                done, budget = done + 1, budget - 1
            if done < pages:
                summary[str(second)] = [pages, done]
                self.entries.put(minute_key, summary)
                break
            summary.pop(str(second), None)
            if summary:
                self.entries.put(minute_key, summary)
            else:
                self.entries.delete(minute_key)
            self.meta["cursor_s"] = second + 1
            self.meta["next_s"] = self._after(second, summary)
        due = self.next_ms()
        return fired, due is not None and due <= now_ms

    def _after(self, second: int, summary: dict[str, Any]) -> int | None:
        """The earliest second after ``second`` that holds timers (or a waypoint), else None."""
        if int(self.meta["pending"]) <= 0:
            return None
        later = [int(s) for s in summary if int(s) > second]
        if later:
            return min(later)
        minute = second // 60
        for ahead in range(minute + 1, minute + 1 + HORIZON_MINUTES):
            found = self.entries.get(self._minute_key(ahead))
            if found:
                return min(int(s) for s in found)
        return (minute + 1 + HORIZON_MINUTES) * 60
