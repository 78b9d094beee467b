"""The sign-in flow's pure parts: where it may send the browser back to, and PKCE."""

from __future__ import annotations

import base64
import hashlib

import pytest

from aion.local_tokens import TokenError, check_roles, pkce_pair
from api.login import _return_to


@pytest.mark.parametrize(
    ("asked", "sent_to"),
    [
        ("/console/tasks", "/console/tasks"),
        (None, "/"),
        ("", "/"),
        ("https://evil.example/", "/"),
        ("//evil.example/", "/"),
        ("/\\evil.example", "/"),
        ("javascript:alert(1)", "/"),
    ],
)
def test_only_a_path_on_this_server_is_a_return_address(asked: str | None, sent_to: str) -> None:
    assert _return_to(asked) == sent_to


def test_the_pkce_challenge_is_the_verifiers_s256() -> None:
    verifier, challenge = pkce_pair()
    assert 43 <= len(verifier) <= 128
    expected = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=")
    assert challenge == expected.decode()
    assert pkce_pair()[0] != verifier


def test_aion_token_refuses_unknown_roles_and_a_tenantless_non_admin() -> None:
    with pytest.raises(TokenError, match="unknown role"):
        check_roles(["root"], "acme")
    with pytest.raises(TokenError, match="platform admin"):
        check_roles(["admin"], None)
    check_roles(["platform-admin"], None)
