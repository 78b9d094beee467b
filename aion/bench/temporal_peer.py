"""Scenario 8's peer: the same WASI echo task as a Temporal workflow of one activity.

The activity runs the kernel's ``wasi_echo`` example through ``Kernel.run`` (compiled once per
worker, a fresh wasmtime Store and instance per task), exactly the work Aion's kernel worker
does per run. The Temporal dev server (``temporal server start-dev``, SQLite in a file) and
its Python worker run in their own processes, as Aion's roles do; the client here starts the
workflows and waits for their results. Needs the ``peer`` extra and the binary that
``make peer-temporal`` builds (decision 47).

    python -m aion.bench.temporal_peer ADDRESS TASK_QUEUE   # the worker process
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

from temporalio import activity, workflow
from temporalio.client import Client
from temporalio.exceptions import ApplicationError
from temporalio.worker import UnsandboxedWorkflowRunner, Worker

from aion.bench.system import free_port
from kernel.mini_model import MiniHost
from kernel.module_cache import digest_of
from kernel.runs import Limits
from kernel.runtime import Kernel
from kernel.shipped import example_wasm

WORKFLOW = "WasiEchoTask"
ACTIVITY = "run_wasi_echo"
LIMITS = Limits(fuel=10_000_000, memory_mb=16, timeout_ms=2000)  # the bench agent's quotas
ACTIVITY_THREADS = 8
START_CONCURRENCY = 64


class WasiEcho:
    """The activity: one kernel (and its compiled module) per worker process."""

    def __init__(self) -> None:
        self.kernel = Kernel()
        wasm = example_wasm("wasi_echo")
        self.module = self.kernel.module(digest_of(wasm), wasm)
        self.host = MiniHost()

    @activity.defn(name=ACTIVITY)
    def run(self, payload: str) -> str:
        result = self.kernel.run(
            self.module, "wasi_command", "_start", payload.encode(), LIMITS, frozenset(), self.host
        )
        if not result.ok or result.output is None:
            raise ApplicationError(f"{result.reason}: {result.message}", non_retryable=True)
        return result.output.decode()


@workflow.defn(name=WORKFLOW)
class WasiEchoTask:
    @workflow.run
    async def run(self, payload: str) -> str:
        return await workflow.execute_activity(
            ACTIVITY, payload, start_to_close_timeout=timedelta(seconds=30), result_type=str
        )


async def serve_worker(address: str, task_queue: str) -> None:
    client = await Client.connect(address)
    echo = WasiEcho()
    with concurrent.futures.ThreadPoolExecutor(ACTIVITY_THREADS) as pool:
        worker = Worker(
            client,
            task_queue=task_queue,
            workflows=[WasiEchoTask],
            activities=[echo.run],
            activity_executor=pool,
            workflow_runner=UnsandboxedWorkflowRunner(),
        )
        await worker.run()


@dataclass
class TemporalPeer:
    """The dev server and one worker process, on free ports, stopped by ``stop``."""

    address: str
    task_queue: str
    server: subprocess.Popen[bytes]
    worker: subprocess.Popen[bytes]
    home: tempfile.TemporaryDirectory[str]

    @classmethod
    def start(cls, binary: Path, logs: Path) -> TemporalPeer:
        home = tempfile.TemporaryDirectory(prefix="aion-temporal-")
        port = free_port()
        address = f"127.0.0.1:{port}"
        logs.mkdir(parents=True, exist_ok=True)
        with (logs / "temporal-server.log").open("ab") as log:
            server = subprocess.Popen(
                [
                    str(binary),
                    "server",
                    "start-dev",
                    "--headless",
                    "--ip",
                    "127.0.0.1",
                    "--port",
                    str(port),
                    "--http-port",
                    str(free_port()),
                    "--metrics-port",
                    str(free_port()),
                    "--db-filename",
                    str(Path(home.name) / "temporal.db"),
                    "--log-level",
                    "warn",
                ],
                stdout=log,
                stderr=log,
            )
        try:
            asyncio.run(_connect(address, server, 90))
        except RuntimeError:
            server.kill()
            home.cleanup()
            raise RuntimeError(
                f"the Temporal dev server did not start: see {logs / 'temporal-server.log'}"
            ) from None
        queue = f"aion-bench-{port}"
        with (logs / "temporal-worker.log").open("ab") as log:
            worker = subprocess.Popen(
                [sys.executable, "-m", "aion.bench.temporal_peer", address, queue],
                stdout=log,
                stderr=log,
            )
        peer = cls(address, queue, server, worker, home)
        peer.batch(20, "warm-up")  # the worker is polling and the module compiled
        return peer

    def batch(self, n: int, run: str) -> tuple[float, list[float]]:
        """Starts ``n`` workflows at once: when the batch was submitted and when each
        workflow's result came back (time.time()), as Aion's side counts its batch."""
        return asyncio.run(_batch(self.address, self.task_queue, n, run))

    def stop(self) -> None:
        for proc in (self.worker, self.server):
            proc.terminate()
        for proc in (self.worker, self.server):
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
        self.home.cleanup()


async def _connect(address: str, server: subprocess.Popen[bytes], seconds: float) -> Client:
    """A client once the server answers; RuntimeError if it exits or ``seconds`` pass."""
    deadline = time.monotonic() + seconds
    while True:
        try:
            return await Client.connect(address)
        except RuntimeError:
            if time.monotonic() > deadline or server.poll() is not None:
                raise
            await asyncio.sleep(0.5)


async def _batch(address: str, task_queue: str, n: int, run: str) -> tuple[float, list[float]]:
    """There is no batch start in Temporal's API: the starts go out ``START_CONCURRENCY`` at a
    time, and each result is awaited (a long poll) as soon as its workflow started."""
    client = await Client.connect(address)
    starts = asyncio.Semaphore(START_CONCURRENCY)
    done = [0.0] * n

    async def one(i: int) -> None:
        async with starts:
            handle = await client.start_workflow(
                WORKFLOW, f'{{"n": {i}}}', id=f"{run}-{i}", task_queue=task_queue
            )
        await handle.result()
        done[i] = time.time()

    submitted = time.time()
    await asyncio.gather(*(one(i) for i in range(n)))
    return submitted, done


def main() -> None:
    address, task_queue = sys.argv[1], sys.argv[2]
    asyncio.run(serve_worker(address, task_queue))


if __name__ == "__main__":
    main()
