"""The embedded local stack: real servers, status, idempotent up, clear failures."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from aion.settings import Settings
from aion.stack.manager import Stack
from aion.stack.process import StackError
from aion.stack.redis import Redis

ROOT = Path(__file__).resolve().parents[2]


def aion(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "aion", *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=env,
        timeout=120,
    )


def test_every_service_is_healthy(stack: Stack) -> None:
    rows = {r.name: r for r in stack.status()}
    assert set(rows) == {"postgres", "redis", "s3", "kafka", "registry", "qdrant", "oidc"}
    assert all(r.healthy for r in rows.values()), rows
    for name in ("postgres", "redis", "s3", "kafka", "registry"):
        assert rows[name].pid is not None and rows[name].mode == "embedded"


def test_status_json_for_scripts(stack: Stack) -> None:
    result = aion("stack", "status", "--json")
    assert result.returncode == 0, result.stderr
    rows = {r["name"]: r for r in json.loads(result.stdout)}
    assert rows["kafka"]["address"] == "127.0.0.1:19092"
    assert rows["kafka"]["healthy"] is True
    assert isinstance(rows["postgres"]["pid"], int)


def test_up_twice_is_harmless(stack: Stack) -> None:
    before = {r.name: r.pid for r in stack.status()}
    stack.up()
    assert {r.name: r.pid for r in stack.status()} == before


def test_stack_env_points_a_shell_at_the_stack(stack: Stack) -> None:
    result = aion("stack", "env")
    assert result.returncode == 0
    exports = dict(
        line.removeprefix("export ").split("=", 1) for line in result.stdout.splitlines()
    )
    assert exports["AION_KAFKA_BOOTSTRAP"] == "127.0.0.1:19092"
    assert exports["AION_SCHEMA_REGISTRY_URL"].endswith("/apis/ccompat/v7")


def test_a_port_in_use_gets_a_clear_message(stack: Stack, tmp_path: Path) -> None:
    """A second stack home on the same ports must not start over the running Redis."""
    other = Redis(Settings(home=tmp_path))
    with pytest.raises(StackError, match=r"port 16379 for redis is already in use.*AION_REDIS_URL"):
        other.start()


def test_status_of_an_unstarted_home_says_not_running(tmp_path: Path) -> None:
    other = Stack(Settings(home=tmp_path))
    redis = other.service("redis").status()
    assert redis.pid is None
    # The port answers (the session's Redis), but this home started nothing.
    assert other.service("kafka").process.pid() is None


def test_down_stops_only_what_up_started(tmp_path: Path, stack: Stack) -> None:
    """A home that started nothing stops nothing, even with the servers running."""
    assert Stack(Settings(home=tmp_path)).down() == []
    assert all(r.healthy for r in stack.status())


def test_a_server_that_dies_at_start_shows_its_log(tmp_path: Path, stack: Stack) -> None:
    class BrokenRedis(Redis):
        port = 16999
        ready_timeout = 15

        @property
        def address(self) -> str:
            return "redis://127.0.0.1:16999/0"

        def start(self) -> None:
            self.process.spawn(["redis-server", "--port", "16999", "--no-such-option", "x"])

    broken = BrokenRedis(Settings(home=tmp_path))
    broken.start()
    with pytest.raises(StackError, match=r"(?s)exited during start-up.*no-such-option"):
        Stack(Settings(home=tmp_path))._wait_ready(broken, lambda _: None)


def test_an_external_service_that_is_down_is_named(tmp_path: Path, stack: Stack) -> None:
    settings = Settings(home=tmp_path, redis_url="redis://127.0.0.1:1/0")
    service = Redis(settings)
    service.ready_timeout = 1
    with pytest.raises(
        StackError, match=r"external redis at redis://127\.0\.0\.1:1/0.*AION_REDIS_URL"
    ):
        Stack(settings)._wait_ready(service, lambda _: None)


def test_s3_bucket_exists_and_stores_objects(stack: Stack, settings: Settings) -> None:
    import io

    from aion.stack.s3 import S3

    client = S3(settings).client()
    assert client.bucket_exists(settings.s3_bucket)
    client.put_object(settings.s3_bucket, "tests/hello.txt", io.BytesIO(b"hello"), 5)
    assert client.get_object(settings.s3_bucket, "tests/hello.txt").read() == b"hello"


def test_registry_enforces_backward_transitive(stack: Stack, settings: Settings) -> None:
    import httpx

    config = httpx.get(f"{settings.registry}/config", timeout=5).json()
    assert config["compatibilityLevel"] == "BACKWARD_TRANSITIVE"


def test_qdrant_embedded_mode_works(stack: Stack, settings: Settings, tmp_path: Path) -> None:
    from qdrant_client import QdrantClient
    from qdrant_client.models import Distance, PointStruct, VectorParams

    client = QdrantClient(path=str(tmp_path / "qdrant"))
    client.create_collection("probe", vectors_config=VectorParams(size=2, distance=Distance.COSINE))
    client.upsert("probe", [PointStruct(id=1, vector=[1.0, 0.0], payload={"tenant": "a"})])
    hits = client.query_points("probe", query=[1.0, 0.1], limit=1).points
    assert [h.id for h in hits] == [1]
    client.close()


def test_a_stale_pid_file_is_removed_and_reported(tmp_path: Path, stack: Stack) -> None:
    other = Stack(Settings(home=tmp_path))
    kafka = other.service("kafka")
    kafka.process.run_dir.mkdir(parents=True)
    kafka.process.pid_file.write_text("999999")  # no such process
    status = kafka.status()
    assert status.pid is None
    assert "removed a stale pid file (process 999999 is gone)" in status.detail
    assert not kafka.process.pid_file.exists()
