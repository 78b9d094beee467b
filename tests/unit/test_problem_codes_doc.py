"""docs/api.md names every problem type the API can answer with: a new code without its line
in the error table fails here."""

from __future__ import annotations

import ast
from pathlib import Path

from api.commands import REJECTION_STATUS

ROOT = Path(__file__).resolve().parents[2]


def raised_codes() -> set[str]:
    """The literal ``code`` of every ``Problem(status, code, ...)`` under api/."""
    codes = set()
    for path in (ROOT / "api").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if not isinstance(node, ast.Call) or len(node.args) < 2:
                continue
            name = getattr(node.func, "id", getattr(node.func, "attr", ""))
            if name == "Problem" and isinstance(node.args[1], ast.Constant):
                codes.add(str(node.args[1].value))
    return codes


def test_the_scan_finds_the_codes_it_should() -> None:
    assert {"not-found", "invalid-field", "rate-limited", "not-ready"} <= raised_codes()


def test_every_problem_code_is_in_the_error_table() -> None:
    doc = (ROOT / "docs" / "api.md").read_text()
    rejections = {code.replace("_", "-") for code in REJECTION_STATUS}
    http = {"method-not-allowed"}
    missing = sorted(c for c in raised_codes() | rejections | http if f"`{c}`" not in doc)
    assert missing == []
