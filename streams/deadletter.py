"""Poison messages go to ``aion.deadletter`` with the error and their source position."""

from __future__ import annotations

import logging
import time
from typing import Any

from aion.metrics import DEADLETTERS

log = logging.getLogger(__name__)


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
    pending = await streams.deadletter.send(key=message.key, value=message.value, headers=headers)
    await pending
