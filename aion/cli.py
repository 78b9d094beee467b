"""The `aion` command line: the local stack, the processes, and the tools around them."""

from __future__ import annotations

import json
import shlex
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from aion import settings as settings_module
from aion.insecure_defaults import InsecureSettings, refuse_insecure
from aion.progress import reporter
from aion.stack.base import ServiceStatus
from aion.stack.manager import Stack
from aion.stack.process import StackError

app = typer.Typer(no_args_is_help=True, add_completion=False, help=__doc__)
stack_app = typer.Typer(no_args_is_help=True, help="The embedded local stack of real servers.")
app.add_typer(stack_app, name="stack")
console = Console(stderr=True)


def _fail(exc: Exception) -> typer.Exit:
    console.print(f"[red]error:[/red] {exc}", highlight=False)
    return typer.Exit(code=1)


def stack_up() -> Stack:
    """Start (or find running) every embedded service, with progress on stderr."""
    stack = Stack(settings_module.load())
    with console.status("starting the local stack…") as status:
        stack.up(reporter(console, status))
    return stack


@stack_app.command("up")
def stack_up_command() -> None:
    """Install what is missing, start the servers, wait until each is ready."""
    try:
        stack = stack_up()
    except StackError as exc:
        raise _fail(exc) from exc
    _print_status(stack)


@stack_app.command("install")
def stack_install() -> None:
    """Fetch the jars and build s3s-fs (cached), without starting anything."""
    try:
        with console.status("installing the local stack's servers…") as status:
            Stack(settings_module.load()).install(reporter(console, status))
    except StackError as exc:
        raise _fail(exc) from exc


@stack_app.command("down")
def stack_down() -> None:
    """Stop the servers that `up` started (never one it did not start)."""
    stopped = Stack(settings_module.load()).down(lambda line: console.print(f"  {line}"))
    console.print(f"stopped {len(stopped)} service(s)")


@stack_app.command("status")
def stack_status(
    as_json: bool = typer.Option(False, "--json", help="Machine-readable output."),
) -> None:
    """Each service with its address, pid and health. Exit 1 if any is unhealthy."""
    stack = Stack(settings_module.load())
    rows = stack.status()
    if as_json:
        typer.echo(json.dumps([asdict(r) for r in rows], indent=2))
    else:
        _print_status(stack, rows)
        healthy = {r.name for r in rows if r.healthy}
        if {"kafka", "postgres"} <= healthy:
            _print_lag(stack.settings)
    if not all(r.healthy for r in rows):
        raise typer.Exit(code=1)


def _print_lag(settings: settings_module.Settings) -> None:
    """Each projection's lag: events on Kafka it has not applied yet."""
    from projections.lag import projection_lags
    from projections.service import topics_by_projection

    try:
        lags = projection_lags(settings.kafka, settings.database, topics_by_projection(settings))
    except Exception as exc:  # a report, not a health check: say why and go on
        console.print(f"projection lag unavailable: {exc}", highlight=False)
        return
    table = Table(title="Projections")
    table.add_column("projection")
    table.add_column("lag (events)", justify="right")
    for name, behind in sorted(lags.items()):
        table.add_row(name, str(behind))
    Console().print(table)


@stack_app.command("env")
def stack_env() -> None:
    """Shell exports that point another shell or tool at this stack: eval "$(aion stack env)"."""
    for key, value in settings_module.load().client_env().items():
        typer.echo(f"export {key}={shlex.quote(value)}")


def _print_status(stack: Stack, rows: list[ServiceStatus] | None = None) -> None:
    table = Table(title="Aion local stack")
    for column in ("service", "address", "mode", "pid", "health", "detail"):
        table.add_column(column)
    for r in rows or stack.status():
        health = "[green]healthy[/green]" if r.healthy else "[red]down[/red]"
        table.add_row(r.name, r.address, r.mode, str(r.pid or "-"), health, r.detail)
    Console().print(table)


def main() -> None:
    app()


@app.command()
def init() -> None:
    """Create the topics, register the schemas, migrate the read models (idempotent)."""
    from aion.bootstrap import bootstrap

    bootstrap(settings_module.load())
    console.print("topics, schemas and read-model tables are in place")


