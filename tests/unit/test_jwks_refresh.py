"""The JWKS and the discovery document are refreshed by their cache lifetime (issue 17,
finding 14).

The issuer is a real HTTP server on a loopback port whose keys, Cache-Control and health the
test controls. The attack: the issuer withdraws a key (it leaked); tokens signed with it must
stop verifying once the JWKS's lifetime is over. They used to verify for as long as the API ran,
since the JWKS was only ever refetched for an unknown ``kid``.
"""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Iterator
from typing import Any

import pytest
from joserfc import jwt
from joserfc.jwk import RSAKey
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from aion.settings import Settings
from api.cache_lifetime import lifetime, max_age
from api.tokens import InvalidToken, TokenVerifier
from tests.unit.local_server import LocalServer


class RotatingIssuer:
    """An OIDC issuer whose keys rotate on demand; ``cache_control`` is sent with both
    documents, ``down`` makes both answer 503, ``jwks_path`` moves the JWKS."""

    def __init__(self) -> None:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}/realm"
        self.keys = [RSAKey.generate_key(2048, {"kid": "k1"}, private=True)]
        self.cache_control: str | None = None
        self.down = False
        self.jwks_path = "jwks"
        self.hits = {"discovery": 0, "jwks": 0}

        def answer(body: dict[str, Any]) -> Response:
            if self.down:
                return Response(status_code=503)
            headers = {"Cache-Control": self.cache_control} if self.cache_control else {}
            return JSONResponse(body, headers=headers)

        async def discovery(_: Request) -> Response:
            self.hits["discovery"] += 1
            return answer({"issuer": self.url, "jwks_uri": f"{self.url}/{self.jwks_path}"})

        async def jwks(request: Request) -> Response:
            if request.path_params["path"] != self.jwks_path:
                return Response(status_code=404)
            self.hits["jwks"] += 1
            return answer({"keys": [k.as_dict(private=False) for k in self.keys]})

        app = Starlette(
            routes=[
                Route("/realm/.well-known/openid-configuration", discovery),
                Route("/realm/{path}", jwks),
            ]
        )
        self.served = LocalServer(app, self.port)

    def __enter__(self) -> RotatingIssuer:
        self.served.__enter__()
        return self

    def __exit__(self, *_: object) -> None:
        self.served.__exit__()

    def sign(self, key: RSAKey, sub: str) -> str:
        now = int(time.time())
        claims = {"iss": self.url, "aud": "aion", "sub": sub, "iat": now, "exp": now + 300}
        return jwt.encode({"alg": "RS256", "kid": key.kid}, claims, key, algorithms=["RS256"])


@pytest.fixture()
def issuer() -> Iterator[RotatingIssuer]:
    with RotatingIssuer() as running:
        yield running


def verifier(issuer: RotatingIssuer, **settings: Any) -> TokenVerifier:
    base: dict[str, Any] = {"oidc_cache_min_s": 0.0, "jwks_refresh_min_s": 1.0}
    return TokenVerifier(Settings(oidc_issuer=issuer.url, **(base | settings)))


async def outcome(v: TokenVerifier, token: str) -> str:
    """``sub`` of an accepted token, the refusal's reason otherwise."""
    try:
        return str((await v.verify(token))["sub"])
    except InvalidToken as exc:
        return exc.reason


def test_a_withdrawn_key_stops_verifying_once_the_jwks_expires(issuer: RotatingIssuer) -> None:
    issuer.cache_control = "max-age=1"
    v = verifier(issuer)
    leaked = issuer.keys[0]
    successor = RSAKey.generate_key(2048, {"kid": "k2"}, private=True)

    async def run() -> list[str]:
        remembered = issuer.sign(leaked, "first")
        seen = [await outcome(v, remembered)]
        issuer.keys = [successor]  # the issuer withdraws the leaked key
        await asyncio.sleep(1.5)  # past the JWKS's max-age
        seen.append(await outcome(v, remembered))  # verified before: not taken from memory
        seen.append(await outcome(v, issuer.sign(leaked, "forged")))
        seen.append(await outcome(v, issuer.sign(successor, "next")))
        await v.close()
        return seen

    assert asyncio.run(run()) == ["first", "unknown_key", "unknown_key", "next"]
    assert issuer.hits["jwks"] == 2


