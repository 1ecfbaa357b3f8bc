"""Google's OAuth 2.0 token endpoint for service accounts, on loopback: the JWT-bearer grant (RFC 7523).

A Vertex AI client holding a service-account JSON signs a JWT with the account's private key (RS256; ``iss`` the
account's e-mail, ``aud`` Google's token endpoint ``https://oauth2.googleapis.com/token`` whatever ``token_uri``
the key file names, as google-auth writes it; a ``scope``; ``iat``/``exp`` at most an hour apart) and posts it as
``grant_type=urn:ietf:params:oauth:grant-type:jwt-bearer&assertion=<jwt>``. The endpoint checks all of that
against the public keys it was told to trust and answers ``{"access_token", "expires_in", "token_type"}``, or
Google's OAuth error object (``{"error": "invalid_grant", "error_description": ...}``, HTTP 400) otherwise.

``ServiceAccount.create()`` makes a throw-away account: a fresh 2048-bit RSA key (``cryptography``, which
google-auth itself depends on) and the JSON a user downloads from the Cloud console, with ``token_uri`` set to
the fake's. Tokens are minted per grant, random, and remembered, so the Vertex routes accept only tokens this
endpoint issued (and not yet expired) and a test can look for each one where it must never appear.
"""

from __future__ import annotations

import base64
import binascii
import json
import secrets
import threading
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs

from aiohttp import web
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

GRANT_TYPE = "urn:ietf:params:oauth:grant-type:jwt-bearer"
CLOUD_PLATFORM = "https://www.googleapis.com/auth/cloud-platform"
TOKEN_PATH = "/token"
# The audiences Google's token endpoint takes: the current one, which google-auth writes, and its older names.
AUDIENCES = frozenset(
    {
        "https://oauth2.googleapis.com/token",
        "https://www.googleapis.com/oauth2/v4/token",
        "https://accounts.google.com/o/oauth2/token",
    }
)
TOKEN_LIFETIME_S = 3599
MAX_ASSERTION_S = 3600  # Google refuses an assertion whose exp is more than an hour after its iat
CLOCK_SKEW_S = 300
# A token is honoured this long past the expiry announced with it: the client times `expires_in` from when the
# answer reached it, a little after the fake did, so once the fake refuses a token the client knows it is stale.
EXPIRY_MARGIN_S = 0.5


@dataclass(frozen=True)
class ServiceAccount:
    """A service account as its JSON key file describes it, plus the public half the endpoint verifies with."""

    client_email: str
    project_id: str
    private_key_id: str
    private_key_pem: str
    public_key: rsa.RSAPublicKey

    @classmethod
    def create(cls, project_id: str = "fake-project", name: str = "llm-scope-test") -> ServiceAccount:
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        pem = key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        ).decode()
        return cls(
            client_email=f"{name}@{project_id}.iam.gserviceaccount.com",
            project_id=project_id,
            private_key_id=secrets.token_hex(20),
            private_key_pem=pem,
            public_key=key.public_key(),
        )

    def info(self, token_uri: str) -> dict[str, str]:
        """The key file's fields, as `gcloud iam service-accounts keys create` writes them."""
        return {
            "type": "service_account",
            "project_id": self.project_id,
            "private_key_id": self.private_key_id,
            "private_key": self.private_key_pem,
            "client_email": self.client_email,
            "client_id": "1" * 21,
            "auth_uri": "https://accounts.google.com/o/oauth2/auth",
            "token_uri": token_uri,
            "auth_provider_x509_cert_url": "https://www.googleapis.com/oauth2/v1/certs",
            "universe_domain": "googleapis.com",
        }

    @property
    def key_body(self) -> str:
        """The PEM's base64 body, without its armour lines: what a leak of the private key would contain."""
        return "".join(line for line in self.private_key_pem.splitlines() if "-----" not in line)


class GrantRefused(Exception):
    """A grant the endpoint turns down: Google's OAuth `error` code and its `error_description`."""

    def __init__(self, error: str, description: str) -> None:
        super().__init__(description)
        self.error, self.description = error, description


def _b64(part: str) -> bytes:
    try:
        return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))
    except (binascii.Error, ValueError) as exc:
        raise GrantRefused("invalid_grant", "Invalid JWT: not base64url") from exc


