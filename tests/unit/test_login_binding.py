"""The sign-in's binding to a browser (login CSRF): which cookie a callback must present."""

from __future__ import annotations

from starlette.requests import Request

from api.login import LOGIN_COOKIE, _binding, _bound_here, _digest


def request(cookie: str | None) -> Request:
    headers = [] if cookie is None else [(b"cookie", f"{LOGIN_COOKIE}={cookie}".encode())]
    return Request({"type": "http", "method": "GET", "path": "/", "headers": headers})


def test_a_callback_needs_the_cookie_its_sign_in_was_bound_to() -> None:
    mine = _binding(request(None))
    remembered = {"binding": _digest(mine)}
    assert _bound_here(request(mine), remembered)
    assert not _bound_here(request(None), remembered)
    assert not _bound_here(request(_binding(request(None))), remembered)  # another browser's
    assert not _bound_here(request(""), {"binding": ""})  # no cookie never matches
    assert not _bound_here(request(mine), {})  # a sign-in kept before bindings existed


def test_a_browser_keeps_its_binding_across_sign_ins_but_not_a_malformed_one() -> None:
    mine = _binding(request(None))
    assert len(mine) == 43 and _binding(request(mine)) == mine
    assert _binding(request("short")) != "short"
    assert _binding(request("!" * 43)) != "!" * 43
