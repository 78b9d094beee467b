"""compose/ must describe the stack that Aion's settings point at, checked without Docker.

No development machine or CI run has a Docker engine, so nothing else would notice a renamed
setting, a moved port or a missing file in compose/ before a Docker user's stack failed.
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Any
from urllib.parse import SplitResult, urlsplit

import pytest
import yaml

from aion.settings import Settings

ROOT = Path(__file__).resolve().parents[1]
COMPOSE_DIR = ROOT / "compose"

AION_SERVICES = ("aion-api", "aion-worker", "aion-kernel", "aion-projector")
# The roles without an HTTP server serve Prometheus metrics on a port of their own.
METRICS_ROLES = {"aion-worker": "worker", "aion-kernel": "kernel", "aion-projector": "projector"}
EXPECTED_SERVICES = (
    *AION_SERVICES,
    "kafka",
    "schema-registry",
    "postgres",
    "redis",
    "qdrant",
    "minio",
    "minio-init",
    "otel-collector",
    "prometheus",
    "grafana",
)
OTEL_VARIABLES = frozenset({"OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_SERVICE_NAME"})

# Each address an Aion container is given, the service it must name and that service's port.
ADDRESSES = (
    ("AION_KAFKA_BOOTSTRAP", "kafka", 9092),
    ("AION_SCHEMA_REGISTRY_URL", "schema-registry", 8080),
    ("AION_DATABASE_URL", "postgres", 5432),
    ("AION_REDIS_URL", "redis", 6379),
    ("AION_S3_ENDPOINT", "minio", 9000),
    ("AION_QDRANT_URL", "qdrant", 6333),
    ("AION_OIDC_ISSUER", "oidc", 18090),
    ("OTEL_EXPORTER_OTLP_ENDPOINT", "otel-collector", 4318),  # OTLP/HTTP
)

Service = dict[str, Any]


# --- reading the files ---------------------------------------------------------------------


def load_yaml(relative: str) -> dict[str, Any]:
    with (COMPOSE_DIR / relative).open() as file:
        return yaml.safe_load(file)


def environment(service: Service) -> dict[str, str]:
    """A service's variables, whether written as a mapping or as a list of NAME=value."""
    variables = service.get("environment") or {}
    if isinstance(variables, list):
        return dict(item.split("=", 1) for item in variables)
    return {name: str(value) for name, value in variables.items()}


def address(value: str) -> SplitResult:
    """A URL or a bare host:port, split alike."""
    return urlsplit(value if "://" in value else f"//{value}")


def port_mappings(service: Service) -> set[tuple[int | None, int]]:
    """(host port, container port) of each published port; host is None when Docker picks."""
    mappings: set[tuple[int | None, int]] = set()
    for spec in service.get("ports", []):
        if isinstance(spec, dict):
            published = spec.get("published")
            mappings.add((int(published) if published else None, int(spec["target"])))
            continue
        parts = str(spec).split("/")[0].split(":")
        mappings.add((int(parts[-2]) if len(parts) > 1 else None, int(parts[-1])))
    return mappings


def container_ports(service: Service) -> set[int]:
    """Ports the service declares it listens on, to other containers or to the host."""
    exposed = {int(str(port).split("/")[0]) for port in service.get("expose", [])}
    return exposed | {container for _, container in port_mappings(service)}


def kafka_listeners(value: str) -> dict[str, SplitResult]:
    """KAFKA_LISTENERS-style 'NAME://host:port,…' by listener name."""
    listeners = (item.split("://", 1) for item in value.split(","))
    return {name: address(where) for name, where in listeners}


def bind_sources(service: Service) -> list[Path]:
    """Host paths that the service mounts (named volumes are left out)."""
    sources = []
    for volume in service.get("volumes", []):
        source = volume["source"] if isinstance(volume, dict) else volume.split(":")[0]
        if source.startswith((".", "/")):
            sources.append(COMPOSE_DIR / source)
    return sources


def settings_variables() -> set[str]:
    """The variable name of every field of Settings, as pydantic-settings reads it."""
    return {f"AION_{name.upper()}" for name in Settings.model_fields}


def scrape_targets(prometheus: dict[str, Any]) -> set[tuple[str, str]]:
    """(host:port, metrics path) of every static target Prometheus scrapes."""
    return {
        (target, job.get("metrics_path", "/metrics"))
        for job in prometheus["scrape_configs"]
        for static in job.get("static_configs", [])
        for target in static["targets"]
    }


# --- fixtures ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def services() -> dict[str, Service]:
    return load_yaml("docker-compose.yml")["services"]


@pytest.fixture(scope="module")
def collector() -> dict[str, Any]:
    return load_yaml("otel-collector.yaml")


@pytest.fixture(scope="module")
def prometheus() -> dict[str, Any]:
    return load_yaml("prometheus/prometheus.yml")


@pytest.fixture(params=AION_SERVICES)
def aion_env(request: pytest.FixtureRequest, services: dict[str, Service]) -> dict[str, str]:
    """The environment of each Aion process in turn: each one must be right, not just the API."""
    return environment(services[request.param])


