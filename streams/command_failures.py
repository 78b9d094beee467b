"""What the command processor does when handling a command raises (issue 17, finding 7).

Before this, an exception while handling one command of a batch (an S3 error looking up a
module's facts, a registry answer the codec did not expect, a bug) left the agent's body: the
commands of the batch already sent had events on Kafka and no stored state, the commands
after it were never decided, and Faust acknowledged them all.

Now the batch stops at the failing command: the commands before it are settled and stored as
usual, and the failing one is handled again, from where it stopped:

- an I/O error (the S3 store or a socket not answering) is waited out with a backoff, like a
  registry outage: the partition waits, nothing is lost;
- any other error is tried ``MAX_ATTEMPTS`` times, then the command is rejected with the code
  ``internal_error`` and the error as its reason (the caller sees it; a timer Tick, which has no
  caller, is dead-lettered), and the partition goes on.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from dataclasses import dataclass

from streams.producibility import Refusal, refusal
from streams.server_errors import is_transient

log = logging.getLogger(__name__)

INTERNAL_ERROR = "internal_error"
MAX_ATTEMPTS = 3  # of a command whose handling fails with an error that is not I/O
FIRST_DELAY_SECONDS = 0.5
MAX_DELAY_SECONDS = 10.0
TRACKED = 1024  # failing commands remembered per process, oldest forgotten first


class CommandFailed(Exception):
    """Handling the command at ``position`` of the batch raised ``__cause__``."""

    def __init__(self, position: int, command_id: str, command_type: str) -> None:
        super().__init__(f"{command_type} {command_id} failed")
        self.position = position
        self.command_id = command_id
        self.command_type = command_type


@dataclass(frozen=True)
class Retry:
    """What to do next: wait ``delay`` seconds, then handle the batch again from the failed
    command; ``rejected`` when that command is now to be rejected instead of handled."""

    delay: float
    rejected: Refusal | None


class Failures:
    """How many times each failing command failed, bounded."""

    def __init__(self, size: int = TRACKED) -> None:
        self.size = size
        self.counts: OrderedDict[str, int] = OrderedDict()

    def record(self, failed: CommandFailed) -> Retry:
        error = failed.__cause__ or failed
        count = self.counts.get(failed.command_id, 0) + 1
        self.counts[failed.command_id] = count
        self.counts.move_to_end(failed.command_id)
        while len(self.counts) > self.size:
            self.counts.popitem(last=False)
        delay = min(FIRST_DELAY_SECONDS * 2 ** (count - 1), MAX_DELAY_SECONDS)
        if is_transient(error):
            log.warning(
                "handling %s waits for a server (%s: %s); attempt %d, again in %.1f s",
                failed,
                type(error).__name__,
                error,
                count,
                delay,
            )
            return Retry(delay, None)
        if count < MAX_ATTEMPTS:
            log.warning(
                "handling %s raised (%r); attempt %d, again in %.1f s", failed, error, count, delay
            )
            return Retry(delay, None)
        log.error("handling %s raised %d times; rejected", failed, count, exc_info=error)
        self.counts.pop(failed.command_id, None)
        return Retry(0.0, refusal(INTERNAL_ERROR, f"{type(error).__name__}: {error}"))
