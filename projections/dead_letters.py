"""Events a projection cannot apply go to ``aion.deadletter``, with the error, before its
position moves past them: nothing is skipped silently (issue 17, finding 13).

The letter is the event's own key and bytes, with the headers of every dead letter
(``aion-error``, ``aion-source-topic``, ``-partition``, ``-offset``, ``aion-failed-at``) and
``aion-projection``, the projection that could not apply it (the other projections of the same
topic may have). ``aion dlq list`` shows it; ``aion dlq replay`` produces the event again to its
events topic, where the projections' version guards let the one that missed it apply it and
the others ignore the copy.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from confluent_kafka import Message, Producer

from aion.metrics import DEADLETTERS
from schemas.topics import DEADLETTER, producer_config

ACK_TIMEOUT_S = 30
log = logging.getLogger(__name__)


class DeadLetterNotSent(ConnectionError):
    """Kafka did not acknowledge the letter: transient, the event is tried again later."""


def letter_headers(
    message: Message, projection: str, error: BaseException
) -> dict[str, str | bytes | None]:
    return {
        "aion-error": f"{type(error).__name__}: {error}"[:2000],
        "aion-source-topic": str(message.topic()),
        "aion-source-partition": str(message.partition()),
        "aion-source-offset": str(message.offset()),
        "aion-failed-at": str(int(time.time() * 1000)),
        "aion-projection": projection,
    }


class ProjectionDeadLetters:
    def __init__(self, kafka: str, projection: str) -> None:
        self.projection = projection
        self.producer = Producer(producer_config(kafka, **{"enable.idempotence": True}))

    def send(self, message: Message, error: BaseException) -> None:
        """Produce the letter and wait for its acknowledgement (or raise DeadLetterNotSent)."""
        failures: list[Any] = []

        def delivered(err: Any, _msg: Any) -> None:
            if err is not None:
                failures.append(err)

        self.producer.produce(
            DEADLETTER,
            key=message.key(),
            value=message.value(),
            headers=letter_headers(message, self.projection, error),
            on_delivery=delivered,
        )
        if self.producer.flush(ACK_TIMEOUT_S) or failures:
            raise DeadLetterNotSent(f"dead letter not acknowledged: {failures or 'timeout'}")
        DEADLETTERS.labels(str(message.topic())).inc()
        log.error(
            "%s dead-lettered %s[%s]@%s: %s",
            self.projection,
            message.topic(),
            message.partition(),
            message.offset(),
            error,
        )

    def close(self) -> None:
        self.producer.flush(5)
