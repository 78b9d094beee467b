"""`aion up` (what `make up` runs): everything in the foreground, the demo tenant, clean Ctrl-C."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

from aion.settings import Settings
from aion.stack.manager import Stack
from aion.stack.process import port_open
from schemas.topics import events_topic
from tests.conftest import ROOT, free_port
from tests.stack.identity import bearer
from tests.stack.kafka_reading import has, names, records_until


def test_aion_up_serves_the_demo_tenant_and_stops_cleanly_on_ctrl_c(
    stack: Stack, settings: Settings, tmp_path: Path
) -> None:
    port = free_port()
    log = tmp_path / "up.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "aion", "up"],
            cwd=ROOT,
            env={**os.environ, "AION_API_PORT": str(port)},
            stdout=out,
            stderr=subprocess.STDOUT,
        )
        try:
            deadline = time.monotonic() + 120
            while "Aion is up" not in log.read_text() and time.monotonic() < deadline:
                assert proc.poll() is None, log.read_text()[-3000:]
                time.sleep(0.5)
            text = log.read_text()
            assert "Aion is up" in text, text[-3000:]
            assert f"http://127.0.0.1:{port}/openapi.json" in text
            demo = httpx.get(
                f"http://127.0.0.1:{port}/v1/tenants/demo",
                timeout=10,
                headers=bearer("demo-viewer", "demo", "viewer"),
            )
            assert demo.status_code == 200, demo.text
            assert demo.json()["display_name"] == "Demo tenant"
            whats = (
                "tenant 'demo'",
                "module 'echo'",
                "model 'mini'",
                "agent 'echo'",
                "module 'text_stats'",
                "agent 'stats'",
                "task 'hello'",
                "task 'count'",
            )
            for what in whats:
                assert f"demo {what} created" in text or f"demo {what} already exists" in text, (
                    text[-3000:]
                )
            # The demo tasks really run: the kernel worker executes them.
            for task in ("hello", "count"):
                found = records_until(
                    settings, events_topic("task"), f"demo/{task}", has("TaskSucceeded"), 60
                )
                assert "TaskSucceeded" in names(found), (task, names(found))
        finally:
            proc.send_signal(signal.SIGINT)
            code = proc.wait(timeout=60)
    assert code == 0, log.read_text()[-3000:]
    assert not port_open("127.0.0.1", port)
    # The stack was running before `aion up`, so `aion up` left it running.
    assert all(r.healthy for r in stack.status())
