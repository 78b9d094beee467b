"""Settings from AION_ variables: embedded by default, external when an address is given."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from aion import settings as settings_module
from aion.settings import Settings

SERVICES = ("kafka", "registry", "postgres", "redis", "s3", "qdrant", "oidc")


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """No AION_ variable of the developer's shell may leak into these tests."""
    for key in list(os.environ):
        if key.upper().startswith("AION_"):
            monkeypatch.delenv(key)


def test_defaults_point_at_the_embedded_private_ports() -> None:
    s = Settings()
    assert s.kafka == "127.0.0.1:19092"
    assert s.registry == "http://127.0.0.1:18081/apis/ccompat/v7"
    assert s.database == "postgresql://aion@127.0.0.1:15432/aion"
    assert s.redis == "redis://127.0.0.1:16379/0"
    assert s.s3 == "127.0.0.1:19000"
    assert s.qdrant_location == str(Path(".aion").resolve() / "qdrant")
    assert s.external() == dict.fromkeys(SERVICES, False)


def test_private_ports_avoid_the_usual_defaults() -> None:
    """A developer's own Kafka, Postgres, Redis, registry or MinIO must not collide with ours."""
    ours = {
        settings_module.KAFKA_PORT,
        settings_module.KAFKA_CONTROLLER_PORT,
        settings_module.REGISTRY_PORT,
        settings_module.REGISTRY_MANAGEMENT_PORT,
        settings_module.POSTGRES_PORT,
        settings_module.REDIS_PORT,
        settings_module.S3_PORT,
    }
    assert len(ours) == 7  # all distinct
    assert ours.isdisjoint({9092, 9093, 8081, 5432, 6379, 9000, 9001, 8080})


@pytest.mark.parametrize(
    ("variable", "service", "attribute", "value"),
    [
        ("AION_KAFKA_BOOTSTRAP", "kafka", "kafka", "broker.example:9092"),
        ("AION_SCHEMA_REGISTRY_URL", "registry", "registry", "http://registry.example:8081"),
        ("AION_DATABASE_URL", "postgres", "database", "postgresql://u@db.example:5432/aion"),
        ("AION_REDIS_URL", "redis", "redis", "redis://cache.example:6379/2"),
        ("AION_S3_ENDPOINT", "s3", "s3", "s3.example:443"),
        ("AION_QDRANT_URL", "qdrant", "qdrant_location", "http://qdrant.example:6333"),
    ],
)
def test_an_address_makes_only_that_service_external(
    monkeypatch: pytest.MonkeyPatch, variable: str, service: str, attribute: str, value: str
) -> None:
    monkeypatch.setenv(variable, value)
    s = Settings()
    assert getattr(s, attribute) == value
    assert s.external() == {name: name == service for name in SERVICES}


def test_embedded_qdrant_follows_home_or_path(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("AION_HOME", str(tmp_path / "home"))
    assert Settings().qdrant_location == str(tmp_path / "home" / "qdrant")
    monkeypatch.setenv("AION_QDRANT_PATH", str(tmp_path / "q"))
    assert Settings().qdrant_location == str(tmp_path / "q")
    assert Settings().external()["qdrant"] is False


def test_other_variables_are_read(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AION_API_PORT", "8123")
    monkeypatch.setenv("AION_S3_SECURE", "true")
    monkeypatch.setenv("AION_TOPIC_PARTITIONS", "3")
    s = Settings()
    assert (s.api_port, s.s3_secure, s.topic_partitions) == (8123, True, 3)


def _settings_from(monkeypatch: pytest.MonkeyPatch, env: dict[str, str]) -> Settings:
    for key in list(os.environ):
        if key.startswith("AION_"):
            monkeypatch.delenv(key)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    return Settings()


def _addresses(s: Settings) -> dict[str, object]:
    return {
        "stack_dir": s.stack_dir,
        "kafka": s.kafka,
        "registry": s.registry,
        "database": s.database,
        "redis": s.redis,
        "s3": s.s3,
        "s3_access_key": s.s3_access_key,
        "s3_secret_key": s.s3_secret_key,
        "s3_bucket": s.s3_bucket,
        "qdrant": s.qdrant_location,
    }


def test_client_env_keys_are_aion_variables() -> None:
    env = Settings().client_env()
    assert all(key.startswith("AION_") for key in env)
    assert all(isinstance(value, str) for value in env.values())
    assert "AION_QDRANT_PATH" in env and "AION_QDRANT_URL" not in env


def test_client_env_round_trips_the_embedded_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    original = Settings()
    rebuilt = _settings_from(monkeypatch, original.client_env())
    assert _addresses(rebuilt) == _addresses(original)
    assert rebuilt.client_env() == original.client_env()


def test_client_env_round_trips_external_services(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("AION_HOME", str(tmp_path))
    monkeypatch.setenv("AION_KAFKA_BOOTSTRAP", "k1:9092,k2:9092")
    monkeypatch.setenv("AION_DATABASE_URL", "postgresql://x@db:5432/y")
    monkeypatch.setenv("AION_QDRANT_URL", "http://q:6333")
    monkeypatch.setenv("AION_S3_SECRET_KEY", "s3cr3t")
    original = Settings()
    env = original.client_env()
    assert "AION_QDRANT_URL" in env and "AION_QDRANT_PATH" not in env
    rebuilt = _settings_from(monkeypatch, env)
    assert _addresses(rebuilt) == _addresses(original)
    assert rebuilt.external()["kafka"] is True
    assert rebuilt.external()["qdrant"] is True


def test_client_env_carries_s3_secure(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AION_S3_ENDPOINT", "s3.example:443")
    monkeypatch.setenv("AION_S3_SECURE", "true")
    rebuilt = _settings_from(monkeypatch, Settings().client_env())
    assert rebuilt.s3_secure is True


def test_empty_address_is_not_external(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AION_KAFKA_BOOTSTRAP", "")
    s = Settings()
    assert s.kafka == "127.0.0.1:19092"
    assert s.external()["kafka"] is False
