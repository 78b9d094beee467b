"""Development defaults beside external services are refused at start-up (issue 17, finding 11).

The embedded stack keeps its defaults: the session's own API, worker, projector and kernel
start on them for every stack test, which is the proof that they still start there.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from aion.insecure_defaults import InsecureSettings, insecure_settings, refuse_insecure
from aion.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
# External services with nothing insecure: each test breaks one setting of it.
SECURE = {
    "AION_KAFKA_BOOTSTRAP": "kafka.example:9093",
    "AION_DATABASE_URL": "postgresql://aion@db.example:5432/aion",
    "AION_S3_ENDPOINT": "s3.example:443",
    "AION_S3_SECURE": "true",
    "AION_S3_SECRET_KEY": "a-real-secret",
    "AION_OIDC_ISSUER": "https://login.example/realms/aion",
}


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """No AION_ variable of the developer's shell may leak into these tests."""
    for key in list(os.environ):
        if key.upper().startswith("AION_"):
            monkeypatch.delenv(key)


def settings_with(monkeypatch: pytest.MonkeyPatch, env: dict[str, str]) -> Settings:
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    return Settings()


def flagged(settings: Settings) -> list[str]:
    return [item.variable for item in insecure_settings(settings)]


def test_the_embedded_stack_keeps_its_defaults() -> None:
    settings = Settings()
    assert settings.outside_services() == []
    refuse_insecure(settings)  # does not raise


def test_a_shell_pointed_at_the_embedded_stack_is_still_embedded(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """`eval "$(aion stack env)"` sets every address, each to the local stack's own."""
    settings = settings_with(monkeypatch, Settings().client_env())
    assert settings.external()["kafka"] is True  # given, so the stack does not start it
    assert settings.outside_services() == []
    refuse_insecure(settings)


def test_secure_settings_with_external_services_start(monkeypatch: pytest.MonkeyPatch) -> None:
    settings = settings_with(monkeypatch, SECURE)
    assert settings.outside_services() == ["kafka", "postgres", "s3"]
    assert flagged(settings) == []
    refuse_insecure(settings)


@pytest.mark.parametrize(
    ("change", "variable"),
    [
        ({"AION_OIDC_ISSUER": ""}, "AION_OIDC_ISSUER"),  # unset: the local mock provider
        ({"AION_OIDC_ISSUER": "http://127.0.0.1:18090/aion"}, "AION_OIDC_ISSUER"),
        ({"AION_OIDC_ISSUER": "http://login.example/realms/aion"}, "AION_OIDC_ISSUER"),
        ({"AION_S3_SECRET_KEY": "aion-local-secret"}, "AION_S3_SECRET_KEY"),
        ({"AION_S3_SECURE": "false"}, "AION_S3_SECURE"),
    ],
)
def test_each_insecure_setting_with_external_services_is_refused(
    monkeypatch: pytest.MonkeyPatch, change: dict[str, str], variable: str
) -> None:
    settings = settings_with(monkeypatch, {**SECURE, **change})
    assert flagged(settings) == [variable]
    with pytest.raises(InsecureSettings) as refused:
        refuse_insecure(settings)
    assert variable in str(refused.value) and "AION_INSECURE_DEV=1" in str(refused.value)


@pytest.mark.parametrize(
    "variable",
    [
        "AION_KAFKA_BOOTSTRAP",
        "AION_SCHEMA_REGISTRY_URL",
        "AION_DATABASE_URL",
        "AION_REDIS_URL",
        "AION_S3_ENDPOINT",
        "AION_QDRANT_URL",
    ],
)
def test_any_one_external_service_makes_the_defaults_refused(
    monkeypatch: pytest.MonkeyPatch, variable: str
) -> None:
    settings = settings_with(monkeypatch, {variable: "http://elsewhere.example:1234"})
    assert flagged(settings) == ["AION_OIDC_ISSUER", "AION_S3_SECRET_KEY", "AION_S3_SECURE"]
    with pytest.raises(InsecureSettings):
        refuse_insecure(settings)


def test_insecure_dev_allows_them_with_a_warning(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    settings = settings_with(
        monkeypatch, {"AION_KAFKA_BOOTSTRAP": "kafka:9092", "AION_INSECURE_DEV": "1"}
    )
    refuse_insecure(settings)  # does not raise
    warned = " ".join(record.getMessage() for record in caplog.records)
    for variable in ("AION_OIDC_ISSUER", "AION_S3_SECRET_KEY", "AION_S3_SECURE"):
        assert variable in warned


@pytest.mark.parametrize("role", ["serve", "worker", "projector", "kernel"])
def test_a_role_started_on_insecure_defaults_exits_naming_each_setting(role: str) -> None:
    """The real entry point: nothing is contacted, the role exits 1 with the whole list."""
    env = {k: v for k, v in os.environ.items() if not k.upper().startswith("AION_")}
    env |= {
        "AION_KAFKA_BOOTSTRAP": "kafka.example:9092",
        "AION_OIDC_ISSUER": "http://login.example/realms/aion",
        "AION_METRICS_PORT": "0",
    }
    done = subprocess.run(
        [sys.executable, "-m", "aion", role],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode != 0, done.stderr
    for words in (
        "refusing to start",
        "kafka",
        "AION_OIDC_ISSUER",
        "is not https",
        "AION_S3_SECRET_KEY",
        "AION_S3_SECURE",
        "AION_INSECURE_DEV=1",
    ):
        assert words in done.stderr, done.stderr