@pytest.fixture(scope="module")
def api_port(services: dict[str, Service]) -> int:
    return int(environment(services["aion-api"])["AION_API_PORT"])


# --- the services and their configuration --------------------------------------------------


def test_every_expected_service_is_defined(services: dict[str, Service]) -> None:
    assert set(EXPECTED_SERVICES) - services.keys() == set()


def test_aion_variables_are_settings_fields(services: dict[str, Service]) -> None:
    """Settings ignores unknown AION_* variables, so a typo would silently change nothing."""
    used = {name for service in services.values() for name in environment(service)}
    assert {name for name in used if name.startswith("AION_")} - settings_variables() == set()


def test_aion_containers_read_only_settings_and_otel(aion_env: dict[str, str]) -> None:
    """Aion is configured by its settings alone; anything else would be dead configuration."""
    assert set(aion_env) - settings_variables() - OTEL_VARIABLES == set()


def test_aion_containers_start_no_embedded_server(
    aion_env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """An address left unset makes Aion start that server itself, inside its container."""
    for name in [name for name in os.environ if name.startswith("AION_")]:
        monkeypatch.delenv(name)
    for name, value in aion_env.items():
        monkeypatch.setenv(name, value)
    embedded = [service for service, external in Settings().external().items() if not external]
    assert embedded == []


@pytest.mark.parametrize(("variable", "service", "port"), ADDRESSES)
def test_address_names_its_service_and_port(
    aion_env: dict[str, str], variable: str, service: str, port: int
) -> None:
    target = address(aion_env[variable])
    assert (target.hostname, target.port) == (service, port)


@pytest.mark.parametrize(("service", "port"), [(service, port) for _, service, port in ADDRESSES])
def test_addressed_service_listens_on_its_port(
    services: dict[str, Service], service: str, port: int
) -> None:
    assert port in container_ports(services[service])


# --- Kafka ---------------------------------------------------------------------------------


def test_kafka_advertises_the_bootstrap_address(
    aion_env: dict[str, str], services: dict[str, Service]
) -> None:
    """Clients reconnect to the advertised address, not to the one they bootstrapped from."""
    bootstrap = address(aion_env["AION_KAFKA_BOOTSTRAP"])
    advertised = kafka_listeners(environment(services["kafka"])["KAFKA_ADVERTISED_LISTENERS"])
    advertised_addresses = {(listener.hostname, listener.port) for listener in advertised.values()}
    assert (bootstrap.hostname, bootstrap.port) in advertised_addresses


def test_kafka_listens_on_the_bootstrap_port(
    aion_env: dict[str, str], services: dict[str, Service]
) -> None:
    bootstrap = address(aion_env["AION_KAFKA_BOOTSTRAP"])
    listeners = kafka_listeners(environment(services["kafka"])["KAFKA_LISTENERS"])
    assert bootstrap.port in {listener.port for listener in listeners.values()}


def test_kafka_does_not_create_topics_on_demand(services: dict[str, Service]) -> None:
    """Topics are created with declared partitions and retention, never by a stray produce."""
    assert environment(services["kafka"])["KAFKA_AUTO_CREATE_TOPICS_ENABLE"] == "false"


# --- schema registry, Postgres, MinIO --------------------------------------------------------


def test_schema_registry_url_is_the_confluent_api(aion_env: dict[str, str]) -> None:
    """Aion's codec speaks Confluent's API, which Apicurio serves under ccompat."""
    assert address(aion_env["AION_SCHEMA_REGISTRY_URL"]).path == "/apis/ccompat/v7"


def test_database_url_names_the_user_and_database_postgres_creates(
    aion_env: dict[str, str], services: dict[str, Service]
) -> None:
    database = address(aion_env["AION_DATABASE_URL"])
    postgres = environment(services["postgres"])
    assert (database.username, database.path.lstrip("/")) == (
        postgres["POSTGRES_USER"],
        postgres["POSTGRES_DB"],
    )


def test_s3_credentials_are_the_minio_root_credentials(
    aion_env: dict[str, str], services: dict[str, Service]
) -> None:
    minio = environment(services["minio"])
    assert (aion_env["AION_S3_ACCESS_KEY"], aion_env["AION_S3_SECRET_KEY"]) == (
        minio["MINIO_ROOT_USER"],
        minio["MINIO_ROOT_PASSWORD"],
    )


def test_s3_bucket_is_the_one_minio_init_creates(
    aion_env: dict[str, str], services: dict[str, Service]
) -> None:
    assert aion_env["AION_S3_BUCKET"] == environment(services["minio-init"])["BUCKET"]


# --- the API -------------------------------------------------------------------------------


def test_api_listens_on_all_interfaces(services: dict[str, Service]) -> None:
    """The default, 127.0.0.1, is unreachable from outside the container."""
    assert environment(services["aion-api"])["AION_API_HOST"] == "0.0.0.0"


def test_api_port_is_published_on_the_same_host_port(
    services: dict[str, Service], api_port: int
) -> None:
    assert (api_port, api_port) in port_mappings(services["aion-api"])


# --- telemetry -----------------------------------------------------------------------------


@pytest.mark.parametrize("service", AION_SERVICES)
def test_otel_service_name_is_the_compose_service(
    services: dict[str, Service], service: str
) -> None:
    """Traces and metrics then carry the name an operator sees in `docker compose ps`."""
    assert environment(services[service])["OTEL_SERVICE_NAME"] == service


def test_otlp_endpoint_is_a_collector_receiver(
    aion_env: dict[str, str], collector: dict[str, Any]
) -> None:
    protocols = collector["receivers"]["otlp"]["protocols"].values()
    receiver_ports = {address(protocol["endpoint"]).port for protocol in protocols}
    assert address(aion_env["OTEL_EXPORTER_OTLP_ENDPOINT"]).port in receiver_ports


def test_collector_sends_metrics_to_its_prometheus_exporter(collector: dict[str, Any]) -> None:
    assert "prometheus" in collector["service"]["pipelines"]["metrics"]["exporters"]


def test_prometheus_scrapes_api_metrics(prometheus: dict[str, Any], api_port: int) -> None:
    assert (f"aion-api:{api_port}", "/metrics") in scrape_targets(prometheus)


def test_prometheus_scrapes_the_collector_exporter(
    prometheus: dict[str, Any], collector: dict[str, Any]
) -> None:
    exporter_port = address(collector["exporters"]["prometheus"]["endpoint"]).port
    assert (f"otel-collector:{exporter_port}", "/metrics") in scrape_targets(prometheus)


@pytest.mark.parametrize(("service", "role"), METRICS_ROLES.items())
def test_prometheus_scrapes_each_role_where_it_listens(
    prometheus: dict[str, Any], services: dict[str, Service], service: str, role: str
) -> None:
    """The role's port as Settings gives it, on all interfaces, declared, and scraped."""
    env = environment(services[service])
    settings = Settings(api_host=env.get("AION_API_HOST", "127.0.0.1"), metrics_port=None)
    port = settings.metrics_port_of(role)
    assert settings.api_host == "0.0.0.0"
    assert port in container_ports(services[service])
    assert (f"{service}:{port}", "/metrics") in scrape_targets(prometheus)


def test_prometheus_loads_the_alert_rules_it_is_given(
    prometheus: dict[str, Any], services: dict[str, Service]
) -> None:
    mounts = dict(volume.split(":")[:2] for volume in services["prometheus"]["volumes"])
    config_dir = Path(mounts["./prometheus/prometheus.yml"]).parent
    for rule_file in prometheus["rule_files"]:
        assert mounts[f"./prometheus/{rule_file}"] == str(config_dir / rule_file)


def test_grafana_loads_the_dashboards_it_is_given(services: dict[str, Service]) -> None:
    providers = load_yaml("grafana/provisioning/dashboards/aion.yml")["providers"]
    mounts = dict(volume.split(":")[:2] for volume in services["grafana"]["volumes"])
    assert {provider["options"]["path"] for provider in providers} == {
        mounts["./grafana/dashboards"]
    }
    assert sorted((COMPOSE_DIR / "grafana" / "dashboards").glob("*.json"))


def test_grafana_datasource_is_prometheus(services: dict[str, Service]) -> None:
    datasources = load_yaml("grafana/provisioning/datasources/prometheus.yml")["datasources"]
    [url] = [address(source["url"]) for source in datasources if source["type"] == "prometheus"]
    assert url.hostname == "prometheus" and url.port in container_ports(services["prometheus"])


# --- start-up order, image, files ----------------------------------------------------------


def test_dependencies_are_services(services: dict[str, Service]) -> None:
    needed = {name for service in services.values() for name in service.get("depends_on", [])}
    assert needed - services.keys() == set()


def test_waiting_for_healthy_needs_a_healthcheck(services: dict[str, Service]) -> None:
    """service_healthy on a service without a healthcheck makes `up` fail at once."""
    awaited = {
        name
        for service in services.values()
        for name, condition in (service.get("depends_on") or {}).items()
        if condition.get("condition") == "service_healthy"
    }
    assert {name for name in awaited if "healthcheck" not in services[name]} == set()


def test_aion_processes_share_one_image(services: dict[str, Service]) -> None:
    assert {services[name]["image"] for name in AION_SERVICES} == {"aion:local"}


def test_referenced_files_exist(services: dict[str, Service]) -> None:
    """A renamed config file would be mounted by Docker as an empty directory."""
    builds = [service["build"] for service in services.values() if "build" in service]
    dockerfiles = [COMPOSE_DIR / build["context"] / build["dockerfile"] for build in builds]
    mounted = [path for service in services.values() for path in bind_sources(service)]
    assert [str(path) for path in dockerfiles + mounted if not path.exists()] == []


def test_image_copies_every_package() -> None:
    """The Dockerfile copies packages one by one; a new top-level package must be added there."""
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    include = pyproject["tool"]["setuptools"]["packages"]["find"]["include"]
    packages = {pattern.rstrip("*") for pattern in include}
    copy_lines = [line.split() for line in (COMPOSE_DIR / "Dockerfile").read_text().splitlines()]
    copied = {source for words in copy_lines if words[:1] == ["COPY"] for source in words[1:-1]}
    assert packages - copied == set()