class TokenIssuer:
    """The endpoint's state: the accounts it trusts and the tokens it issued. Thread-safe (tests read it)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._accounts: dict[str, tuple[ServiceAccount, int]] = {}  # e-mail → (account, token lifetime)
        self._issued: dict[str, tuple[str, float]] = {}  # token → (account, expiry in time.time())
        self._revoked: set[str] = set()
        self.refused: list[str] = []

    def trust(self, account: ServiceAccount, lifetime_s: int = TOKEN_LIFETIME_S) -> None:
        """Honour the account's grants; its tokens last `lifetime_s` (short ones test a client's refresh)."""
        with self._lock:
            self._accounts[account.client_email] = (account, lifetime_s)

    def revoke(self, account: ServiceAccount) -> None:
        """Grants still succeed, but every token of this account is refused where it is used: what a client
        holding a token sees after the account's access was withdrawn (it has no way to know before)."""
        with self._lock:
            self._revoked.add(account.client_email)

    @property
    def issued(self) -> list[str]:
        with self._lock:
            return list(self._issued)

    def valid(self, token: str) -> bool:
        with self._lock:
            account, expiry = self._issued.get(token, ("", 0.0))
            return expiry > time.time() and account not in self._revoked

    def grant(self, form: dict[str, str]) -> tuple[str, int]:
        """The access token for a JWT-bearer grant and its lifetime, or GrantRefused with Google's error."""
        if form.get("grant_type") != GRANT_TYPE:
            raise GrantRefused("unsupported_grant_type", f"Invalid grant_type: {form.get('grant_type', '')}")
        parts = form.get("assertion", "").split(".")
        if len(parts) != 3:
            raise GrantRefused("invalid_grant", "Invalid JWT: malformed assertion")
        try:
            header, claims = json.loads(_b64(parts[0])), json.loads(_b64(parts[1]))
        except ValueError as exc:
            raise GrantRefused("invalid_grant", "Invalid JWT: not JSON") from exc
        if not isinstance(header, dict) or not isinstance(claims, dict):
            raise GrantRefused("invalid_grant", "Invalid JWT: header and claims must be JSON objects")
        if header.get("alg") != "RS256":
            raise GrantRefused("invalid_grant", f"Invalid JWT: unsupported algorithm {header.get('alg')!r}")
        with self._lock:
            account, lifetime = self._accounts.get(str(claims.get("iss")), (None, 0))
        if account is None:
            raise GrantRefused("invalid_grant", "Invalid grant: account not found")
        if header.get("kid") not in (None, account.private_key_id):
            raise GrantRefused("invalid_grant", "Invalid JWT Signature.")
        try:
            signed = f"{parts[0]}.{parts[1]}".encode()
            account.public_key.verify(_b64(parts[2]), signed, padding.PKCS1v15(), hashes.SHA256())
        except InvalidSignature as exc:
            raise GrantRefused("invalid_grant", "Invalid JWT Signature.") from exc
        _check_claims(claims)
        token = "ya29.fake-" + secrets.token_urlsafe(48)
        with self._lock:
            self._issued[token] = (account.client_email, time.time() + lifetime + EXPIRY_MARGIN_S)
        return token, lifetime

    async def handle(self, request: web.Request) -> web.StreamResponse:
        form = {k: v[0] for k, v in parse_qs((await request.read()).decode(errors="replace")).items()}
        try:
            token, lifetime = self.grant(form)
        except GrantRefused as refused:
            with self._lock:
                self.refused.append(refused.description)
            return web.json_response({"error": refused.error, "error_description": refused.description}, status=400)
        return web.json_response({"access_token": token, "expires_in": lifetime, "token_type": "Bearer"})


def _check_claims(claims: dict[str, Any]) -> None:
    if claims.get("aud") not in AUDIENCES:
        raise GrantRefused("invalid_grant", f"Invalid JWT: audience {claims.get('aud')!r} is not the token endpoint")
    now = time.time()
    iat, exp = claims.get("iat"), claims.get("exp")
    if not isinstance(iat, int | float) or not isinstance(exp, int | float):
        raise GrantRefused("invalid_grant", "Invalid JWT: iat and exp are required")
    if exp <= now - CLOCK_SKEW_S or iat > now + CLOCK_SKEW_S or exp - iat > MAX_ASSERTION_S:
        raise GrantRefused(
            "invalid_grant",
            "Invalid JWT: Token must be a short-lived token (60 minutes) and in a reasonable timeframe.",
        )
    scopes = str(claims.get("scope", "")).split()
    if CLOUD_PLATFORM not in scopes:
        raise GrantRefused("invalid_scope", f"Invalid OAuth scope or ID token audience provided: {scopes}")
