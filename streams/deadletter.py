"""Poison messages go to ``aion.deadletter`` with the error and their source position.

A dead letter is the last resort of a partition that must go on, so it must always be
produced: a broker that does not answer is waited out; a broker that refuses the original
bytes (too large for the dead-letter topic) gets the letter without them, the source position
in its headers still says where they are.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from aion.metrics import DEADLETTERS
from streams.producibility import is_message_refusal

log = logging.getLogger(__name__)
RETRY_MAX_SECONDS = 10.0


async def send_to_deadletter(streams: Any, message: Any, error: Exception) -> None:
    headers = {
        "aion-error": f"{type(error).__name__}: {error}"[:2000].encode(),
        "aion-source-topic": message.topic.encode(),
        "aion-source-partition": str(message.partition).encode(),
        "aion-source-offset": str(message.offset).encode(),
        "aion-failed-at": str(int(time.time() * 1000)).encode(),
    }
    log.warning(
        "dead-lettered %s[%s]@%s: %s", message.topic, message.partition, message.offset, error
    )
    DEADLETTERS.labels(str(message.topic)).inc()
    value = message.value
    delay = 0.5
    while True:
        try:
            pending = await streams.deadletter.send(key=message.key, value=value, headers=headers)
            await pending
            return
        except Exception as exc:
            if is_message_refusal(exc) and value is not None:
                log.warning("dead letter refused with its value (%s); sent without it", exc)
                headers["aion-value-dropped"] = str(len(value)).encode()
                value = None
                continue
            log.warning("dead letter not acknowledged (%s); again in %.1f s", exc, delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, RETRY_MAX_SECONDS)
