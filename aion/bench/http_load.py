"""HTTP load from wrk (Debian's package), a compiled closed-loop generator in its own process, so
that the load generator is not the Python under test.

Each request registers a model under a fresh name (the thread id and a counter), with the
headers given; wrk's summary gives requests/s and the latency percentiles.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from aion.stack.prerequisites import MissingPrerequisite

SCRIPT = """
local counter = 0
local threads = {}
local run = "%(run)s"
wrk.method = "POST"
%(headers)s
function setup(thread)
  thread:set("id", #threads + 1)
  table.insert(threads, thread)
end
statuses = {}
function response(status, headers, body)
  statuses[status] = (statuses[status] or 0) + 1
end
function done(summary, latency, requests)
  for _, thread in ipairs(threads) do
    local seen = thread:get("statuses")
    for status, count in pairs(seen) do io.write("status ", status, " ", count, "\\n") end
  end
end
function request()
  counter = counter + 1
  local body = '{"model_name": "m-' .. run .. '-' .. id .. '-' .. counter ..
    '", "provider": "local", "kind": "chat"}'
  return wrk.format(nil, nil, nil, body)
end
"""
UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0}


@dataclass(frozen=True)
class Load:
    requests_per_s: float
    p50_ms: float
    p99_ms: float
    requests: int
    failed: int  # non-2xx answers and socket errors
    bad_statuses: dict[int, int] = field(default_factory=dict)  # status -> count, non-2xx


def wrk_path() -> str:
    found = shutil.which("wrk")
    if not found:
        raise MissingPrerequisite("wrk", "apt-get install -y wrk")
    return found


def _ms(text: str) -> float:
    match = re.fullmatch(r"([\d.]+)(us|ms|s)", text.strip())
    if not match:
        raise ValueError(f"not a wrk duration: {text!r}")
    return float(match.group(1)) * UNITS[match.group(2)]


def parse(output: str) -> Load:
    rate = re.search(r"Requests/sec:\s+([\d.]+)", output)
    total = re.search(r"(\d+) requests in", output)
    p50 = re.search(r"^\s+50%\s+(\S+)", output, re.MULTILINE)
    p99 = re.search(r"^\s+99%\s+(\S+)", output, re.MULTILINE)
    if not (rate and total and p50 and p99):
        raise ValueError(f"unexpected wrk output:\n{output}")
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    statuses = {int(s): int(n) for s, n in re.findall(r"^status (\d+) (\d+)$", output, re.M)}
    sockets = re.search(
        r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output
    )
    failed = int(non2xx.group(1)) if non2xx else 0
    if sockets:
        failed += sum(int(n) for n in sockets.groups())
    return Load(
        float(rate.group(1)),
        _ms(p50.group(1)),
        _ms(p99.group(1)),
        int(total.group(1)),
        failed,
        {s: n for s, n in statuses.items() if not 200 <= s < 300},
    )


def post_models(
    url: str,
    headers: dict[str, str],
    seconds: float,
    connections: int = 32,
    threads: int = 1,
) -> Load:
    """wrk POSTing fresh RegisterModel bodies to ``url`` for ``seconds``."""
    lines = [
        f'wrk.headers["{k}"] = "{v}"'
        for k, v in {"Content-Type": "application/json", **headers}.items()
    ]
    script = SCRIPT % {"run": uuid.uuid4().hex[:8], "headers": "\n".join(lines)}
    with tempfile.TemporaryDirectory() as tmp:
        lua = Path(tmp) / "post.lua"
        lua.write_text(script)
        done = subprocess.run(
            [
                wrk_path(),
                f"-t{threads}",
                f"-c{connections}",
                f"-d{max(1, round(seconds))}s",
                "--latency",
                "--timeout",
                "10s",
                "-s",
                str(lua),
                url,
            ],
            capture_output=True,
            text=True,
            check=True,
        )
    return parse(done.stdout)
