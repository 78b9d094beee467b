"""Faust's Kafka consumer, with the broker's wait for an empty fetch cut from 1.5 s to 10 ms.

Faust builds its worker consumer with aiokafka's ``fetch_max_wait_ms=1500``, fixed. aiokafka
keeps one fetch in flight per broker, and a fetch names only the partitions with nothing
buffered: while the command processor worked through a batch of one tenant's partition, the
fetch in flight named the other, idle partitions, and the broker held it for up to 1.5 s. The
tenant's next commands (the kernel's reports, already on the broker) waited for it: a batch of
100 tasks lost ~1 s between its submissions and their reports (issue 16, the stage timestamps
of decision 53). With 10 ms an idle partition costs the broker at most 100 empty fetches a
second.
"""

from __future__ import annotations

import logging
from typing import Any

from faust.transport.drivers import aiokafka as faust_aiokafka

FETCH_MAX_WAIT_MS = 10
log = logging.getLogger(__name__)


class _ConsumerThread(faust_aiokafka.AIOKafkaConsumerThread):
    def _create_worker_consumer(self, transport: Any) -> Any:
        consumer = super()._create_worker_consumer(transport)
        # Read by AIOKafkaConsumer.start() when it makes its fetcher, after this.
        consumer._fetch_max_wait_ms = FETCH_MAX_WAIT_MS
        return consumer


class _Consumer(faust_aiokafka.Consumer):
    def _new_consumer_thread(self) -> faust_aiokafka.AIOKafkaConsumerThread:
        return _ConsumerThread(self, loop=self.loop, beacon=self.beacon)

    async def _add_gap(self, tp: Any, offset_from: int, offset_to: int) -> None:
        # Faust counts skipped offsets as handled. Our command topics have no control records
        # and are not compacted, so a gap means records were skipped: say so loudly.
        log.warning(
            "consumer skipped %s offsets %d-%d (Faust acks them)", tp, offset_from, offset_to
        )
        await super()._add_gap(tp, offset_from, offset_to)


class Transport(faust_aiokafka.Transport):
    """Faust's aiokafka transport with the consumer above."""

    Consumer = _Consumer
