"""Every setting Aion reads, from environment variables prefixed ``AION_``.

A service whose address is given here is taken as external: the local stack does not start it.
Unset addresses mean "embedded": the stack starts that server on the private port below.
"""

from __future__ import annotations

from functools import cached_property
from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

# Private ports of the embedded stack; chosen away from the usual defaults so that a developer's
# own Kafka, Postgres or Redis on the standard ports never collides with ours.
KAFKA_PORT = 19092
KAFKA_CONTROLLER_PORT = 19093
REGISTRY_PORT = 18081
REGISTRY_MANAGEMENT_PORT = 19001
POSTGRES_PORT = 15432
REDIS_PORT = 16379
S3_PORT = 19000
OIDC_PORT = 18090
# Prometheus endpoints of the process roles that have no HTTP server of their own (the API
# serves /metrics on its port). AION_METRICS_PORT overrides one process's port; 0 turns it off.
METRICS_PORTS = {"worker": 18101, "kernel": 18102, "projector": 18103}
# Where each server of the embedded stack listens: the address a service has when none is given.
EMBEDDED = {
    "kafka": f"127.0.0.1:{KAFKA_PORT}",
    "registry": f"http://127.0.0.1:{REGISTRY_PORT}/apis/ccompat/v7",
    "postgres": f"postgresql://aion@127.0.0.1:{POSTGRES_PORT}/aion",
    "redis": f"redis://127.0.0.1:{REDIS_PORT}/0",
    "s3": f"127.0.0.1:{S3_PORT}",
    "oidc": f"http://127.0.0.1:{OIDC_PORT}/aion",
}
# The embedded MinIO's secret; it is in this repository, so it protects nothing elsewhere.
DEFAULT_S3_SECRET = "aion-local-secret"


