"""How every HTTP server of ours runs: uvicorn with uvloop and httptools, no access log.

The API (`aion serve`) and the benchmark's bare endpoint share this, so that the ingest ratio
compares endpoints, not server set-ups.
"""

from __future__ import annotations

from typing import Any

import uvicorn


def run(app: Any, host: str, port: int) -> None:
    uvicorn.run(
        app,
        host=host,
        port=port,
        loop="uvloop",
        http="httptools",
        log_config=None,
        access_log=False,
        backlog=2048,
    )
