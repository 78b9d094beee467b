"""Bearer token verification against an issuer's JWKS, served over real HTTP.

The issuer here is a small Starlette app on a loopback port whose keys the test controls, so
that rotation and forged tokens can be exercised; the stack tests run the same checks against
the local OIDC provider.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import socket
import time
from collections.abc import Iterator
from typing import Any

import pytest
from joserfc import jwt
from joserfc.jwk import RSAKey
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from aion.settings import Settings
from api.tokens import InvalidToken, TokenVerifier
from tests.unit.local_server import LocalServer


class Issuer:
    def __init__(self) -> None:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}/realm"
        self.keys = [RSAKey.generate_key(2048, {"kid": "k1"}, private=True)]
        self.jwks_hits = 0

        async def discovery(_: Request) -> JSONResponse:
            return JSONResponse({"issuer": self.url, "jwks_uri": f"{self.url}/jwks"})

        async def jwks(_: Request) -> JSONResponse:
            self.jwks_hits += 1
            return JSONResponse({"keys": [k.as_dict(private=False) for k in self.keys]})

        app = Starlette(
            routes=[
                Route("/realm/.well-known/openid-configuration", discovery),
                Route("/realm/jwks", jwks),
            ]
        )
        self.served = LocalServer(app, self.port)

    def __enter__(self) -> Issuer:
        self.served.__enter__()
        return self

    def __exit__(self, *_: object) -> None:
        self.served.__exit__()

    def claims(self, **overrides: Any) -> dict[str, Any]:
        now = int(time.time())
        return {
            "iss": self.url,
            "aud": "aion",
            "sub": "alice",
            "iat": now,
            "nbf": now,
            "exp": now + 300,
            "tenant": "acme",
            "roles": ["developer"],
            **overrides,
        }

    def sign(self, key: RSAKey | None = None, alg: str = "RS256", **overrides: Any) -> str:
        key = key or self.keys[0]
        header = {"alg": alg, "kid": key.kid}
        return jwt.encode(header, self.claims(**overrides), key, algorithms=[alg])


@pytest.fixture(scope="module")
def issuer() -> Iterator[Issuer]:
    with Issuer() as running:
        yield running


def verifier(issuer: Issuer, **settings: Any) -> TokenVerifier:
    return TokenVerifier(Settings(oidc_issuer=issuer.url, **settings))


def verify(v: TokenVerifier, token: str, **kw: Any) -> dict[str, Any]:
    async def run() -> dict[str, Any]:
        try:
            return await v.verify(token, **kw)
        finally:
            await v.close()

    return asyncio.run(run())


def reason(v: TokenVerifier, token: str) -> str:
    with pytest.raises(InvalidToken) as caught:
        verify(v, token)
    return caught.value.reason


def b64(data: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


def test_a_good_token_gives_its_claims(issuer: Issuer) -> None:
    claims = verify(verifier(issuer), issuer.sign())
    assert claims["sub"] == "alice" and claims["tenant"] == "acme"


def test_alg_none_is_refused(issuer: Issuer) -> None:
    token = f"{b64({'alg': 'none', 'kid': 'k1'})}.{b64(issuer.claims())}."
    assert reason(verifier(issuer), token) == "algorithm"


def test_hs256_signed_with_the_public_key_is_refused(issuer: Issuer) -> None:
    # joserfc itself refuses a public key as an HMAC secret, so the forgery is made by hand.
    public_pem = issuer.keys[0].as_pem(private=False)
    signing_input = f"{b64({'alg': 'HS256', 'kid': 'k1'})}.{b64(issuer.claims(roles=['admin']))}"
    mac = hmac.new(public_pem, signing_input.encode(), hashlib.sha256).digest()
    token = f"{signing_input}.{base64.urlsafe_b64encode(mac).rstrip(b'=').decode()}"
    assert reason(verifier(issuer), token) == "algorithm"


def test_an_expired_token_is_refused_past_the_leeway(issuer: Issuer) -> None:
    now = int(time.time())
    assert reason(verifier(issuer), issuer.sign(exp=now - 120, iat=now - 400)) == "expired"
    # 10 s late is inside the 30 s leeway: clocks drift.
    assert verify(verifier(issuer), issuer.sign(exp=now - 10))["sub"] == "alice"


def test_a_token_not_yet_valid_is_refused(issuer: Issuer) -> None:
    later = int(time.time()) + 600
    assert reason(verifier(issuer), issuer.sign(nbf=later)) == "not_yet_valid"


def test_wrong_issuer_or_audience_is_refused(issuer: Issuer) -> None:
    assert reason(verifier(issuer), issuer.sign(iss="http://evil.example/realm")) == "iss"
    assert reason(verifier(issuer), issuer.sign(aud="another-api")) == "aud"


def test_a_token_without_sub_or_exp_is_refused(issuer: Issuer) -> None:
    claims = issuer.claims()
    del claims["exp"]
    key = issuer.keys[0]
    token = jwt.encode({"alg": "RS256", "kid": "k1"}, claims, key, algorithms=["RS256"])
    assert reason(verifier(issuer), token) == "missing_exp"


def test_a_tampered_payload_is_refused(issuer: Issuer) -> None:
    header, _, signature = issuer.sign().split(".")
    forged = f"{header}.{b64(issuer.claims(roles=['admin'], tenant='globex'))}.{signature}"
    assert reason(verifier(issuer), forged) == "signature"


def test_garbage_is_malformed(issuer: Issuer) -> None:
    assert reason(verifier(issuer), "not-a-jwt") == "malformed"


def test_an_unknown_kid_refetches_once_then_is_refused(issuer: Issuer) -> None:
    stranger = RSAKey.generate_key(2048, {"kid": "k-unknown"}, private=True)
    v = verifier(issuer, jwks_refresh_min_s=3600)

    async def run() -> list[str]:
        reasons = []
        await v.verify(issuer.sign())  # first fetch
        for _ in range(5):
            try:
                await v.verify(issuer.sign(stranger))
            except InvalidToken as exc:
                reasons.append(exc.reason)
        await v.close()
        return reasons

    assert asyncio.run(run()) == ["unknown_key"] * 5
    assert v.fetches == 1  # a flood of unknown kids refetched nothing within the window


def test_key_rotation_is_picked_up_by_refetching(issuer: Issuer) -> None:
    v = verifier(issuer, jwks_refresh_min_s=0)
    rotated = RSAKey.generate_key(2048, {"kid": "k2"}, private=True)

    async def run() -> dict[str, Any]:
        await v.verify(issuer.sign())
        issuer.keys.append(rotated)
        try:
            return await v.verify(issuer.sign(rotated))
        finally:
            issuer.keys.remove(rotated)
            await v.close()

    assert asyncio.run(run())["sub"] == "alice"
    assert v.fetches == 2


def test_an_id_token_must_carry_the_nonce(issuer: Issuer) -> None:
    token = issuer.sign(nonce="n-1", aud="aion-console")
    claims = verify(verifier(issuer), token, audiences=["aion-console"], nonce="n-1")
    assert claims["nonce"] == "n-1"
    with pytest.raises(InvalidToken):
        verify(verifier(issuer), token, audiences=["aion-console"], nonce="n-2")


def test_a_verified_token_is_remembered_until_it_expires(issuer: Issuer) -> None:
    v = verifier(issuer, oidc_leeway_s=0)
    token = issuer.sign(exp=int(time.time()) + 2)

    async def run() -> str:
        await v.verify(token)
        issuer.keys[0], saved = (
            RSAKey.generate_key(2048, {"kid": "k1"}, private=True),
            issuer.keys[0],
        )
        try:
            again = await v.verify(token)  # remembered: no new signature check, no refetch
            assert again["sub"] == "alice" and v.fetches == 1
            time.sleep(2.5)
            try:
                await v.verify(token)
            except InvalidToken as exc:
                return exc.reason
            return "accepted"
        finally:
            issuer.keys[0] = saved
            await v.close()

    assert asyncio.run(run()) == "expired"
