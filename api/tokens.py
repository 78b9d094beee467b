"""Verifying OIDC bearer tokens against the issuer's JWKS (joserfc).

The JWKS is found through the issuer's discovery document. Both are cached for as long as the
issuer's Cache-Control says, within ``AION_OIDC_CACHE_MIN_S`` and ``AION_OIDC_CACHE_MAX_S``
(``api/cache_lifetime.py``), so a key the issuer removed stops verifying within the ceiling.
When a refresh fails the last copy is kept (an issuer outage must not sign everyone out) and
retried at most once per ``jwks_refresh_min_s``. A token whose ``kid`` is not in the cache makes
one refetch (the issuer may have rotated its keys), at most once per ``jwks_refresh_min_s``, so
a stream of forged kids cannot turn the API into a JWKS flood.
Only asymmetric algorithms from the allow-list are accepted: ``none`` and HMAC never are, so a
token "signed" with the public key as an HMAC secret is refused before any key is touched.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

import httpx
from joserfc import jws, jwt
from joserfc.errors import ExpiredTokenError, JoseError, MissingClaimError
from joserfc.jwk import KeySet
from joserfc.jwt import JWTClaimsRegistry

from aion.settings import Settings
from api.cache_lifetime import lifetime

FORBIDDEN_ALGORITHMS = frozenset({"none", "HS256", "HS384", "HS512"})

log = logging.getLogger(__name__)


class InvalidToken(Exception):
    """A token that authenticates nobody; ``reason`` is a short machine word for metrics."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


@dataclass
class Jwks:
    keys: KeySet
    fetched_at: float  # monotonic
    expires_at: float  # monotonic: refetched from then on


@dataclass
class Discovery:
    document: dict[str, Any]
    expires_at: float  # monotonic