@app.command()
def serve(
    host: str | None = typer.Option(None, help="Interface (default AION_API_HOST)."),
    port: int | None = typer.Option(None, help="Port (default AION_API_PORT)."),
) -> None:
    """Run the HTTP API."""
    from aion import telemetry
    from api import server
    from api.app import create_app

    settings = settings_module.load()
    telemetry.setup("api", settings.log_level, settings.trace_file)
    _refuse_insecure(settings)
    server.run(create_app(settings), host or settings.api_host, port or settings.api_port)


def _refuse_insecure(settings: settings_module.Settings) -> None:
    """No role starts on development defaults beside external services (unless told to)."""
    try:
        refuse_insecure(settings)
    except InsecureSettings as exc:
        console.print(f"[red]error:[/red] {escape(str(exc))}", highlight=False, soft_wrap=True)
        raise typer.Exit(code=1) from exc


def _run_role(role: str, run: Callable[[settings_module.Settings], None]) -> None:
    """A process role: settings, JSON logging (Faust keeps its own), traces, its Prometheus
    endpoint, our topics, then run."""
    from aion import metrics, telemetry
    from aion.bootstrap import ensure_topics

    settings = settings_module.load()
    telemetry.setup(role, settings.log_level, settings.trace_file)
    _refuse_insecure(settings)
    metrics.serve(settings, role)
    ensure_topics(settings)
    run(settings)


@app.command()
def worker() -> None:
    """Run the Faust stream processors (the command processor)."""
    from streams import worker as streams_worker

    _run_role("worker", streams_worker.run)


@app.command()
def projector() -> None:
    """Run the projections into the read models."""
    from projections import service

    _run_role("projector", service.run)


@app.command()
def kernel() -> None:
    """Run a kernel worker: executes dispatched runs in the WASM sandbox."""
    from streams import kernel_worker

    _run_role("kernel", kernel_worker.run)


@app.command()
def up(
    demo: bool = typer.Option(True, help="Create the demo tenant."),
) -> None:
    """Stack + API + worker + kernel + projector in the foreground; Ctrl-C stops them."""
    from aion.foreground import run_foreground

    try:
        code = run_foreground(settings_module.load(), console, demo=demo)
    except StackError as exc:
        raise _fail(exc) from exc
    raise typer.Exit(code)


@app.command()
def bench(
    quick: bool = typer.Option(False, "--quick", help="One short pass (~1-2 min): a smoke run."),
    api: str | None = typer.Option(
        None,
        help="Measure this running API (and the roles on this machine) instead of "
        "starting our own.",
    ),
    out: Path = typer.Option(Path("bench-results"), help="Where the JSON and PNG go."),
    only: list[str] | None = typer.Option(
        None, "--only", help="Only this scenario (its number, 1-10); repeatable."
    ),
    queue_depth: int | None = typer.Option(
        None,
        "--queue-depth",
        min=1,
        help="Tasks queued before scenario 9 measures (50,000; --quick 1,000).",
    ),
) -> None:
    """Every benchmark scenario beside its baseline, in one run: a table, JSON and a plot."""
    from aion.bench import system as bench_system
    from aion.bench.run import chosen, run

    try:
        chosen(only)
    except ValueError as exc:
        raise _fail(exc) from exc
    settings = settings_module.load()
    try:
        if api:
            with bench_system.existing(settings, api) as target:
                run(target, quick, out, console, only, queue_depth)
        else:
            logs = settings.stack_dir / "logs" / "bench"
            with bench_system.started(settings, logs) as target:
                run(target, quick, out, console, only, queue_depth)
    except (StackError, bench_system.BenchRefused) as exc:
        raise _fail(exc) from exc


@app.command()
def token(
    tenant: str | None = typer.Option(None, help="The tenant the token is for."),
    role: list[str] = typer.Option(
        [], help="admin, operator, developer, viewer or platform-admin; repeatable."
    ),
    user: str = typer.Option("dev", help="The user name (the token's sub)."),
    platform_admin: bool = typer.Option(False, "--platform-admin", help="Add platform-admin."),
    id_token: bool = typer.Option(False, help="Print the ID token instead."),
) -> None:
    """Print a bearer token from the local OIDC provider (for curl: -H "Authorization: Bearer
    $(aion token --tenant demo --role developer)")."""
    from aion.local_tokens import TokenError, login

    roles = [*role, *(["platform-admin"] if platform_admin else [])] or ["viewer"]
    try:
        tokens = login(settings_module.load(), user, tenant, roles)
    except TokenError as exc:
        raise _fail(exc) from exc
    print(tokens.id_token if id_token else tokens.access_token)