class Settings(BaseSettings):
    """Aion's configuration. ``docs/configuration.md`` and the README list each variable."""

    model_config = SettingsConfigDict(env_prefix="AION_", extra="ignore")

    home: Path = Field(default=Path(".aion"), description="Data and logs of the local stack.")
    cache_dir: Path = Field(
        default=Path.home() / ".cache" / "aion",
        description="Downloaded jars and built binaries, shared by every stack home.",
    )

    kafka_bootstrap: str | None = Field(default=None, description="External Kafka bootstrap.")
    schema_registry_url: str | None = Field(default=None, description="Confluent-compatible URL.")
    database_url: str | None = Field(default=None, description="Postgres conninfo URL.")
    redis_url: str | None = Field(default=None, description="Redis URL.")
    s3_endpoint: str | None = Field(default=None, description="S3 endpoint, host:port.")
    s3_access_key: str = "aion"
    s3_secret_key: str = DEFAULT_S3_SECRET
    s3_bucket: str = "aion"
    s3_secure: bool = False
    qdrant_url: str | None = Field(default=None, description="Qdrant server; else embedded.")
    qdrant_path: Path | None = Field(default=None, description="Embedded Qdrant folder.")
    embedder: Literal["minilm", "hashed"] = Field(
        default="minilm",
        description="Sentence embedder of the Qdrant read model: all-MiniLM-L6-v2 (int8 ONNX,"
        " offline) or hashed trigrams (no model; for fast tests). Each has its own collection.",
    )

    api_host: str = "127.0.0.1"
    api_port: int = 8000
    max_body_bytes: int = 64 * 1024
    max_module_bytes: int = 10 * 1024 * 1024
    max_batch_bytes: int = Field(
        default=4 * 1024 * 1024, description="Body limit of POST .../tasks/batch."
    )
    topic_partitions: int = 6
    topic_replication: int = 1
    kafka_heap: str = "768m"
    registry_heap: str = "512m"
    registry_java: Path | None = Field(default=None, description="java (>= 21) for Apicurio.")
    log_level: str = "INFO"
    worker_id: str = Field(
        default="0", description="Names this worker's RocksDB folder; unique per machine."
    )
    watchdog_grace_ms: int = Field(
        default=10_000,
        description="A started run silent for its timeout plus this is failed as worker_lost.",
    )
    kernel_concurrency: int = Field(
        default=8,
        description="Runs a kernel worker executes at once (threads); a run's thread also"
        " stores its output in S3, so more threads than cores keep the cores busy.",
    )
    projector_batch: int = Field(
        default=500, description="Events a projection applies per Postgres transaction."
    )
    tick_interval: float = Field(
        default=1.0, description="Seconds between the orchestrator timer's looks at due work."
    )

    oidc_issuer: str | None = Field(
        default=None,
        description="OpenID Connect issuer URL; its discovery document names the JWKS. Unset:"
        " the local stack's provider.",
    )
    oidc_audience: str = Field(default="aion", description="The `aud` every token must carry.")
    oidc_algorithms: str = Field(
        default="RS256,ES256,PS256",
        description="Comma-separated signature algorithms accepted (never `none` or HMAC).",
    )
    oidc_leeway_s: int = Field(default=30, description="Clock skew allowed on exp, nbf and iat.")
    oidc_client_id: str = Field(default="aion-console", description="The console's client id.")
    oidc_tenant_claim: str = Field(default="tenant", description="Claim naming the tenant.")
    oidc_roles_claim: str = Field(default="roles", description="Claim listing the roles.")
    jwks_refresh_min_s: float = Field(
        default=10.0, description="At most one JWKS refetch per this many seconds (unknown kid)."
    )
    oidc_cache_default_s: float = Field(
        default=300.0,
        description="How long the JWKS and discovery document are kept when the issuer sends"
        " no Cache-Control max-age.",
    )
    oidc_cache_min_s: float = Field(
        default=60.0, description="Floor of a JWKS or discovery document's cache lifetime."
    )
    oidc_cache_max_s: float = Field(
        default=3600.0,
        description="Ceiling of their cache lifetime: a key the issuer removed is trusted at"
        " most this long.",
    )
    session_ttl_s: int = Field(default=8 * 3600, description="Browser session lifetime.")
    rate_tenant_per_s: float = Field(default=200.0, description="Requests/s per tenant.")
    rate_tenant_burst: int = Field(default=400, description="Burst per tenant.")
    rate_caller_per_s: float = Field(default=100.0, description="Requests/s per token or key.")
    rate_caller_burst: int = Field(default=200, description="Burst per token or API key.")
    audit_denial_window_s: float = Field(
        default=60.0,
        gt=0,
        description="Refused requests of one caller, tenant and action within this window are"
        " one audit entry with a count (api/denials.py).",
    )
    redis_socket_timeout_s: float = Field(
        default=5.0, description="A Redis command that gets no answer within this fails."
    )
    redis_connect_timeout_s: float = Field(
        default=3.0, description="A Redis connection not established within this fails."
    )
    redis_max_connections: int = Field(
        default=64,
        description="Connections a process's Redis pool may open; beyond, a request waits up"
        " to the socket timeout for one, then fails.",
    )
    sse_streams_per_caller: int = Field(
        default=4, description="Live event streams one caller may hold open at once (429)."
    )
    sse_streams_max: int = Field(
        default=256,
        description="Live event streams one API process holds at once (503 beyond); each pins"
        " a connection of their own Redis pool, apart from the one every request uses.",
    )
    insecure_dev: bool = Field(
        default=False,
        description="Start with development defaults (local or http OIDC issuer, default S3"
        " secret, plaintext S3) although services are external. Never in production.",
    )
    metrics_port: int | None = Field(
        default=None,
        description="This process's Prometheus port (worker, kernel, projector); 0: none.",
    )
    trace_file: Path | None = Field(
        default=None,
        description="Write finished spans as JSON lines to this file (tests, debugging).",
    )

    @property
    def stack_dir(self) -> Path:
        return self.home.resolve()

    @cached_property
    def kafka(self) -> str:
        return self.kafka_bootstrap or EMBEDDED["kafka"]

    @cached_property
    def registry(self) -> str:
        return self.schema_registry_url or EMBEDDED["registry"]

    @cached_property
    def database(self) -> str:
        return self.database_url or EMBEDDED["postgres"]

    @cached_property
    def redis(self) -> str:
        return self.redis_url or EMBEDDED["redis"]

    @cached_property
    def s3(self) -> str:
        return self.s3_endpoint or EMBEDDED["s3"]

    @cached_property
    def qdrant_location(self) -> str:
        """A server URL, or the folder of the embedded local mode."""
        if self.qdrant_url:
            return self.qdrant_url
        return str(self.qdrant_path or self.stack_dir / "qdrant")

    @cached_property
    def issuer(self) -> str:
        return self.oidc_issuer or EMBEDDED["oidc"]

    @property
    def algorithms(self) -> tuple[str, ...]:
        return tuple(a.strip() for a in self.oidc_algorithms.split(",") if a.strip())

    def metrics_port_of(self, role: str) -> int:
        """The Prometheus port of a process role (0: none)."""
        if self.metrics_port is not None:
            return self.metrics_port
        return METRICS_PORTS.get(role, 0)

    @field_validator(
        "oidc_issuer",
        "kafka_bootstrap",
        "schema_registry_url",
        "database_url",
        "redis_url",
        "s3_endpoint",
        "qdrant_url",
        mode="before",
    )
    @classmethod
    def _blank_is_unset(cls, value: object) -> object:
        """`export AION_REDIS_URL=` means "not set", not "external at an empty address"."""
        return None if isinstance(value, str) and not value.strip() else value

    def external(self) -> dict[str, bool]:
        """Which services were pointed elsewhere (and so are not started by the stack)."""
        return {
            "kafka": self.kafka_bootstrap is not None,
            "registry": self.schema_registry_url is not None,
            "postgres": self.database_url is not None,
            "redis": self.redis_url is not None,
            "s3": self.s3_endpoint is not None,
            "qdrant": self.qdrant_url is not None,
            "oidc": self.oidc_issuer is not None,
        }

    def outside_services(self) -> list[str]:
        """The data services given an address other than the embedded stack's own.

        Unlike ``external()``, an address equal to the stack's (what `aion stack env` exports)
        is still the local stack. The OIDC issuer is not counted: it is what gets checked."""
        given = {
            "kafka": self.kafka_bootstrap,
            "registry": self.schema_registry_url,
            "postgres": self.database_url,
            "redis": self.redis_url,
            "s3": self.s3_endpoint,
            "qdrant": self.qdrant_url,
        }
        return [
            name
            for name, address in given.items()
            if address is not None and address.rstrip("/") != EMBEDDED.get(name)
        ]

    def client_env(self) -> dict[str, str]:
        """The variables that point another shell or tool at this configuration."""
        return {
            "AION_HOME": str(self.stack_dir),
            "AION_KAFKA_BOOTSTRAP": self.kafka,
            "AION_SCHEMA_REGISTRY_URL": self.registry,
            "AION_DATABASE_URL": self.database,
            "AION_REDIS_URL": self.redis,
            "AION_S3_ENDPOINT": self.s3,
            "AION_S3_ACCESS_KEY": self.s3_access_key,
            "AION_S3_SECRET_KEY": self.s3_secret_key,
            "AION_S3_BUCKET": self.s3_bucket,
            "AION_S3_SECURE": str(self.s3_secure).lower(),
            "AION_QDRANT_URL" if self.qdrant_url else "AION_QDRANT_PATH": self.qdrant_location,
            # The searching process must embed queries as the projector embedded the points.
            "AION_EMBEDDER": self.embedder,
            "AION_OIDC_ISSUER": self.issuer,
        }


def load() -> Settings:
    return Settings()
