"""Claude Code's `metadata.user_id` in both its forms: the user is the account (or device), not the string."""

from __future__ import annotations

import pytest

from llm_scope.http.openai import split_metadata_user

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
