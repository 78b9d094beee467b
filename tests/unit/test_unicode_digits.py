"""Numbers in parameters and headers: a Unicode digit such as "²" passes ``str.isdigit`` but
not ``int``. schemathesis found ``?last_event_id=²`` answering 500; each is now a problem
naming the parameter."""

from __future__ import annotations

import pytest
from starlette.requests import Request

from api.commands import expected_version
from api.listing import parse_limit
from api.live import _last_event_id
from api.problems import Problem


def request(query: str = "", headers: dict[str, str] | None = None) -> Request:
    raw = [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in (headers or {}).items()]
    return Request(
        {
            "type": "http",
            "method": "GET",
            "path": "/",
            "query_string": query.encode(),
            "headers": raw,
        }
    )


def test_a_superscript_last_event_id_is_a_400() -> None:
    with pytest.raises(Problem) as refused:
        _last_event_id(request("last_event_id=%C2%B2"))
    assert (refused.value.status, refused.value.field) == (400, "Last-Event-ID")
    assert _last_event_id(request("last_event_id=7")) == 7


def test_a_superscript_limit_is_a_422() -> None:
    with pytest.raises(Problem) as refused:
        parse_limit("²")
    assert refused.value.status == 422
    assert parse_limit("5") == 5


def test_a_superscript_if_match_is_a_400() -> None:
    with pytest.raises(Problem) as refused:
        expected_version(request(headers={"If-Match": '"²"'}))
    assert refused.value.status == 400
    assert expected_version(request(headers={"If-Match": '"3"'})) == 3