@app.command("docs")
def docs_command(
    what: str = typer.Argument("topics", help="Which document: topics or cedar."),
) -> None:
    """Regenerate a generated file (topics: docs/topics.md; cedar: the API's Cedar actions,
    commands/cedar_api_actions.json)."""
    if what == "topics":
        from schemas.topics_doc import render

        target = Path("docs/topics.md")
        target.write_text(render())
    elif what == "cedar":
        from api.app import cedar_api_actions

        target = Path("commands/cedar_api_actions.json")
        target.write_text(cedar_api_actions())
    else:
        raise _fail(ValueError(f"unknown document {what!r}; use 'topics' or 'cedar'"))
    console.print(f"wrote {target}")


schemas_app = typer.Typer(no_args_is_help=True, help="The Avro schemas and their compatibility.")
app.add_typer(schemas_app, name="schemas")


@schemas_app.command("check")
def schemas_check(
    registry: bool = typer.Option(True, help="Also ask the schema registry (needs the stack)."),
    released: Path | None = typer.Option(None, help="Folder of released versions."),
) -> None:
    """Fail if a current schema cannot read what a released one wrote (BACKWARD_TRANSITIVE)."""
    from schemas import compatibility

    root = released or compatibility.RELEASED_DIR
    found = compatibility.check_released(root=root)
    versions = ", ".join(compatibility.released_versions(root)) or "none"
    console.print(f"fastavro resolution against released versions ({versions})")
    if registry:
        found += compatibility.check_registry(settings_module.load().registry)
        console.print("registry compatibility endpoint for every existing subject")
    for problem in found:
        console.print(f"[red]incompatible:[/red] {problem}", highlight=False)
    if found:
        raise typer.Exit(code=1)
    console.print("[green]all schemas are compatible[/green]")


@schemas_app.command("release")
def schemas_release(version: str = typer.Argument(..., help="A name such as v2.")) -> None:
    """Snapshot the current schemas as a released version (they must stay readable)."""
    from schemas import compatibility

    try:
        folder = compatibility.snapshot(version)
    except FileExistsError as exc:
        raise _fail(exc) from exc
    console.print(f"released {version} into {folder}")


dlq_app = typer.Typer(no_args_is_help=True, help="Dead letters: messages that failed.")
app.add_typer(dlq_app, name="dlq")


@dlq_app.command("list")
def dlq_list(
    as_json: bool = typer.Option(False, "--json", help="Machine-readable output."),
) -> None:
    """Every dead letter with its error and where it came from."""
    from streams.deadletter_tools import list_dead_letters

    letters = list_dead_letters(settings_module.load().kafka)
    if as_json:
        typer.echo(json.dumps([letter.as_dict() for letter in letters], indent=2))
        return
    table = Table(title=f"{len(letters)} dead letter(s)")
    for column in ("position", "source", "key", "error"):
        table.add_column(column)
    for letter in letters:
        source = f"{letter.source_topic}[{letter.source_partition}]@{letter.source_offset}"
        table.add_row(letter.position, source, letter.key or "-", letter.error)
    Console().print(table)


@dlq_app.command("replay")
def dlq_replay(
    positions: list[str] = typer.Argument(None, help="PARTITION:OFFSET of each; none: all."),
) -> None:
    """Produce dead letters again to the topic they came from (after a fix)."""
    from streams.deadletter_tools import replay

    replayed = replay(settings_module.load().kafka, set(positions) if positions else None)
    console.print(f"replayed {len(replayed)} dead letter(s)")


