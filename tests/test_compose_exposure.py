"""compose/ publishes nothing beyond the host, and its Aion processes start only because the
file says, in so many words, that its development defaults are meant (issue 17, finding 11)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
import yaml

from aion.insecure_defaults import InsecureSettings, refuse_insecure
from aion.settings import Settings

COMPOSE = Path(__file__).resolve().parents[1] / "compose" / "docker-compose.yml"
AION_SERVICES = ("aion-api", "aion-worker", "aion-kernel", "aion-projector")


@pytest.fixture(scope="module")
def services() -> dict[str, Any]:
    return dict(yaml.safe_load(COMPOSE.read_text())["services"])


def test_every_published_port_is_bound_to_loopback(services: dict[str, Any]) -> None:
    """Kafka, the registry, the mock issuer, Qdrant and Grafana let anyone in: a published
    port without a host address would open them to the whole network."""
    unbound = [
        f"{name}: {spec}"
        for name, service in services.items()
        for spec in service.get("ports", [])
        if not str(spec).startswith("127.0.0.1:")
    ]
    assert unbound == []


@pytest.mark.parametrize("service", AION_SERVICES)
def test_aion_processes_start_only_with_the_insecure_dev_flag(
    services: dict[str, Any], service: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in [name for name in os.environ if name.upper().startswith("AION_")]:
        monkeypatch.delenv(name)
    env = {k: str(v) for k, v in services[service]["environment"].items()}
    assert env.pop("AION_INSECURE_DEV") == "1"
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(InsecureSettings):
        refuse_insecure(Settings())
    monkeypatch.setenv("AION_INSECURE_DEV", "1")
    refuse_insecure(Settings())
