"""Refusing to start a role on development defaults once its services are external (issue 17).

On the embedded stack every default is safe enough: the local OIDC provider signs in anyone,
the S3 secret is printed in this repository and nothing is encrypted, but all of it listens on
loopback. The same defaults beside external services make a deployment that trusts anyone and
sends secrets in the clear, and it used to start without a word. ``AION_INSECURE_DEV=1`` says
"I know" (a compose stack on one laptop); it starts then, with a warning naming each default.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from urllib.parse import urlsplit

from aion.settings import DEFAULT_S3_SECRET, EMBEDDED, Settings

log = logging.getLogger(__name__)

OVERRIDE = "AION_INSECURE_DEV=1"


@dataclass(frozen=True)
class Insecure:
    """One development default: the variable, what is wrong with it, what to do."""

    variable: str
    problem: str
    remedy: str

    def line(self) -> str:
        return f"  - {self.variable}: {self.problem}. {self.remedy}."


class InsecureSettings(Exception):
    """Raised at a role's start-up; its text names every insecure setting."""


def insecure_settings(settings: Settings) -> list[Insecure]:
    """The development defaults in use, when some data service is outside the local stack
    (none on the embedded stack)."""
    if not settings.outside_services():
        return []
    found: list[Insecure] = []
    issuer = settings.issuer.rstrip("/")
    if settings.oidc_issuer is None or issuer == EMBEDDED["oidc"]:
        found.append(
            Insecure(
                "AION_OIDC_ISSUER",
                f"{'unset, so ' if settings.oidc_issuer is None else ''}tokens are verified"
                f" against the local mock provider ({EMBEDDED['oidc']}), which signs in any"
                " user with any roles",
                "Set it to your identity provider's https issuer URL",
            )
        )
    elif urlsplit(issuer).scheme != "https":
        found.append(
            Insecure(
                "AION_OIDC_ISSUER",
                f"{issuer} is not https, so whoever is on the path can serve their own keys"
                " and sign any token",
                "Use the provider's https issuer URL",
            )
        )
    if settings.s3_secret_key == DEFAULT_S3_SECRET:
        found.append(
            Insecure(
                "AION_S3_SECRET_KEY",
                f"the default ({DEFAULT_S3_SECRET}), published in Aion's source",
                "Set the object store's own secret key",
            )
        )
    if not settings.s3_secure:
        found.append(
            Insecure(
                "AION_S3_SECURE",
                f"false, so artifacts and the S3 secret go to {settings.s3} in plaintext",
                "Serve S3 over TLS and set AION_S3_SECURE=true",
            )
        )
    return found


def refusal(settings: Settings, found: list[Insecure]) -> str:
    """The message a refused role prints: each setting, then how to start anyway."""
    services = ", ".join(settings.outside_services())
    lines = [
        f"refusing to start with development defaults: these services are external"
        f" ({services}), and",
        *(item.line() for item in found),
        f"For a development stack on purpose, set {OVERRIDE}.",
    ]
    return "\n".join(lines)


def refuse_insecure(settings: Settings) -> None:
    """Raise InsecureSettings when a development default meets external services, unless
    ``AION_INSECURE_DEV`` allows it (then each one is logged as a warning)."""
    found = insecure_settings(settings)
    if not found:
        return
    if not settings.insecure_dev:
        raise InsecureSettings(refusal(settings, found))
    for item in found:
        log.warning("%s allows an insecure setting: %s: %s", OVERRIDE, item.variable, item.problem)