@dlq_app.command("purge")
def dlq_purge(yes: bool = typer.Option(False, "--yes", help="Do not ask.")) -> None:
    """Delete every dead letter up to now."""
    from streams.deadletter_tools import purge

    if not yes and not typer.confirm("Delete every dead letter?"):
        raise typer.Exit(code=1)
    console.print(f"purged {purge(settings_module.load().kafka)} dead letter(s)")


policy_app = typer.Typer(no_args_is_help=True, help="Cedar policies: what a change would do.")
app.add_typer(policy_app, name="policy")


@policy_app.command("simulate")
def policy_simulate(
    tenant: str = typer.Option(..., "--tenant", help="The tenant whose decisions to replay."),
    policies: Path = typer.Option(
        ...,
        "--policies",
        exists=True,
        dir_okay=False,
        readable=True,
        help='Cedar file replacing the tenant\'s policies (@id("...") names a policy).',
    ),
    since: str | None = typer.Option(
        None, "--since", help="Only decisions newer than this, e.g. 30m, 2h, 7d (default: all)."
    ),
    as_json: bool = typer.Option(False, "--json", help="Machine-readable output."),
) -> None:
    """Replay the tenant's recorded decisions against candidate policies; changes nothing.

    The platform's baseline and default policies stay; the tenant's own are replaced by the
    file's. Lists the decisions that would change. Exit 2 if the file is not valid Cedar.
    """
    import time

    from confluent_kafka import KafkaException

    from aion import policy_simulation as sim
    from schemas.codec import RegistryUnavailable

    try:
        window = sim.parse_duration(since) if since is not None else None
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--since") from exc
    try:
        candidate = sim.load_candidate(policies.read_text(encoding="utf-8"))
    except (sim.CandidateError, UnicodeDecodeError) as exc:
        console.print(f"[red]error:[/red] {policies}: {exc}", highlight=False)
        raise typer.Exit(code=2) from exc
    if not candidate:
        console.print(f"{policies} holds no policy: the tenant is simulated without its own")
    since_ms = None if window is None else int((time.time() - window.total_seconds()) * 1000)
    settings = settings_module.load()
    try:
        recorded = sim.read_decisions(settings.kafka, settings.registry, tenant, since_ms)
    except (KafkaException, RegistryUnavailable, TimeoutError) as exc:
        raise _fail(exc) from exc
    result = sim.simulate(tenant, recorded, candidate)
    if not recorded:
        console.print(
            f"no recorded decisions for tenant {tenant!r}"
            + (f" in the last {since}" if since else "")
            + " (unknown tenant, or none of its deployments or tasks was decided yet)",
            highlight=False,
        )
    if as_json:
        typer.echo(json.dumps(result.as_dict(), indent=2))
        return
    if result.changes:
        table = Table(title=f"decisions of {tenant} that would change")
        for column in ("subject", "action", "recorded", "simulated", "when"):
            table.add_column(column, overflow="fold")  # ids whole, even on a narrow terminal
        for change in result.changes:
            r, s = change.recorded, change.simulated
            table.add_row(
                f"{r.subject_type} {r.subject_id.removeprefix(f'{tenant}/')}",
                r.action,
                f"{r.decision} ({', '.join(r.policy_ids) or 'no policy'})",
                f"{s.decision} ({', '.join(s.policy_ids) or 'no policy'})",
                r.when,
            )
        Console().print(table)
    typer.echo(result.summary())


runs_app = typer.Typer(no_args_is_help=True, help="Runs of the WASM kernel.")
app.add_typer(runs_app, name="runs")


@runs_app.command("verify")
def runs_verify(
    run: str = typer.Argument(..., help="The run: <tenant>/<task id>.<attempt>."),
    as_json: bool = typer.Option(False, "--json", help="Print the result as JSON."),
) -> None:
    """Execute a recorded run again (same module, input, quotas) and compare its output digest.

    Exit status: 0 the same output, 1 a different one, 2 the run cannot be verified."""
    from confluent_kafka import KafkaException

    from aion import run_verification as rv
    from schemas.codec import RegistryUnavailable

    settings = settings_module.load()
    try:
        rv.split_run(run)
        result = rv.verify(settings, run)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="RUN") from exc
    except rv.NotVerifiable as exc:
        console.print(f"[red]cannot verify:[/red] {exc}", highlight=False)
        raise typer.Exit(code=2) from exc
    except (KafkaException, RegistryUnavailable, TimeoutError) as exc:
        raise _fail(exc) from exc
    if as_json:
        typer.echo(json.dumps(result.as_dict(), indent=2))
    else:
        reproduced = result.reproduced_digest or f"no output ({result.reproduced_failure})"
        typer.echo(f"recorded   {result.recorded_digest}\nreproduced {reproduced}")
        typer.echo("the same output" if result.matches else "DIFFERENT output")
    if not result.matches:
        raise typer.Exit(code=1)


