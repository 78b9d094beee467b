"""The local OpenID Connect provider: navikt's mock-oauth2-server, from Maven Central jars.

It is a real provider for development and tests: a discovery document, a JWKS, the
authorization code flow with PKCE and an interactive login form where any user name and claims
(``tenant``, ``roles``) can be typed, and RS256-signed tokens. Its signing key is generated
at the first start into the stack's data folder (mode 0600; the jar's built-in keys are
public), so tokens stay valid across restarts. Its login form signs anyone in: never use it in
production, point ``AION_OIDC_ISSUER`` at a real provider instead.
"""

from __future__ import annotations

import json
from pathlib import Path

import httpx
from joserfc.jwk import RSAKey

from aion.settings import OIDC_PORT
from aion.stack.base import Service
from aion.stack.maven_jars import fetch_jars
from aion.stack.prerequisites import java

MOCK_OAUTH2_VERSION = "3.0.1"
ISSUER_ID = "aion"
MAIN_CLASS = "no.nav.security.mock.oauth2.StandaloneMockOAuth2ServerKt"


def provider_config(
    audience: str, signing_key: dict[str, object], token_seconds: int = 3600
) -> dict[str, object]:
    """Interactive login, our own signing key, and every token of issuer ``aion`` addressed to
    Aion's audience."""
    return {
        "interactiveLogin": True,
        "httpServer": "NettyWrapper",
        "tokenProvider": {
            "keyProvider": {"initialKeys": json.dumps(signing_key), "algorithm": "RS256"}
        },
        "tokenCallbacks": [
            {
                "issuerId": ISSUER_ID,
                "tokenExpiry": token_seconds,
                "requestMappings": [
                    {"requestParam": "client_id", "match": "*", "claims": {"aud": [audience]}}
                ],
            }
        ],
    }


class Oidc(Service):
    name = "oidc"
    port = OIDC_PORT
    ready_timeout = 60.0

    @property
    def address(self) -> str:
        return self.settings.issuer

    @property
    def libs(self) -> Path:
        return self.cache / f"mock-oauth2-server-{MOCK_OAUTH2_VERSION}" / "libs"

    def prepare(self) -> None:
        java(17)
        if (self.libs / f"mock-oauth2-server-{MOCK_OAUTH2_VERSION}.jar").exists():
            return
        fetch_jars(
            "oidc.xml",
            self.libs,
            "Fetching the OIDC provider (mock-oauth2-server) from Maven Central",
            self.home / "logs" / "install.log",
        )

    @property
    def key_file(self) -> Path:
        return self.data_dir / "signing-key.json"

    def signing_key(self) -> dict[str, object]:
        """The provider's private signing key (a JWK), generated on first use."""
        if not self.key_file.exists():
            key = RSAKey.generate_key(2048, {"use": "sig", "alg": "RS256"}, private=True)
            self.data_dir.mkdir(parents=True, exist_ok=True)
            partial = self.key_file.with_suffix(".partial")
            partial.touch(mode=0o600)
            partial.write_text(json.dumps(key.as_dict(private=True)))
            partial.rename(self.key_file)
        loaded: dict[str, object] = json.loads(self.key_file.read_text())
        return loaded

    def start(self) -> None:
        self.check_port_free()
        self.data_dir.mkdir(parents=True, exist_ok=True)
        config = self.data_dir / "config.json"
        settings = provider_config(self.settings.oidc_audience, self.signing_key())
        config.touch(mode=0o600)
        config.write_text(json.dumps(settings, indent=2))
        self.process.spawn(
            [
                str(java(17)),
                "-Xmx128m",
                "-XX:+UseSerialGC",
                "-cp",
                f"{self.libs}/*",
                MAIN_CLASS,
            ],
            env={
                "SERVER_HOSTNAME": "127.0.0.1",
                "SERVER_PORT": str(OIDC_PORT),
                "JSON_CONFIG_PATH": str(config),
            },
            cwd=self.data_dir,
        )

    def healthy(self) -> bool:
        response = httpx.get(f"{self.address}/.well-known/openid-configuration", timeout=3)
        return response.status_code == 200
