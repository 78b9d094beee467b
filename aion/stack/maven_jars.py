"""Jars from Maven Central into the cache: `mvn dependency:copy-dependencies` of a pom shipped
in ``aion/stack/maven/``, into a ``.partial`` folder renamed when complete (an interrupted
download is never taken for a finished one)."""

from __future__ import annotations

import shutil
from importlib import resources
from pathlib import Path

from aion.stack.prerequisites import which
from aion.stack.process import run_checked


def fetch_jars(pom: str, libs: Path, what: str, log: Path) -> None:
    """Copy the runtime dependencies of ``aion/stack/maven/<pom>`` into ``libs``."""
    libs.parent.mkdir(parents=True, exist_ok=True)
    target = libs.parent / "pom.xml"
    target.write_text((resources.files("aion.stack") / "maven" / pom).read_text())
    partial = libs.with_suffix(".partial")
    shutil.rmtree(partial, ignore_errors=True)
    run_checked(
        [
            str(which("mvn")),
            "-B",
            "-q",
            "-f",
            str(target),
            "dependency:copy-dependencies",
            "-DincludeScope=runtime",
            f"-DoutputDirectory={partial}",
        ],
        what=what,
        log=log,
    )
    shutil.rmtree(libs, ignore_errors=True)
    partial.rename(libs)
