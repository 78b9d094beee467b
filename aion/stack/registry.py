"""Apicurio Registry 3 from Maven Central, serving the Confluent-compatible API.

Its storage is an H2 file under the stack's data folder, so schema ids survive a restart
(events already on Kafka name those ids). Apicurio 3.3 is compiled for Java 21.
"""

from __future__ import annotations

import tarfile
from pathlib import Path

import httpx

from aion.settings import REGISTRY_MANAGEMENT_PORT, REGISTRY_PORT
from aion.stack.base import Service
from aion.stack.prerequisites import java, which
from aion.stack.process import run_checked

APICURIO_VERSION = "3.3.3"
COMPATIBILITY = "BACKWARD_TRANSITIVE"
# Apicurio 3.3.3 now and then never writes the empty 404 its ccompat API gives for a path it
# does not implement (Confluent's "associations" API, which confluent-kafka 2.16's default
# deserializer asks on every topic), though its access log records it. The client, which sets
# no timeout, then waits on that kept-alive connection for Quarkus' idle timeout: 30 minutes
# by default. Closed after 5 s instead, the client retries on a new connection and goes on
# (tests/stack/test_stock_consumer.py reproduces it).
IDLE_TIMEOUT = "5s"


class Registry(Service):
    name = "registry"
    port = REGISTRY_PORT
    ready_timeout = 120.0

    @property
    def address(self) -> str:
        return self.settings.registry

    @property
    def app_dir(self) -> Path:
        return self.cache / f"apicurio-registry-{APICURIO_VERSION}"

    def prepare(self) -> None:
        java(21, self.settings.registry_java)
        if (self.app_dir / "quarkus-run.jar").exists():
            return
        download = self.cache / "downloads"
        run_checked(
            [
                str(which("mvn")),
                "-B",
                "-q",
                "dependency:copy",
                f"-Dartifact=io.apicurio:apicurio-registry-app:{APICURIO_VERSION}:tar.gz:all",
                f"-DoutputDirectory={download}",
            ],
            what="Fetching Apicurio Registry from Maven Central (about 160 MB)",
            log=self.home / "logs" / "install.log",
        )
        archive = download / f"apicurio-registry-app-{APICURIO_VERSION}-all.tar.gz"
        partial = self.app_dir.with_suffix(".partial")
        with tarfile.open(archive) as tar:
            tar.extractall(partial, filter="data")
        partial.rename(self.app_dir)
        archive.unlink()

    def start(self) -> None:
        self.check_port_free()
        self.data_dir.mkdir(parents=True, exist_ok=True)
        props = {
            "quarkus.http.host": "127.0.0.1",
            "quarkus.http.port": REGISTRY_PORT,
            "quarkus.management.host": "127.0.0.1",
            "quarkus.management.port": REGISTRY_MANAGEMENT_PORT,
            "apicurio.storage.kind": "sql",
            "apicurio.storage.sql.kind": "h2",
            "apicurio.datasource.url": f"jdbc:h2:file:{self.data_dir / 'registry'}",
            "apicurio.datasource.username": "sa",
            "apicurio.datasource.password": "sa",
            "quarkus.http.idle-timeout": IDLE_TIMEOUT,
        }
        self.process.spawn(
            [
                str(java(21, self.settings.registry_java)),
                f"-Xmx{self.settings.registry_heap}",
                "-XX:+UseSerialGC",
                *(f"-D{k}={v}" for k, v in props.items()),
                "-jar",
                str(self.app_dir / "quarkus-run.jar"),
            ],
            cwd=self.data_dir,
        )

    def healthy(self) -> bool:
        response = httpx.get(f"{self.address}/subjects", timeout=3)
        return response.status_code == 200

    def after_ready(self) -> None:
        if self.external:
            return  # compatibility is then set per subject when our schemas are registered
        response = httpx.put(
            f"{self.address}/config", json={"compatibility": COMPATIBILITY}, timeout=10
        )
        response.raise_for_status()
