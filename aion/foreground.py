"""`aion up`: the whole system in the foreground, until Ctrl-C.

Starts the stack (or finds it running), prepares topics, schemas and tables, runs the API,
the stream worker and the projector as child processes, seeds the demo (aion/demo.py), prints
where to look. On Ctrl-C or SIGTERM it stops its children, then the servers it started itself.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path
from types import FrameType

import httpx
from rich.console import Console

from aion import demo as demo_module
from aion import local_tokens
from aion.bootstrap import bootstrap
from aion.progress import reporter
from aion.settings import Settings
from aion.stack.manager import Stack
from aion.stack.process import StackError, tail
from api.principal import PLATFORM_ADMIN

ROLES = ("serve", "worker", "projector", "kernel")
PROCESS_LOGS = ".aion/logs/<serve|worker|projector>.log"


def run_foreground(settings: Settings, console: Console, *, demo: bool = True) -> int:
    stack = Stack(settings)
    already = {s.name for s in stack.services if s.has_process and s.process.pid()}
    with console.status("starting the local stack…") as status:
        stack.up(reporter(console, status))
    started_here = {s.name for s in stack.services if s.has_process and s.process.pid()} - already
    console.print("  creating topics, registering schemas, migrating read models")
    bootstrap(settings)
    logs = settings.stack_dir / "logs"
    children = [_spawn(role, logs) for role in ROLES]
    stopping = False

    def on_signal(signum: int, frame: FrameType | None) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    api = f"http://{settings.api_host}:{settings.api_port}"
    code = 0
    try:
        wait_ready(api, children)
        if demo and settings.oidc_issuer is not None:
            console.print(
                "  the demo signs in at the local OIDC provider, and AION_OIDC_ISSUER points "
                "elsewhere: demo skipped (run with --no-demo to silence this)"
            )
        elif demo:
            admin = local_tokens.login(settings, "demo-admin", None, [PLATFORM_ADMIN])
            demo_module.print_results(demo_module.seed(api, admin.access_token), console)
        print_where_to_look(settings, console, api)
        while not stopping:
            exited = [role for role, c in zip(ROLES, children, strict=True) if c.poll() is not None]
            if exited:
                console.print(
                    f"[red]aion {exited[0]} exited; stopping everything. Last lines of "
                    f"{logs / (exited[0] + '.log')}:[/red]\n"
                    f"{tail(logs / (exited[0] + '.log'))}",
                    highlight=False,
                )
                code = 1
                break
            time.sleep(0.2)
    except StackError as exc:
        console.print(f"[red]error:[/red] {exc}")
        code = 1
    finally:
        console.print("stopping Aion processes…")
        for child in children:
            if child.poll() is None:
                child.send_signal(signal.SIGTERM)
        for child in children:
            try:
                child.wait(timeout=20)
            except subprocess.TimeoutExpired:
                child.kill()
        for service in reversed(stack.services):
            if service.name in started_here:
                service.process.stop()
                console.print(f"  {service.name}: stopped")
    return code


def _spawn(role: str, logs: Path) -> subprocess.Popen[bytes]:
    """One Aion process, its output in .aion/logs/<role>.log (the terminal stays readable)."""
    logs.mkdir(parents=True, exist_ok=True)
    with (logs / f"{role}.log").open("ab") as log:
        return subprocess.Popen(
            [sys.executable, "-m", "aion", role], stdout=log, stderr=subprocess.STDOUT
        )


def wait_ready(api: str, children: list[subprocess.Popen[bytes]], timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if any(c.poll() is not None for c in children):
            raise StackError(
                f"an Aion process exited during start-up; see its log in {PROCESS_LOGS}"
            )
        try:
            if httpx.get(f"{api}/readyz", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    raise StackError(f"the API at {api} was not ready within {timeout:.0f}s")


def print_where_to_look(settings: Settings, console: Console, api: str) -> None:
    env = settings.client_env()
    console.print(
        "\n[bold green]Aion is up.[/bold green] Where to look:\n"
        f"  API             {api}\n"
        "  A token         TOKEN=$(aion token --tenant demo --role admin)\n"
        f'  Try             curl -H "Authorization: Bearer $TOKEN" {api}/v1/tenants/demo\n'
        f"  Console         {api}/console  (sign in at OIDC provider {settings.issuer})\n"
        f"  OpenAPI         {api}/openapi.json\n"
        f"  Readiness       {api}/readyz    Metrics {api}/metrics\n"
        f"  Kafka           {env['AION_KAFKA_BOOTSTRAP']}\n"
        f"  Schema registry {env['AION_SCHEMA_REGISTRY_URL']}\n"
        f"  Postgres        {env['AION_DATABASE_URL']}\n"
        f"  Logs            {settings.stack_dir / 'logs'} (api: serve.log, worker.log, "
        "projector.log)\n"
        '  Another shell:  eval "$(aion stack env)"; aion stack status\n'
        "Press Ctrl-C to stop.",
        highlight=False,
    )
