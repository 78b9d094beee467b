"""Security end to end: tokens from the local OIDC provider, forged tokens, API keys, roles,
tenant isolation, rate limits, and the browser sign-in flow, against the running API.

Forged tokens with bad claims are signed with the local provider's own key (its data folder),
so that only the claim under test is wrong. Every refusal is checked to produce no command.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
import uuid
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qs, urlparse

import httpx
import pytest
from joserfc import jwt
from joserfc.jwk import RSAKey

from aion.settings import Settings
from aion.stack.oidc import Oidc
from schemas.topics import AUDIT, COMMANDS
from tests.stack.identity import admin_client, bearer
from tests.stack.test_tenants_api import assert_problem, high_watermark, new_tenant_id

WAIT = {"Prefer": "wait=20"}


@pytest.fixture(scope="module")
def tenants(system: str) -> Iterator[tuple[str, str]]:
    """Two tenants: the one under attack, and another."""
    made = []
    with admin_client(system) as client:
        for _ in range(2):
            tenant = new_tenant_id()
            body = {"tenant_id": tenant, "display_name": "S"}
            created = client.post("/v1/tenants", json=body, headers=WAIT)
            assert created.status_code == 201, created.text
            made.append(tenant)
    yield made[0], made[1]


def b64(data: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


class Forger:
    """Signs tokens with the local provider's key (or a stranger's), claims as the test says."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.key = RSAKey.import_key(Oidc(settings).signing_key())

    def claims(self, tenant: str, **overrides: Any) -> dict[str, Any]:
        now = int(time.time())
        return {
            "iss": self.settings.issuer,
            "aud": self.settings.oidc_audience,
            "sub": "mallory",
            "iat": now,
            "nbf": now,
            "exp": now + 300,
            "tenant": tenant,
            "roles": ["admin"],
            **overrides,
        }

    def sign(self, tenant: str, key: RSAKey | None = None, kid: str = "aion", **claims: Any) -> str:
        header = {"alg": "RS256", "kid": kid}
        return jwt.encode(header, self.claims(tenant, **claims), key or self.key, ["RS256"])


def attacks(forger: Forger, tenant: str) -> dict[str, str]:
    now = int(time.time())
    good = forger.sign(tenant)
    head, _, signature = good.split(".")
    public_pem = forger.key.as_pem(private=False)
    hs_input = f"{b64({'alg': 'HS256', 'kid': 'aion'})}.{b64(forger.claims(tenant))}"
    hs_mac = hmac.new(public_pem, hs_input.encode(), hashlib.sha256).digest()
    stranger = RSAKey.generate_key(2048, private=True)
    return {
        "alg=none": f"{b64({'alg': 'none', 'kid': 'aion'})}.{b64(forger.claims(tenant))}.",
        "HS256 with the public key": f"{hs_input}.{b64u(hs_mac)}",
        "expired": forger.sign(tenant, exp=now - 300, iat=now - 600, nbf=now - 600),
        "not yet valid": forger.sign(tenant, nbf=now + 600),
        "wrong iss": forger.sign(tenant, iss="http://127.0.0.1:1/evil"),
        "wrong aud": forger.sign(tenant, aud="another-service"),
        "tampered payload": f"{head}.{b64(forger.claims(tenant, roles=['platform-admin']))}."
        f"{signature}",
        "unknown kid": forger.sign(tenant, key=stranger, kid="rotated-away"),
        "stranger's key under the known kid": forger.sign(tenant, key=stranger),
    }


