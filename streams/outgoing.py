"""A command's messages and documents made ready to send: encoded and checked, or refused.

Everything of a command is encoded (Avro, the registry's schema ids) and measured before the
first of its messages is sent: a value that does not fit its schema, or a message or state
document larger than the limit it would meet (the producer's max request size, the topic's
``max.message.bytes`` as Aion creates it), refuses the command while it is being planned, so
nothing of it reaches the broker or the batch's overlay (decision 49).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

import orjson

from schemas.topics import max_message_bytes
from streams import failpoints
from streams.plan import Emission
from streams.producibility import Refusal, record_size, too_large, unencodable

# Forces a value that cannot fit its schema (a crash test's fault, never set in production).
UNENCODABLE_FAILPOINT = "unencodable"

Encode = Callable[[str, str, dict[str, Any]], Awaitable[bytes]]


@dataclass(frozen=True)
class Limits:
    """The sizes a record must stay under: the client's, then the topic's."""

    max_request_size: int

    def of(self, topic: str) -> int:
        return min(self.max_request_size, max_message_bytes(topic))


@dataclass(frozen=True)
class Outgoing:
    """One message as it will be sent."""

    emission: Emission
    key: bytes
    value: bytes
    headers: dict[str, bytes]


def misfit(value: dict[str, Any]) -> dict[str, Any]:
    """The value with a field of the wrong type: what the failpoint sends to the encoder."""
    return {**value, "envelope": {**value["envelope"], "aggregate_version": "not a long"}}


async def prepare(
    emissions: list[Emission],
    encode: Encode,
    headers: Mapping[str, bytes],
    limits: Limits,
    command_type: str | None,
) -> tuple[list[Outgoing], Refusal | None]:
    """Every emission encoded and measured, or the first reason one cannot be produced.

    ``encode`` waits out a registry outage itself (that is never a refusal); any other error
    of the encoder means the value does not fit its schema. ``command_type`` names the
    command for the failpoints (None: a rejection, which no failpoint touches)."""
    forced = command_type is not None and failpoints.active(UNENCODABLE_FAILPOINT, command_type)
    ready = []
    for emission in emissions:
        value = misfit(emission.value) if forced else emission.value
        try:
            data = await encode(emission.topic, emission.record, value)
        except (ValueError, TypeError, AttributeError, KeyError, OverflowError) as exc:
            return [], unencodable(emission.record, emission.topic, exc)
        message_headers = {"aion-type": emission.record.encode(), **headers}
        key = emission.key.encode()
        size = record_size(key, data, list(message_headers.items()))
        refused = too_large(emission.record, emission.topic, size, limits.of(emission.topic))
        if refused:
            return [], refused
        ready.append(Outgoing(emission, key, data, message_headers))
    return ready, None


def encode_writes(
    writes: Mapping[str, dict[str, Any] | None], limits: Limits
) -> tuple[dict[str, bytes | None], Refusal | None]:
    """The documents as stored (JSON; None deletes one), or a refusal when one would not fit
    its table's changelog."""
    encoded = {
        key: None if document is None else orjson.dumps(document, option=orjson.OPT_NON_STR_KEYS)
        for key, document in writes.items()
    }
    for key, raw in encoded.items():
        size = record_size(key.encode(), raw, [])
        refused = too_large(f"state document {key}", "its table's changelog", size, limits.of(""))
        if refused:
            return {}, refused
    return encoded, None
