"""Login CSRF: a sign-in is bound to the browser that started it.

The attack: Mallory starts a sign-in in her own browser, signs in at the issuer as herself, and
stops at the issuer's redirect. She sends that callback URL (her code, her state) to the victim.
Unbound, the victim's browser would be signed in as Mallory, and what the victim then types
into the console (a prompt, a policy) would land in Mallory's account. The callback must refuse
a state whose ``aion_login`` cookie this browser does not hold.
"""

from __future__ import annotations

import json
from http.cookies import SimpleCookie

import httpx
import pytest

from api.credentials import SESSION_COOKIE
from api.login import LOGIN_COOKIE
from tests.stack.identity import admin_client
from tests.stack.test_tenants_api import assert_problem, new_tenant_id


@pytest.fixture(scope="module")
def tenant(system: str) -> str:
    tenant = new_tenant_id()
    with admin_client(system) as admin:
        made = admin.post(
            "/v1/tenants",
            json={"tenant_id": tenant, "display_name": "Login"},
            headers={"Prefer": "wait=20"},
        )
        assert made.status_code == 201, made.text
    return tenant


def sign_in_at_issuer(browser: httpx.Client, user: str, tenant: str) -> str:
    """Start a sign-in in ``browser``, sign in at the local issuer's form, and stop at its
    redirect: the callback URL (code and state) the browser would follow next."""
    start = browser.get("/auth/login", params={"return_to": f"/v1/tenants/{tenant}"})
    assert start.status_code == 302, start.text
    signed = httpx.post(
        start.headers["location"],
        data={"username": user, "claims": json.dumps({"tenant": tenant, "roles": ["viewer"]})},
        timeout=30,
    )
    assert signed.status_code == 302, signed.text
    return str(signed.headers["location"])


def test_a_callback_started_in_another_browser_is_refused(system: str, tenant: str) -> None:
    with httpx.Client(base_url=system, timeout=30) as mallory:
        planted = sign_in_at_issuer(mallory, "mallory", tenant)
    # The victim's browser, which never started a sign-in, follows Mallory's link.
    with httpx.Client(base_url=system, timeout=30) as victim:
        refused = victim.get(planted)
        assert_problem(refused, 400, "state")
        assert SESSION_COOKIE not in refused.headers.get("set-cookie", "")
        assert victim.get("/auth/session").status_code == 401
    # A victim who started a sign-in of her own holds a login cookie, but not Mallory's.
    with httpx.Client(base_url=system, timeout=30) as mallory:
        planted = sign_in_at_issuer(mallory, "mallory", tenant)
        with httpx.Client(base_url=system, timeout=30) as victim:
            assert victim.get("/auth/login").status_code == 302
            assert victim.cookies.get(LOGIN_COOKIE)
            assert victim.cookies.get(LOGIN_COOKIE) != mallory.cookies.get(LOGIN_COOKIE)
            refused = victim.get(planted)
            assert_problem(refused, 400, "state")
            assert victim.get("/auth/session").status_code == 401
        # The state was spent by the refused attempt: it is single-use, whoever presents it.
        assert_problem(mallory.get(planted), 400, "state")


def test_the_sign_in_completes_in_the_browser_that_started_it(system: str, tenant: str) -> None:
    with httpx.Client(base_url=system, timeout=30) as browser:
        start = browser.get("/auth/login")
        assert start.status_code == 302
        morsel = SimpleCookie(start.headers["set-cookie"])[LOGIN_COOKIE]
        assert morsel["httponly"] and morsel["samesite"].lower() == "lax"
        assert morsel["path"] == "/auth/" and not morsel["secure"]  # http here: https sets it
        assert 0 < int(morsel["max-age"]) <= 600
        back = browser.get(sign_in_at_issuer(browser, "sam", tenant))
        assert back.status_code == 303, back.text
        assert back.headers["location"] == f"/v1/tenants/{tenant}"
        assert browser.get("/auth/session").json()["subject"] == "sam"
        # Two sign-ins started in one browser (two tabs) both complete.
        first = sign_in_at_issuer(browser, "sam", tenant)
        second = sign_in_at_issuer(browser, "sam", tenant)
        assert browser.get(second).status_code == 303
        assert browser.get(first).status_code == 303
        # A state is spent by its first use.
        assert_problem(browser.get(first), 400, "state")
