"""What the API layer reads off a request body: Claude Code's `metadata.user_id` in both its forms (the user
is the account or device, not the string), and field types it refuses."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from llm_scope.http.handlers import split_metadata_user
from tests.gateway_server import GatewayServer, make_settings

DEVICE = "3f" * 32
ACCOUNT = "550e8400-e29b-41d4-a716-446655440000"
SESSION = "6ba7b810-9dad-11d1-80b4-00c04fd430c8"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        # 2.x: a JSON string.
        (f'{{"device_id": "{DEVICE}", "account_uuid": "{ACCOUNT}", "session_id": "{SESSION}"}}', (ACCOUNT, SESSION)),
        (f'{{"device_id": "{DEVICE}", "account_uuid": "", "session_id": "{SESSION}"}}', (DEVICE, SESSION)),
        # 1.x: user_<device>_account_<uuid>_session_<uuid>, the account empty for API-key users.
        (f"user_{DEVICE}_account_{ACCOUNT}_session_{SESSION}", (ACCOUNT, SESSION)),
        (f"user_{DEVICE}_account__session_{SESSION}", (DEVICE, SESSION)),
        # Anything else is the caller's own id, kept whole.
        ("alice", ("alice", None)),
        ("user_alice", ("user_alice", None)),
        (f"user_{DEVICE}_account_{ACCOUNT}_session_", (f"user_{DEVICE}_account_{ACCOUNT}_session_", None)),
        ("{not json", ("{not json", None)),
    ],
    ids=["json", "json-no-account", "legacy", "legacy-no-account", "plain", "plain-prefixed", "legacy-cut", "bad-json"],
)
def test_split_metadata_user(value: str, expected: tuple[str, str | None]) -> None:
    assert split_metadata_user(value) == expected


@pytest.mark.parametrize(
    ("route", "body"),
    [
        ("/v1/responses", {"model": "mock-gpt", "tools": True, "input": []}),
        ("/v1/chat/completions", {"model": "mock-gpt", "tools": "x", "messages": [{"role": "user", "content": "a"}]}),
        ("/v1/messages", {"model": "mock-gpt", "max_tokens": 5, "tools": 1, "messages": []}),
    ],
)
def test_tools_of_the_wrong_type_are_the_clients_error(tmp_path: Path, route: str, body: dict[str, Any]) -> None:
    # Found by the fuzz test: "tools": true reached the mock's loop and came back as a 500.
    with GatewayServer(make_settings(tmp_path)) as gw, gw.client() as client:
        r = client.post(route, json=body)
    assert r.status_code == 400, r.text
    assert "tools" in r.text