events_app = typer.Typer(
    no_args_is_help=True, help="Events on Kafka: read, follow, export to a file, import."
)
app.add_typer(events_app, name="events")

EVENT_TOPICS = typer.Option(
    None, "--topic", help="A topic to read (repeatable; default: every aion.events.* topic)."
)
EVENT_TENANT = typer.Option(None, "--tenant", help="Only this tenant's events (envelope).")
EVENT_AGGREGATE = typer.Option(
    None, "--aggregate", help="Only this aggregate type (the topic's or the envelope's): task, …"
)
EVENT_TYPES = typer.Option(
    None, "--type", help="Only this record, full or short name: TaskSucceeded (repeatable)."
)
EVENT_SINCE = typer.Option(
    None, "--since", help="Only events newer than this: 30m, 2h, 7d, or an ISO 8601 time."
)
EVENT_LIMIT = typer.Option(None, "--limit", min=1, help="Stop after this many events.")


class _EventErrors:
    """Kafka, the registry or a file failing: one line on stderr and exit 1."""

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: object, exc: BaseException | None, tb: object) -> None:
        import os
        import sys

        from confluent_kafka import KafkaException

        from aion.event_tools import EventToolError
        from schemas.codec import RegistryUnavailable

        if isinstance(exc, BrokenPipeError):  # `aion events dump | head` had enough
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            raise typer.Exit(code=0) from None
        failures = (EventToolError, KafkaException, RegistryUnavailable, TimeoutError, OSError)
        if isinstance(exc, failures):
            raise _fail(exc) from exc


def _skipped(where: str) -> None:
    console.print(f"[yellow]skipped[/yellow] {where}", highlight=False)


def _event_filter(
    tenant: str | None, aggregate: str | None, types: list[str], since: str | None
) -> Any:
    """The events the options choose, or a usage error naming the option at fault."""
    from aion import event_tools as et

    try:
        return et.event_filter(tenant, aggregate, types, since)
    except et.BadOption as exc:
        raise typer.BadParameter(str(exc), param_hint=exc.option) from exc


@events_app.command("dump")
def events_dump(
    topics: list[str] = EVENT_TOPICS,
    tenant: str | None = EVENT_TENANT,
    aggregate: str | None = EVENT_AGGREGATE,
    types: list[str] = EVENT_TYPES,
    since: str | None = EVENT_SINCE,
    limit: int | None = EVENT_LIMIT,
) -> None:
    """Every matching event as the topics stand now, as JSON lines on stdout.

    One object per event: topic, partition, offset, timestamp, key, record
    and the decoded value (times in ISO 8601), each partition in offset order.
    No consumer group is joined and no offset is committed."""
    from aion import event_tools as et

    chosen = _event_filter(tenant, aggregate, types, since)
    settings = settings_module.load()
    count = 0
    with _EventErrors():
        names = et.check_topics(settings.kafka, topics or [])
        for event in et.read_events(settings.kafka, settings.registry, names, chosen, _skipped):
            typer.echo(et.json_line(event))
            count += 1
            if count == limit:
                break
    console.print(f"{count} event(s)")


