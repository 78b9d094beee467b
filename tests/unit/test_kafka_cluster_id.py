"""The KRaft cluster id never looks like an option to Kafka's storage tool."""

from __future__ import annotations

import base64
import uuid

import pytest

from aion.stack import kafka


def test_a_cluster_id_is_a_uuid_and_never_starts_with_a_dash(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    dashed = uuid.UUID(bytes=base64.urlsafe_b64decode("-TWMSx-KRay8Ndw0h1lgLw=="))
    plain = uuid.UUID(bytes=base64.urlsafe_b64decode("TWMSx-KRay8Ndw0h1lgLwA=="))
    draws = iter([dashed, dashed, plain])
    monkeypatch.setattr(kafka.uuid, "uuid4", lambda: next(draws))
    assert kafka.new_cluster_id() == "TWMSx-KRay8Ndw0h1lgLwA"