def test_within_its_lifetime_the_jwks_is_not_refetched(issuer: RotatingIssuer) -> None:
    issuer.cache_control = "public, max-age=3600"
    v = verifier(issuer)

    async def run() -> None:
        for n in range(5):
            assert await outcome(v, issuer.sign(issuer.keys[0], f"u{n}")) == f"u{n}"
        await v.close()

    asyncio.run(run())
    assert issuer.hits == {"discovery": 1, "jwks": 1}


def test_the_floor_holds_against_no_store_and_the_ceiling_against_a_long_max_age(
    issuer: RotatingIssuer,
) -> None:
    issuer.cache_control = "no-store"
    floored = verifier(issuer, oidc_cache_min_s=3600)
    issuer_ceiling = verifier(issuer, oidc_cache_max_s=0.5)

    async def run() -> None:
        for n in range(3):
            await outcome(floored, issuer.sign(issuer.keys[0], f"f{n}"))
        assert floored.fetches == 1  # no-store, yet not one fetch per request
        issuer.cache_control = "max-age=86400"
        await outcome(issuer_ceiling, issuer.sign(issuer.keys[0], "c0"))
        await asyncio.sleep(1.5)
        await outcome(issuer_ceiling, issuer.sign(issuer.keys[0], "c1"))
        assert issuer_ceiling.fetches == 2  # a day asked, half a second kept
        await floored.close()
        await issuer_ceiling.close()

    asyncio.run(run())


def test_the_discovery_document_is_refreshed_too(issuer: RotatingIssuer) -> None:
    """The issuer moves its JWKS (a new jwks_uri) and rotates its key there."""
    issuer.cache_control = "max-age=1"
    v = verifier(issuer)
    moved = RSAKey.generate_key(2048, {"kid": "k-moved"}, private=True)

    async def run() -> str:
        await outcome(v, issuer.sign(issuer.keys[0], "before"))
        issuer.jwks_path, issuer.keys = "jwks-2", [moved]
        await asyncio.sleep(1.5)
        try:
            return await outcome(v, issuer.sign(moved, "after"))
        finally:
            await v.close()

    assert asyncio.run(run()) == "after"
    assert issuer.hits["discovery"] == 2


def test_an_issuer_outage_keeps_the_last_keys_and_retries_sparingly(
    issuer: RotatingIssuer,
) -> None:
    issuer.cache_control = "max-age=1"
    v = verifier(issuer, jwks_refresh_min_s=2.0)

    async def run() -> list[str]:
        seen = [await outcome(v, issuer.sign(issuer.keys[0], "up"))]
        issuer.down = True
        await asyncio.sleep(2.5)  # past the lifetime and the retry interval
        for n in range(5):
            seen.append(await outcome(v, issuer.sign(issuer.keys[0], f"down{n}")))
        await v.close()
        return seen

    assert asyncio.run(run()) == ["up", *(f"down{n}" for n in range(5))]
    # One refresh was tried (both documents answered 503), then none within the interval.
    assert issuer.hits == {"discovery": 2, "jwks": 2}


@pytest.mark.parametrize(
    ("headers", "seconds"),
    [
        ({}, 300),  # no Cache-Control: the default
        ({"cache-control": "max-age=600"}, 600),
        ({"cache-control": "public, max-age=600", "age": "100"}, 500),
        ({"cache-control": "max-age=5"}, 60),  # the floor
        ({"cache-control": "max-age=999999"}, 3600),  # the ceiling
        ({"cache-control": "no-store"}, 60),
        ({"cache-control": "no-cache, max-age=600"}, 60),
        ({"cache-control": "max-age=soon"}, 300),  # malformed: the default
    ],
)
def test_lifetime_of_a_response(headers: dict[str, str], seconds: float) -> None:
    assert lifetime(headers, 300, 60, 3600) == seconds


def test_max_age_is_read_case_insensitively() -> None:
    assert max_age('Private, Max-Age="120"') == 120
    assert max_age("private") is None