@events_app.command("tail")
def events_tail(
    topics: list[str] = EVENT_TOPICS,
    tenant: str | None = EVENT_TENANT,
    aggregate: str | None = EVENT_AGGREGATE,
    types: list[str] = EVENT_TYPES,
    since: str | None = typer.Option(
        None, "--since", help="Start this far back: 30m, 2h, or an ISO 8601 time."
    ),
    from_beginning: bool = typer.Option(
        False, "--from-beginning", help="Start at the beginning of each partition."
    ),
    limit: int | None = EVENT_LIMIT,
) -> None:
    """Follow matching events as they arrive, as JSON lines, until Ctrl-C.

    Starts at the end of each partition (or --from-beginning, or --since).
    No consumer group is joined and no offset is committed."""
    from aion import event_tools as et

    chosen = _event_filter(tenant, aggregate, types, since)
    settings = settings_module.load()
    count = 0

    def ready(partitions: int) -> None:
        console.print(f"following {partitions} partition(s) of {', '.join(names)}; Ctrl-C stops")

    with _EventErrors():
        names = et.check_topics(settings.kafka, topics or [])
        found = et.follow(
            settings.kafka, settings.registry, names, chosen, _skipped, from_beginning, ready
        )
        try:
            for event in found:
                typer.echo(et.json_line(event))
                count += 1
                if count == limit:
                    break
        except KeyboardInterrupt:
            pass
        finally:
            found.close()
    console.print(f"{count} event(s)")


@events_app.command("export")
def events_export(
    to: Path = typer.Option(..., "--to", dir_okay=False, help="The .avro file to write."),
    topics: list[str] = EVENT_TOPICS,
    tenant: str | None = EVENT_TENANT,
    aggregate: str | None = EVENT_AGGREGATE,
    types: list[str] = EVENT_TYPES,
    since: str | None = EVENT_SINCE,
) -> None:
    """Write every matching event to an Avro container file, for `aion events import`.

    Each record keeps the event's position, key, headers, timestamp, writer
    schema and Avro body (docs/operations.md). The file is written whole or
    not at all."""
    from aion import event_archive
    from aion import event_tools as et

    chosen = _event_filter(tenant, aggregate, types, since)
    settings = settings_module.load()
    with _EventErrors():
        names = et.check_topics(settings.kafka, topics or [])
        count = event_archive.export_events(
            settings.kafka, settings.registry, names, chosen, to, _skipped
        )
    console.print(f"exported {count} event(s) to {to}")


@events_app.command("import")
def events_import(
    source: Path = typer.Option(
        ..., "--from", exists=True, dir_okay=False, readable=True, help="An export file."
    ),
    topic_map: list[str] = typer.Option(
        None, "--topic-map", help="OLD=NEW: produce OLD's events to NEW (repeatable)."
    ),
) -> None:
    """Produce an export's events into this cluster (its topics made by `aion init` first).

    Registers each writer schema in this cluster's registry (subject
    <topic>-<record>), frames each event with the id it gets, and produces it
    with its key, timestamp and headers to the same partition number (by key
    when the topic has fewer partitions).

    Kafka does not deduplicate: importing the same file twice writes every
    event twice."""
    from aion import event_archive

    try:
        mapping = event_archive.parse_topic_map(topic_map or [])
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--topic-map") from exc
    settings = settings_module.load()
    with _EventErrors():
        report = event_archive.import_events(settings.kafka, settings.registry, source, mapping)
    for old in report.unused_map:
        console.print(f"[yellow]note:[/yellow] no event of {old} in {source}", highlight=False)
    for topic, count in sorted(report.produced.items()):
        how = " (by key: fewer partitions than the source)" if topic in report.by_key else ""
        console.print(f"  {topic}: {count}{how}", highlight=False)
    console.print(
        f"imported {report.total} event(s) into {len(report.produced)} topic(s), "
        f"{report.schemas} schema(s) registered or found"
    )


