"""Apache Kafka 3.9 in KRaft mode, one combined broker/controller node, from Maven Central jars."""

from __future__ import annotations

import base64
import uuid
from pathlib import Path

from confluent_kafka.admin import AdminClient

from aion.settings import KAFKA_CONTROLLER_PORT, KAFKA_PORT
from aion.stack.base import Service
from aion.stack.maven_jars import fetch_jars
from aion.stack.prerequisites import java
from aion.stack.process import port_open, run_checked

KAFKA_VERSION = "3.9.1"

LOG4J = """\
log4j.rootLogger=INFO, stdout
log4j.appender.stdout=org.apache.log4j.ConsoleAppender
log4j.appender.stdout.layout=org.apache.log4j.PatternLayout
log4j.appender.stdout.layout.ConversionPattern=[%d] %p %m (%c)%n
log4j.logger.kafka.request.logger=WARN
log4j.logger.state.change.logger=WARN
"""


def new_cluster_id() -> str:
    """A KRaft cluster id: a random UUID in URL-safe base64, never starting with "-" (the
    storage tool would read it as an option; Kafka's own Uuid.randomUuid() redraws too: one id
    in 64 did, and failed a CI run)."""
    while True:
        found = base64.urlsafe_b64encode(uuid.uuid4().bytes).rstrip(b"=").decode()
        if not found.startswith("-"):
            return found


class Kafka(Service):
    name = "kafka"
    port = KAFKA_PORT

    @property
    def address(self) -> str:
        return self.settings.kafka

    @property
    def libs(self) -> Path:
        return self.cache / f"kafka-{KAFKA_VERSION}" / "libs"

    def prepare(self) -> None:
        if (self.libs / f"kafka_2.13-{KAFKA_VERSION}.jar").exists():
            return
        fetch_jars(
            "kafka.xml",
            self.libs,
            "Fetching the Kafka jars from Maven Central",
            self.home / "logs" / "install.log",
        )

    def _properties(self) -> str:
        props = {
            "process.roles": "broker,controller",
            "node.id": "1",
            "controller.quorum.voters": f"1@127.0.0.1:{KAFKA_CONTROLLER_PORT}",
            "listeners": f"PLAINTEXT://127.0.0.1:{KAFKA_PORT},CONTROLLER://127.0.0.1:{KAFKA_CONTROLLER_PORT}",
            "advertised.listeners": f"PLAINTEXT://127.0.0.1:{KAFKA_PORT}",
            "controller.listener.names": "CONTROLLER",
            "inter.broker.listener.name": "PLAINTEXT",
            "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
            "log.dirs": str(self.data_dir / "logs"),
            "num.partitions": "1",
            "offsets.topic.replication.factor": "1",
            "offsets.topic.num.partitions": "12",
            "transaction.state.log.replication.factor": "1",
            "transaction.state.log.min.isr": "1",
            "group.initial.rebalance.delay.ms": "0",
            "auto.create.topics.enable": "false",
            # The cleaner's dedupe buffer is allocated at start; keep it small for a dev heap.
            "log.cleaner.dedupe.buffer.size": str(32 * 1024 * 1024),
        }
        return "".join(f"{k}={v}\n" for k, v in props.items())

    def start(self) -> None:
        self.check_port_free()
        self.data_dir.mkdir(parents=True, exist_ok=True)
        config = self.data_dir / "server.properties"
        config.write_text(self._properties())
        (self.data_dir / "log4j.properties").write_text(LOG4J)
        jvm = java(17)
        classpath = f"{self.libs}/*"
        if not (self.data_dir / "logs" / "meta.properties").exists():
            cluster_id = new_cluster_id()
            run_checked(
                [
                    str(jvm),
                    "-cp",
                    classpath,
                    "kafka.tools.StorageTool",
                    "format",
                    "-t",
                    cluster_id,
                    "-c",
                    str(config),
                ],
                what="Formatting Kafka's KRaft storage",
                log=self.log_file,
            )
        self.process.spawn(
            [
                str(jvm),
                f"-Xmx{self.settings.kafka_heap}",
                f"-Xms{self.settings.kafka_heap}",
                "-XX:+UseG1GC",
                "-Djava.awt.headless=true",
                f"-Dlog4j.configuration=file:{self.data_dir / 'log4j.properties'}",
                "-cp",
                classpath,
                "kafka.Kafka",
                str(config),
            ]
        )

    def healthy(self) -> bool:
        host, _, port = self.address.split(",")[0].rpartition(":")
        if not port_open(host or "127.0.0.1", int(port)):
            return False  # not listening yet: don't let librdkafka log a refused connection
        admin = AdminClient({"bootstrap.servers": self.address, "socket.timeout.ms": 2000})
        metadata = admin.list_topics(timeout=3)
        return bool(metadata.brokers)
