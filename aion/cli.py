"""The `aion` command line: the local stack, the processes, and the tools around them."""

from __future__ import annotations

import json
import shlex
from dataclasses import asdict
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from aion import settings as settings_module
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
    if not all(r.healthy for r in rows):
        raise typer.Exit(code=1)


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
    import uvicorn

    from aion import telemetry
    from api.app import create_app

    settings = settings_module.load()
    telemetry.setup("api", settings.log_level)
    uvicorn.run(
        create_app(settings),
        host=host or settings.api_host,
        port=port or settings.api_port,
        log_config=None,
        access_log=False,
    )


@app.command()
def worker() -> None:
    """Run the Faust stream processors (the command processor)."""
    from aion import telemetry
    from aion.bootstrap import ensure_topics
    from streams import worker as streams_worker

    settings = settings_module.load()
    telemetry.setup("worker", settings.log_level)
    ensure_topics(settings)
    streams_worker.run(settings)


@app.command()
def projector() -> None:
    """Run the projections into the read models."""
    from aion import telemetry
    from projections import service

    settings = settings_module.load()
    telemetry.setup("projector", settings.log_level)
    service.run(settings)


@app.command()
def up(
    demo: bool = typer.Option(True, help="Create the demo tenant."),
) -> None:
    """Stack + API + worker + projector in the foreground; Ctrl-C stops what this started."""
    from aion.foreground import run_foreground

    try:
        code = run_foreground(settings_module.load(), console, demo=demo)
    except StackError as exc:
        raise _fail(exc) from exc
    raise typer.Exit(code)


@app.command("docs")
def docs_command(
    what: str = typer.Argument("topics", help="Which document: topics."),
) -> None:
    """Regenerate a generated document under docs/ (topics: docs/topics.md)."""
    from schemas.topics_doc import render

    if what != "topics":
        raise _fail(ValueError(f"unknown document {what!r}; the only one is 'topics'"))
    target = Path("docs/topics.md")
    target.write_text(render())
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
