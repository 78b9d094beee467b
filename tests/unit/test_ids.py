"""Pooled random ids are still version-4 UUIDs and never repeat."""

from __future__ import annotations

import uuid

from aion.ids import new_id, new_uuid


def test_pooled_ids_are_random_uuids_that_do_not_repeat() -> None:
    ids = [new_id() for _ in range(2000)]  # several refills of the pool
    assert len(set(ids)) == len(ids)
    parsed = [uuid.UUID(i) for i in ids]
    assert {u.version for u in parsed} == {4}
    assert {u.variant for u in parsed} == {uuid.RFC_4122}
    assert new_uuid() != new_uuid()