class TokenVerifier:
    """Verifies tokens of one issuer for one audience."""

    def __init__(self, settings: Settings, http: httpx.AsyncClient | None = None) -> None:
        self.issuer = settings.issuer.rstrip("/")
        self.audience = settings.oidc_audience
        self.algorithms = [a for a in settings.algorithms if a not in FORBIDDEN_ALGORITHMS]
        self.leeway = settings.oidc_leeway_s
        self.refresh_min_s = settings.jwks_refresh_min_s
        self.cache_s = (
            settings.oidc_cache_default_s,
            settings.oidc_cache_min_s,
            settings.oidc_cache_max_s,
        )
        self.http = http or httpx.AsyncClient(timeout=5)
        self._jwks: Jwks | None = None
        self._discovery: Discovery | None = None
        self._lock = asyncio.Lock()
        self._jwks_tried_at = float("-inf")  # monotonic: the last JWKS fetch, even a failed one
        self.fetches = 0  # JWKS fetches so far (tests and metrics)
        self.discovery_fetches = 0
        # Tokens already verified, with their claims: a caller sends the same token for an
        # hour, and a signature check costs more than the rest of a request's gate.
        self._verified: OrderedDict[tuple[str, str, str], dict[str, Any]] = OrderedDict()
        self.max_verified = 10_000

    async def close(self) -> None:
        await self.http.aclose()

    async def discovery(self) -> dict[str, Any]:
        """The issuer's discovery document (endpoints of the login flow, the JWKS URI), kept
        for its cache lifetime; the last copy while the issuer cannot give a new one."""
        held = self._discovery
        if held is not None and time.monotonic() < held.expires_at:
            return held.document
        try:
            response = await self.http.get(f"{self.issuer}/.well-known/openid-configuration")
            response.raise_for_status()
            document = response.json()
        except (httpx.HTTPError, ValueError) as exc:
            if held is None:
                raise
            log.warning("keeping the issuer's discovery document: refresh failed: %s", exc)
            held.expires_at = time.monotonic() + self.refresh_min_s
            return held.document
        self.discovery_fetches += 1
        if str(document.get("issuer", "")).rstrip("/") != self.issuer:
            raise InvalidToken("issuer", "the discovery document names another issuer")
        expires_at = time.monotonic() + lifetime(response.headers, *self.cache_s)
        self._discovery = Discovery(dict(document), expires_at)
        return self._discovery.document

    async def _fetch(self) -> Jwks:
        self._jwks_tried_at = time.monotonic()
        uri = str((await self.discovery())["jwks_uri"])
        response = await self.http.get(uri)
        response.raise_for_status()
        self.fetches += 1
        keys = KeySet.import_key_set(response.json())
        now = time.monotonic()
        if self._jwks is not None and _kids(self._jwks.keys) - _kids(keys):
            # A key was withdrawn: tokens remembered as verified may have been signed by it.
            self._verified.clear()
        self._jwks = Jwks(keys, now, now + lifetime(response.headers, *self.cache_s))
        return self._jwks

    async def key_set(self, kid: str | None) -> KeySet:
        """The cached keys: refetched when their lifetime is over, or when ``kid`` is unknown
        unless the last fetch was too recent."""
        async with self._lock:
            jwks = self._jwks
            now = time.monotonic()
            may_retry = now - self._jwks_tried_at >= self.refresh_min_s
            try:
                if jwks is None:
                    jwks = await self._fetch()
                elif now >= jwks.expires_at and may_retry:
                    jwks = await self._refresh(jwks)
                unknown = kid is not None and not _has_kid(jwks.keys, kid)
                if unknown and may_retry and self._jwks_tried_at < now:  # not fetched above
                    jwks = await self._fetch()
            except (httpx.HTTPError, ValueError, JoseError) as exc:
                raise InvalidToken(
                    "jwks_unavailable", f"the issuer's keys cannot be fetched: {exc}"
                ) from exc
            return jwks.keys

    async def _refresh(self, held: Jwks) -> Jwks:
        """A new JWKS, or the one held while the issuer cannot give one (tried again after
        ``refresh_min_s``): an outage of the issuer must not refuse every token."""
        try:
            return await self._fetch()
        except (httpx.HTTPError, ValueError, JoseError) as exc:
            log.warning("keeping the issuer's JWKS: refresh failed: %s", exc)
            held.expires_at = time.monotonic() + self.refresh_min_s
            return held

    def _keys_fresh(self) -> bool:
        """Whether the JWKS is within its lifetime: a token remembered as verified is taken
        from memory only then, so that a withdrawn key is noticed even for it."""
        return self._jwks is not None and time.monotonic() < self._jwks.expires_at

    async def verify(
        self, token: str, audiences: list[str] | None = None, nonce: str | None = None
    ) -> dict[str, Any]:
        """The token's claims, or InvalidToken saying why not. ``audiences``: those accepted
        (default: Aion's); ``nonce``: the one an ID token must carry."""
        key = (token, ",".join(audiences or []), nonce or "")
        claims = self._verified.get(key) if self._keys_fresh() else None
        if claims is not None:
            if float(claims["exp"]) + self.leeway > time.time():
                self._verified.move_to_end(key)
                return claims
            del self._verified[key]
        claims = await self._verify(token, audiences, nonce)
        self._verified[key] = claims
        if len(self._verified) > self.max_verified:
            self._verified.popitem(last=False)
        return claims

    async def _verify(
        self, token: str, audiences: list[str] | None, nonce: str | None
    ) -> dict[str, Any]:
        try:
            header = jws.extract_compact(token.encode()).headers()
        except (JoseError, ValueError) as exc:
            raise InvalidToken("malformed", "the bearer token is not a compact JWS") from exc
        alg = str(header.get("alg", ""))
        if alg not in self.algorithms:
            raise InvalidToken(
                "algorithm", f"tokens signed with {alg or 'no algorithm'} are refused"
            )
        kid = header.get("kid")
        keys = await self.key_set(str(kid) if kid is not None else None)
        if kid is not None and not _has_kid(keys, str(kid)):
            raise InvalidToken("unknown_key", f"no key {kid!r} in the issuer's JWKS")
        try:
            decoded = jwt.decode(token, keys, algorithms=[alg])
        except JoseError as exc:
            raise InvalidToken(
                "signature", f"the token's signature does not verify: {exc}"
            ) from exc
        claims = dict(decoded.claims)
        options: dict[str, Any] = {
            "iss": {"essential": True, "value": self.issuer},
            "aud": {"essential": True, "values": audiences or [self.audience]},
            "exp": {"essential": True},
            "sub": {"essential": True},
        }
        if nonce is not None:
            options["nonce"] = {"essential": True, "value": nonce}
        registry = JWTClaimsRegistry(leeway=self.leeway, **options)
        try:
            registry.validate(claims)
        except JoseError as exc:
            raise InvalidToken(_claim_reason(exc), f"the token is not acceptable: {exc}") from exc
        return claims


def _has_kid(keys: KeySet, kid: str) -> bool:
    return any(key.kid == kid for key in keys.keys)


def _kids(keys: KeySet) -> set[str | None]:
    return {key.kid for key in keys.keys}


def _claim_reason(exc: JoseError) -> str:
    """A short word for metrics and the problem's ``reason``: expired, not_yet_valid,
    missing_<claim>, or the claim that is wrong (iss, aud, nonce...)."""
    claim = str(getattr(exc, "claim", "") or "")
    if isinstance(exc, ExpiredTokenError):
        return "expired"
    if isinstance(exc, MissingClaimError):
        return f"missing_{claim}"
    if claim == "nbf":
        return "not_yet_valid"
    return claim or "claims"