def b64u(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def test_the_local_providers_token_is_accepted_and_its_sub_is_the_actor(
    system: str, tenants: tuple[str, str]
) -> None:
    tenant, _ = tenants
    headers = bearer("dora", tenant, "developer")
    with httpx.Client(base_url=system, timeout=30, headers=headers) as client:
        body = {"model_name": "m1", "provider": "local", "kind": "chat"}
        registered = client.post(f"/v1/tenants/{tenant}/models", json=body, headers=WAIT)
        assert registered.status_code == 201, registered.text
        model = client.get(f"/v1/tenants/{tenant}/models/m1")
        assert model.status_code == 200, model.text


def test_forged_tokens_are_refused_with_401_and_produce_nothing(
    system: str, settings: Settings, tenants: tuple[str, str]
) -> None:
    tenant, _ = tenants
    forger = Forger(settings)
    # The control: the same forger's correctly signed token is accepted, so each refusal
    # below is about the one thing that attack changed.
    control = httpx.get(
        f"{system}/v1/tenants/{tenant}",
        headers={"Authorization": f"Bearer {forger.sign(tenant)}"},
        timeout=30,
    )
    assert control.status_code == 200, control.text
    before = (high_watermark(settings, COMMANDS), high_watermark(settings, AUDIT))
    for name, token in attacks(forger, tenant).items():
        response = httpx.post(
            f"{system}/v1/tenants/{tenant}/users",
            json={"user_id": f"u-{uuid.uuid4().hex[:6]}", "display_name": "X", "roles": ["admin"]},
            headers={"Authorization": f"Bearer {token}"},
            timeout=30,
        )
        body = assert_problem(response, 401, None)
        assert response.headers["www-authenticate"].startswith("Bearer"), name
        assert body["reason"], name
    assert (high_watermark(settings, COMMANDS), high_watermark(settings, AUDIT)) == before
    metrics = httpx.get(f"{system}/metrics", timeout=30).text
    for reason in ("algorithm", "expired", "not_yet_valid", "iss", "aud", "signature"):
        assert f'aion_auth_failures_total{{reason="{reason}",status="401"}}' in metrics, reason


def test_no_credential_and_a_malformed_header_are_401(
    system: str, tenants: tuple[str, str]
) -> None:
    tenant, _ = tenants
    bare = httpx.get(f"{system}/v1/tenants/{tenant}/tasks", timeout=10)
    assert assert_problem(bare, 401, None)["reason"] == "missing"
    basic = httpx.get(
        f"{system}/v1/tenants/{tenant}/tasks", headers={"Authorization": "Basic eDp5"}, timeout=10
    )
    assert assert_problem(basic, 401, None)["reason"] == "malformed"
    # Health, metrics and the OpenAPI document stay public.
    assert httpx.get(f"{system}/healthz", timeout=10).status_code == 200
    assert httpx.get(f"{system}/openapi.json", timeout=10).status_code == 200


def test_another_tenants_token_is_403_recorded_in_the_audit_log_and_produces_no_command(
    system: str, settings: Settings, tenants: tuple[str, str]
) -> None:
    tenant, other = tenants
    before = high_watermark(settings, COMMANDS)
    outsider = bearer("eve", other, "admin")
    for method, path, body in (
        ("GET", f"/v1/tenants/{tenant}/tasks", None),
        (
            "POST",
            f"/v1/tenants/{tenant}/users",
            {"user_id": "eve", "display_name": "E", "roles": ["admin"]},
        ),
        ("GET", f"/v1/tenants/{tenant}/audit", None),
    ):
        response = httpx.request(method, f"{system}{path}", json=body, headers=outsider, timeout=30)
        problem = assert_problem(response, 403, None)
        assert problem["policies"] == ["api-tenant-isolation"], problem
    assert high_watermark(settings, COMMANDS) == before
    with admin_client(system) as admin:
        entries = wait_for_audit(admin, tenant, "denial", lambda e: e["actor"] == "eve")
    assert entries[0]["outcome"] == "denied"


def wait_for_audit(
    client: httpx.Client, tenant: str, kind: str, match: Any, timeout: float = 30
) -> list[dict[str, Any]]:
    deadline = time.monotonic() + timeout
    while True:
        listed = client.get(f"/v1/tenants/{tenant}/audit", params={"kind": kind})
        assert listed.status_code == 200, listed.text
        found = [e for e in listed.json()["items"] if match(e)]
        if found or time.monotonic() > deadline:
            assert found, listed.json()
            return found
        time.sleep(0.3)


def test_roles_are_enforced_at_the_edge(
    system: str, settings: Settings, tenants: tuple[str, str]
) -> None:
    tenant, _ = tenants
    viewer = bearer("vic", tenant, "viewer")
    assert (
        httpx.get(f"{system}/v1/tenants/{tenant}/tasks", headers=viewer, timeout=30).status_code
        == 200
    )
    before = high_watermark(settings, COMMANDS)
    refused = httpx.post(
        f"{system}/v1/tenants/{tenant}/tasks",
        json={"agent_name": "echo", "input": {}},
        headers=viewer,
        timeout=30,
    )
    problem = assert_problem(refused, 403, None)
    assert "POST /v1/tenants/{tenant}/tasks" in problem["detail"]
    developer = bearer("dev", tenant, "developer")
    policy = httpx.put(
        f"{system}/v1/tenants/{tenant}/policies/p1",
        json={"cedar": "forbid(principal, action, resource) when { false };"},
        headers=developer,
        timeout=30,
    )
    assert_problem(policy, 403, None)
    assert high_watermark(settings, COMMANDS) == before
    created = httpx.post(
        f"{system}/v1/tenants",
        json={"tenant_id": new_tenant_id(), "display_name": "N"},
        headers=bearer("boss", tenant, "admin"),
        timeout=30,
    )
    assert_problem(created, 403, None)


def test_a_tenant_policy_narrows_a_role_at_the_edge(system: str, tenants: tuple[str, str]) -> None:
    tenant, _ = tenants
    cedar = (
        'forbid(principal in Role::"viewer", '
        'action == Action::"GET /v1/tenants/{tenant}/models", resource);'
    )
    with admin_client(system) as admin:
        put = admin.put(
            f"/v1/tenants/{tenant}/policies/no-model-list", json={"cedar": cedar}, headers=WAIT
        )
        assert put.status_code in (200, 201), put.text
    viewer = bearer("vic", tenant, "viewer")
    deadline = time.monotonic() + 15  # the API caches a tenant's policies for 2 s
    while True:
        listed = httpx.get(f"{system}/v1/tenants/{tenant}/models", headers=viewer, timeout=30)
        if listed.status_code == 403 or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    problem = assert_problem(listed, 403, None)
    assert problem["policies"] == ["tenant:no-model-list"]
    assert (
        httpx.get(f"{system}/v1/tenants/{tenant}/tasks", headers=viewer, timeout=30).status_code
        == 200
    )


def test_api_keys_shown_once_scoped_listed_without_secret_and_revocable(
    system: str, settings: Settings, tenants: tuple[str, str]
) -> None:
    tenant, other = tenants
    admin = bearer("ada", tenant, "admin")
    with httpx.Client(base_url=system, timeout=30, headers=admin) as client:
        made = client.post(
            f"/v1/tenants/{tenant}/api-keys",
            json={"name": "ci", "roles": ["viewer"]},
            headers=WAIT,
        )
        assert made.status_code == 201, made.text
        key, key_id = made.json()["api_key"], made.json()["key_id"]
        assert key.startswith(f"aion_{key_id}_")
        listed = client.get(f"/v1/tenants/{tenant}/api-keys")
        assert listed.status_code == 200, listed.text
        assert key.split("_", 2)[2] not in listed.text and "secret" not in listed.text
        assert [k["name"] for k in listed.json()["items"] if k["key_id"] == key_id] == ["ci"]
        bad = client.post(
            f"/v1/tenants/{tenant}/api-keys",
            json={"name": "x", "roles": ["viewer"], "secret_sha256": "0" * 64},
        )
        assert_problem(bad, 422, "/secret_sha256")
        bad_role = client.post(
            f"/v1/tenants/{tenant}/api-keys", json={"name": "x", "roles": ["root"]}
        )
        assert_problem(bad_role, 422, "/roles/0")
    as_key = {"X-API-Key": key}
    assert (
        httpx.get(f"{system}/v1/tenants/{tenant}/tasks", headers=as_key, timeout=30).status_code
        == 200
    )
    as_bearer = {"Authorization": f"Bearer {key}"}
    assert (
        httpx.get(f"{system}/v1/tenants/{tenant}/tasks", headers=as_bearer, timeout=30).status_code
        == 200
    )
    assert_problem(
        httpx.get(f"{system}/v1/tenants/{other}/tasks", headers=as_key, timeout=30), 403, None
    )
    wrong = {"X-API-Key": key[:-4] + "AAAA"}
    assert (
        assert_problem(
            httpx.get(f"{system}/v1/tenants/{tenant}/tasks", headers=wrong, timeout=30), 401, None
        )["reason"]
        == "unknown_key"
    )
    with httpx.Client(base_url=system, timeout=30, headers=admin) as client:
        revoked = client.delete(f"/v1/tenants/{tenant}/api-keys/{key_id}", headers=WAIT)
        assert revoked.status_code == 200, revoked.text
    before = high_watermark(settings, COMMANDS)
    refused = httpx.post(
        f"{system}/v1/tenants/{tenant}/tasks",
        json={"agent_name": "echo", "input": {}},
        headers=as_key,
        timeout=30,
    )
    assert assert_problem(refused, 401, None)["reason"] == "revoked"
    assert high_watermark(settings, COMMANDS) == before


def test_a_keys_commands_carry_it_as_the_actor(system: str, tenants: tuple[str, str]) -> None:
    tenant, _ = tenants
    with httpx.Client(base_url=system, timeout=30, headers=bearer("ada", tenant, "admin")) as c:
        made = c.post(
            f"/v1/tenants/{tenant}/api-keys",
            json={"name": "dev", "roles": ["developer"]},
            headers=WAIT,
        )
        assert made.status_code == 201, made.text
    key, key_id = made.json()["api_key"], made.json()["key_id"]
    body = {"model_name": "by-key", "provider": "local", "kind": "chat"}
    done = httpx.post(
        f"{system}/v1/tenants/{tenant}/models",
        json=body,
        headers={"X-API-Key": key, **WAIT},
        timeout=30,
    )
    assert done.status_code == 201, done.text
    with admin_client(system) as admin:
        entries = wait_for_audit(admin, tenant, "command", lambda e: e["actor"] == f"key:{key_id}")
    assert entries[0]["action"] == "ModelRegistered"


def test_a_burst_past_the_keys_limit_is_429_with_retry_after_and_produces_nothing(
    system: str, settings: Settings, tenants: tuple[str, str]
) -> None:
    tenant, _ = tenants
    with httpx.Client(base_url=system, timeout=30, headers=bearer("ada", tenant, "admin")) as c:
        made = c.post(
            f"/v1/tenants/{tenant}/api-keys",
            json={"name": "slow", "roles": ["developer"], "rate_per_s": 0.2, "burst": 3},
            headers=WAIT,
        )
        assert made.status_code == 201, made.text
    slow = {"X-API-Key": made.json()["api_key"]}
    statuses = []
    with httpx.Client(base_url=system, timeout=30, headers=slow) as client:
        for _ in range(3):
            ok = client.get(f"/v1/tenants/{tenant}/tasks")
            statuses.append(ok.status_code)
            assert ok.headers["ratelimit-limit"] == "3"
        assert statuses == [200, 200, 200]
        assert ok.headers["ratelimit-remaining"] == "0"
        before = high_watermark(settings, COMMANDS)
        limited = client.post(
            f"/v1/tenants/{tenant}/models",
            json={"model_name": "burst", "provider": "local", "kind": "chat"},
        )
    problem = assert_problem(limited, 429, None)
    assert int(limited.headers["retry-after"]) >= 1
    assert limited.headers["ratelimit-remaining"] == "0"
    assert "retry after" in problem["detail"]
    assert high_watermark(settings, COMMANDS) == before


def test_another_tenants_command_status_is_not_found(system: str, tenants: tuple[str, str]) -> None:
    tenant, other = tenants
    with httpx.Client(base_url=system, timeout=30, headers=bearer("ada", tenant, "admin")) as c:
        sent = c.post(
            f"/v1/tenants/{tenant}/models",
            json={"model_name": "mine", "provider": "local", "kind": "chat"},
        )
        assert sent.status_code == 202, sent.text
        command_id = sent.json()["command_id"]
        assert c.get(f"/v1/commands/{command_id}").status_code == 200
    peek = httpx.get(
        f"{system}/v1/commands/{command_id}", headers=bearer("eve", other, "admin"), timeout=30
    )
    assert_problem(peek, 404, "command_id")


def test_browser_sign_in_with_pkce_sets_a_session_and_logout_ends_it(
    system: str, settings: Settings, tenants: tuple[str, str]
) -> None:
    tenant, _ = tenants
    with httpx.Client(base_url=system, timeout=30) as browser:
        start = browser.get("/auth/login", params={"return_to": "/v1/tenants/" + tenant})
        assert start.status_code == 302
        authorize = start.headers["location"]
        query = parse_qs(urlparse(authorize).query)
        assert query["code_challenge_method"] == ["S256"] and query["code_challenge"][0]
        assert authorize.startswith(settings.issuer)
        # The person at the provider's login form: a user name and the claims to sign in with.
        signed = httpx.post(
            authorize,
            data={"username": "sam", "claims": json.dumps({"tenant": tenant, "roles": ["viewer"]})},
            timeout=30,
        )
        assert signed.status_code == 302, signed.text
        back = browser.get(signed.headers["location"])
        assert back.status_code == 303, back.text
        assert back.headers["location"] == f"/v1/tenants/{tenant}"
        cookie = back.headers["set-cookie"].lower()
        assert "httponly" in cookie and "samesite=lax" in cookie
        me = browser.get("/auth/session")
        assert me.json() == {"subject": "sam", "tenant": tenant, "roles": ["viewer"]}
        assert browser.get(f"/v1/tenants/{tenant}/tasks").status_code == 200
        assert browser.post(f"/v1/tenants/{tenant}/tasks", json={}).status_code == 403
        # The same code cannot be exchanged twice: a replayed callback fails.
        assert browser.get(signed.headers["location"]).status_code == 400
        assert browser.post("/auth/logout").status_code == 303
        assert browser.get(f"/v1/tenants/{tenant}/tasks").status_code == 401
    with admin_client(system) as admin:
        wait_for_audit(admin, tenant, "login", lambda e: e["actor"] == "sam")
        wait_for_audit(admin, tenant, "logout", lambda e: e["actor"] == "sam")


def test_a_callback_nobody_started_is_refused(system: str) -> None:
    response = httpx.get(
        f"{system}/auth/callback", params={"state": "forged", "code": "x"}, timeout=10
    )
    assert_problem(response, 400, "state")