@app.command()
def replay(
    projection: str = typer.Argument(
        "core", help="The Postgres projection to rebuild, or write-model (the worker's state)."
    ),
    start: str = typer.Option(
        "earliest", "--from", help="earliest, or an ISO 8601 time: replay events from then on."
    ),
    shadow: bool = typer.Option(
        True, "--shadow/--no-shadow", help="Build beside the live tables (the only mode)."
    ),
    verify_only: bool = typer.Option(False, help="Build and compare, but do not swap."),
    accept_differences: bool = typer.Option(
        False, help="Swap even when tables differ (e.g. after fixing a projection bug)."
    ),
    replace: bool = typer.Option(
        False, help="write-model: delete the changelogs that still hold state, then write."
    ),
) -> None:
    """Rebuild a projection from Kafka into a shadow schema while the live one serves, verify
    it against the live tables (row counts and checksums), then swap it in atomically.

    `aion replay write-model` folds the events topics into the worker's state instead, when its
    changelogs are lost: with every worker stopped, it writes the changelogs again (see
    docs/operations.md, "The write model's changelogs").

    Exit status: 0 swapped (or verified with --verify-only), 1 differences or an error."""
    if projection == "write-model":
        _replay_write_model(verify_only, replace)
        return
    import time
    from datetime import datetime

    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeRemainingColumn,
    )

    from projections import service
    from projections.replay import Replay

    if not shadow:
        raise typer.BadParameter("only shadow replays exist: they never stop the live one")
    settings = settings_module.load()
    since_ms = None
    if start != "earliest":
        try:
            since_ms = int(datetime.fromisoformat(start).timestamp() * 1000)
        except ValueError as exc:
            raise typer.BadParameter(f"{start!r} is not earliest nor an ISO time") from exc
    chosen = [p for p in service.projections() if p.name == projection]
    if not chosen:
        raise typer.BadParameter(
            f"no projection {projection!r}; there is core", param_hint="PROJECTION"
        )
    job = Replay(
        chosen[0],
        kafka=settings.kafka,
        database_url=settings.database,
        registry=settings.registry,
        since_ms=since_ms,
    )
    columns = (
        TextColumn("replaying {task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[rate]} events/s"),
        TimeRemainingColumn(),
    )
    began = time.monotonic()
    with Progress(*columns, console=console) as bar:
        task = bar.add_task(projection, total=None, rate="-")

        def advance(done: int, total: int) -> None:
            rate = done / max(time.monotonic() - began, 1e-6)
            bar.update(task, completed=done, total=total, rate=f"{rate:,.0f}")

        job.build(advance)
    report = job.verify_and_swap(swap=not verify_only, accept_differences=accept_differences)
    job.drop_shadow()
    table = Table(title=f"{projection}: shadow against live")
    for column in ("table", "live rows", "shadow rows", "same"):
        table.add_column(column)
    for check in report.checks:
        same = "[green]yes[/green]" if check.equal else "[red]no[/red]"
        table.add_row(check.table, str(check.live_rows), str(check.shadow_rows), same)
    Console().print(table)
    rate = report.events / max(report.seconds, 1e-6)
    typer.echo(f"{report.events} events replayed in {report.seconds:.1f} s ({rate:,.0f}/s)")
    if report.swapped:
        typer.echo(f"swapped in; the replaced tables are in schema {report.replaced_schema}")
    elif not report.verified:
        typer.echo("the shadow differs from the live tables: nothing swapped")
        raise typer.Exit(code=1)
    else:
        typer.echo("verified; nothing swapped (--verify-only)")


def _replay_write_model(verify_only: bool, replace: bool) -> None:
    """`aion replay write-model`: compare with, or write, the worker's changelogs."""
    from streams import rebuild_changelog

    settings = settings_module.load()
    console.print("folding the events topics ...")
    try:
        if verify_only:
            report = rebuild_changelog.verify(settings)
        else:
            report = rebuild_changelog.write(settings, replace)
    except rebuild_changelog.RebuildRefused as exc:
        console.print(f"[red]refused:[/red] {exc}", highlight=False)
        raise typer.Exit(1) from exc
    console.print(
        f"{report.events} event(s) read, {report.duplicates} duplicate(s) dropped, "
        f"{report.undecodable} undecodable; {report.documents} document(s) for "
        f"{report.tenants} tenant(s)",
        highlight=False,
    )
    for key in report.gaps[:20]:
        console.print(f"[yellow]gap in the versions of[/yellow] {key}", highlight=False)
    for store in report.removed_stores:
        console.print(f"removed the local worker store {store}", highlight=False)
    if verify_only:
        for difference in report.differences[:20]:
            console.print(f"[red]differs:[/red] {difference.key}", highlight=False)
        if report.differences:
            console.print(f"{len(report.differences)} document(s) differ")
            raise typer.Exit(1)
        console.print("the changelogs hold what the events say")
    else:
        console.print("written: start the workers; they restore their tables from the changelogs")
