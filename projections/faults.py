"""Which errors a projection runner waits out, and which make an event a dead letter.

Transient: the servers a projection writes to or reads from are gone or busy (a lost or
refused Postgres connection, a deadlock, Kafka, the registry, Redis, Qdrant or the S3 store not
answering). The runner retries those with backoff, for as long as it takes, and says so in
readiness: retrying is never skipping. Anything else (a value Postgres refuses as data or as a
constraint, a projection's own exception on the event) depends on the event: after
``projections.runner.POISON_ATTEMPTS`` tries of that event alone it goes to the dead letters.
A Postgres error outside the data (22) and integrity (23) classes, a missing table or a
revoked grant for instance, is the database's state and not the event's, so it is transient.
"""

from __future__ import annotations

import httpx
import psycopg
import redis
import urllib3
from confluent_kafka import KafkaException
from minio.error import MinioException
from qdrant_client.http.exceptions import ResponseHandlingException, UnexpectedResponse

from schemas.codec import RegistryUnavailable

EVENT_SQLSTATE_CLASSES = ("22", "23")  # data exception, integrity constraint violation
TRANSIENT = (
    KafkaException,
    RegistryUnavailable,
    redis.RedisError,
    httpx.TransportError,
    urllib3.exceptions.HTTPError,
    MinioException,
    ResponseHandlingException,
    OSError,  # ConnectionError and TimeoutError included
)


def is_transient(error: BaseException) -> bool:
    if isinstance(error, psycopg.Error):
        return not (error.sqlstate or "").startswith(EVENT_SQLSTATE_CLASSES)
    if isinstance(error, UnexpectedResponse):
        return error.status_code is None or error.status_code >= 500 or error.status_code == 429
    return isinstance(error, TRANSIENT)
