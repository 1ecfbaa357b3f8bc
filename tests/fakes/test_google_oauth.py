"""The fake token endpoint is a real check, not a stamp: google-auth's own service-account flow gets a token the
Vertex routes take, and each way a JWT-bearer grant can be wrong is refused in Google's words. Without this,
the Vertex tests would pass against a fake that waved every request through."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from google.auth import crypt, jwt
from google.auth.transport.requests import Request
from google.oauth2 import service_account

from tests.fakes.gemini import FakeGemini, start_fake_gemini
from tests.fakes.google_oauth import CLOUD_PLATFORM, GRANT_TYPE, ServiceAccount

AUD = "https://oauth2.googleapis.com/token"
GENERATE = "/v1/projects/p/locations/us-central1/publishers/google/models/gemini-2.5-flash:generateContent"
BODY = {"contents": [{"role": "user", "parts": [{"text": "hello"}]}]}


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeGemini]:
    fake = start_fake_gemini()
    yield fake
    fake.stop()


@pytest.fixture(scope="module")
def account(fake: FakeGemini) -> ServiceAccount:
    account = ServiceAccount.create("oauth-test")
    fake.oauth.trust(account)
    return account


def grant(fake: FakeGemini, assertion: str, grant_type: str = GRANT_TYPE) -> httpx.Response:
    return httpx.post(fake.token_uri, data={"grant_type": grant_type, "assertion": assertion})


def assertion(account: ServiceAccount, signer_of: ServiceAccount | None = None, **claims: Any) -> str:
    now = int(time.time())
    payload = {"iss": account.client_email, "aud": AUD, "scope": CLOUD_PLATFORM, "iat": now, "exp": now + 3600}
    payload.update(claims)
    key = (signer_of or account).private_key_pem
    signer = crypt.RSASigner.from_string(key, (signer_of or account).private_key_id)
    return jwt.encode(signer, payload).decode()


def test_google_auths_own_flow_gets_a_token_the_vertex_routes_take(fake: FakeGemini, account: ServiceAccount) -> None:
    creds = service_account.Credentials.from_service_account_info(account.info(fake.token_uri), scopes=[CLOUD_PLATFORM])
    creds.refresh(Request())
    assert creds.token in fake.oauth.issued and creds.valid
    ok = httpx.post(fake.url + GENERATE, json=BODY, headers={"authorization": f"Bearer {creds.token}"})
    assert ok.status_code == 200 and ok.json()["candidates"][0]["content"]["parts"][0]["text"]
    for headers in ({}, {"authorization": "Bearer ya29.made-up"}, {"x-goog-api-key": "AIza-not-for-vertex"}):
        refused = httpx.post(fake.url + GENERATE, json=BODY, headers=headers)
        assert refused.status_code == 401
        assert refused.json()["error"]["status"] == "UNAUTHENTICATED"


@pytest.mark.parametrize(
    ("change", "error", "why"),
    [
        ({"aud": "http://127.0.0.1/token"}, "invalid_grant", "audience"),
        ({"iat": int(time.time()) - 7200, "exp": int(time.time()) - 3600}, "invalid_grant", "short-lived"),
        ({"exp": int(time.time()) + 7200}, "invalid_grant", "short-lived"),
        ({"scope": "https://www.googleapis.com/auth/devstorage.read_only"}, "invalid_scope", "scope"),
        ({"iss": "someone@else.iam.gserviceaccount.com"}, "invalid_grant", "account not found"),
    ],
    ids=["audience", "expired", "too-long", "scope", "unknown-account"],
)
def test_a_wrong_claim_is_refused(
    fake: FakeGemini, account: ServiceAccount, change: dict[str, Any], error: str, why: str
) -> None:
    r = grant(fake, assertion(account, **change))
    assert r.status_code == 400 and r.json()["error"] == error and why in r.json()["error_description"], r.text


def test_a_signature_by_another_key_is_refused(fake: FakeGemini, account: ServiceAccount) -> None:
    impostor = ServiceAccount.create("oauth-test", "impostor")
    r = grant(fake, assertion(account, signer_of=impostor))
    assert r.status_code == 400 and r.json() == {
        "error": "invalid_grant",
        "error_description": "Invalid JWT Signature.",
    }
    tampered = assertion(account).split(".")
    tampered[1] = assertion(account, scope=CLOUD_PLATFORM + " extra").split(".")[1]
    assert grant(fake, ".".join(tampered)).json()["error_description"] == "Invalid JWT Signature."


def test_only_the_jwt_bearer_grant(fake: FakeGemini, account: ServiceAccount) -> None:
    r = grant(fake, assertion(account), grant_type="client_credentials")
    assert r.status_code == 400 and r.json()["error"] == "unsupported_grant_type"
    assert grant(fake, "not-a-jwt").json()["error"] == "invalid_grant"


def test_a_revoked_accounts_tokens_are_refused_where_they_are_used(fake: FakeGemini) -> None:
    revoked = ServiceAccount.create("oauth-test", "revoked")
    fake.oauth.trust(revoked)
    fake.oauth.revoke(revoked)
    token = grant(fake, assertion(revoked)).json()["access_token"]
    r = httpx.post(fake.url + GENERATE, json=BODY, headers={"authorization": f"Bearer {token}"})
    assert r.status_code == 401 and r.json()["error"]["status"] == "UNAUTHENTICATED"
