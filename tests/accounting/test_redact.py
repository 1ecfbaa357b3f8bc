"""Redaction: exact secret values and well-known key shapes are masked; ordinary text is left alone."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from llm_scope import jsoncodec
from llm_scope.accounting.redact import (
    REDACTED,
    SECRET_FIELDS,
    may_hold_secrets,
    redact_headers,
    redact_text,
    redact_value,
)

OPENAI_KEY = "sk-abcdefghijklmnopqrstuvwxyz0123456789ABCD"
OPENAI_PROJECT_KEY = "sk-proj-Abc123_def456-GHI789jkl012MNO345pqr678"
ANTHROPIC_KEY = "sk-ant-api03-AbCdEfGhIjKlMnOpQrStUvWxYz0123456789-_xyz"
AWS_KEY_ID = "AKIAIOSFODNN7EXAMPLE"
LANGFUSE_SECRET = "sk-lf-1234abcd-5678-efgh-9012-ijklmnop"
GOOGLE_KEY = "AIza" + "B" * 35
GROQ_KEY = "gsk_" + "a1B2" * 6
XAI_KEY = "xai-" + "Z9y8" * 6
GOOGLE_TOKEN = "ya29.a0AfB_" + "c1D2e3" * 8
PEM = "-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC\nBKcwggSjAgEAAoIBAQC7\n-----END PRIVATE KEY-----\n"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param(f"key is {OPENAI_KEY}.", f"key is {REDACTED}.", id="openai-sk"),
        pytest.param(f"use {OPENAI_PROJECT_KEY} now", f"use {REDACTED} now", id="openai-sk-proj"),
        pytest.param(f"x-api-key: {ANTHROPIC_KEY}", f"x-api-key: {REDACTED}", id="anthropic-sk-ant"),
        pytest.param(f"aws {AWS_KEY_ID} id", f"aws {REDACTED} id", id="aws-akia"),
        pytest.param(f"lf={LANGFUSE_SECRET}", f"lf={REDACTED}", id="langfuse"),
        pytest.param(f"google {GOOGLE_KEY}", f"google {REDACTED}", id="google"),
        pytest.param(f"groq {GROQ_KEY}", f"groq {REDACTED}", id="groq"),
        pytest.param(f"xai {XAI_KEY}", f"xai {REDACTED}", id="xai"),
        pytest.param(f"vertex said: bad token {GOOGLE_TOKEN}", f"vertex said: bad token {REDACTED}", id="google-oauth"),
        pytest.param(f"my key file:\n{PEM}thanks", f"my key file:\n{REDACTED}\nthanks", id="pem-private-key"),
        pytest.param(  # as it stands in a JSON body: the newlines escaped
            '{"private_key": "' + PEM.replace("\n", "\\n") + '", "x": 1}',
            '{"private_key": "' + REDACTED + '\\n", "x": 1}',
            id="pem-in-json-text",
        ),
        pytest.param(f"cut off: {PEM[:60]}", f"cut off: {REDACTED}", id="pem-without-its-end"),
        pytest.param(
            "Authorization: Bearer eyJhbGciOiJIUzI1NiJ9.payload.sig",
            f"Authorization: Bearer {REDACTED}",
            id="bearer-token-in-text",
        ),
        pytest.param(
            f'{{"error": "Incorrect API key provided: {OPENAI_KEY}"}}',
            f'{{"error": "Incorrect API key provided: {REDACTED}"}}',
            id="key-echoed-in-upstream-error",
        ),
        pytest.param(f"{OPENAI_KEY} and {ANTHROPIC_KEY}", f"{REDACTED} and {REDACTED}", id="two-keys"),
    ],
)
def test_key_shapes_are_masked(text: str, expected: str) -> None:
    assert redact_text(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        pytest.param("The quick brown fox jumps over the lazy dog.", id="prose"),
        pytest.param("sk-short", id="sk-too-short"),
        pytest.param("skeleton key and whisky", id="sk-inside-words"),
        pytest.param("Bearer abc", id="short-bearer"),
        pytest.param("AKIA is not a key", id="akia-word"),
        pytest.param("model gpt-4o-mini costs $0.15 per 1M tokens", id="model-names"),
        pytest.param('{"role": "user", "content": "hi"}', id="json"),
        pytest.param("", id="empty"),
        pytest.param("unicode: café ☕ 日本語", id="unicode"),
    ],
)
def test_ordinary_text_is_untouched(text: str) -> None:
    assert redact_text(text) == text
    assert redact_text(text, ["not-present-secret"]) == text


@pytest.mark.parametrize(
    "text", ["task-management-system-overview", "see the risk-assessment-framework-v2 doc", "a desk-reservation-app-v1"]
)
def test_hyphenated_words_ending_in_sk_are_untouched(text: str) -> None:
    assert redact_text(text) == text


@pytest.mark.parametrize(
    ("text", "secrets", "expected"),
    [
        pytest.param("master=hunter2-master", ["hunter2-master"], f"master={REDACTED}", id="exact-value"),
        pytest.param("a-secret a-secret", ["a-secret"], f"{REDACTED} {REDACTED}", id="every-occurrence"),
        pytest.param("custom tok_123456 here", ["tok_123456", ""], f"custom {REDACTED} here", id="empty-ignored"),
        pytest.param("nothing here", ["tok_123456"], "nothing here", id="absent"),
        pytest.param(
            f"both tok_ABCDEF and {OPENAI_KEY}", ["tok_ABCDEF"], f"both {REDACTED} and {REDACTED}", id="value-and-shape"
        ),
    ],
)
def test_known_secret_values(text: str, secrets: list[str], expected: str) -> None:
    assert redact_text(text, secrets) == expected


def test_secrets_may_be_any_iterable() -> None:
    assert redact_text("one tok_999999", iter(["tok_999999"])) == f"one {REDACTED}"
    assert redact_value({"a": ["x tok_999999"]}, (s for s in ["tok_999999"])) == {"a": [f"x {REDACTED}"]}


def test_redact_headers() -> None:
    headers = [
        ("Authorization", "Bearer anything-at-all"),
        ("x-api-key", "whatever"),
        ("api-key", "azure-key"),
        ("Cookie", "session=1"),
        ("Content-Type", "application/json"),
        ("X-Note", f"echo {OPENAI_KEY}"),
        ("X-Custom", "mine-secret-value"),
    ]
    assert redact_headers(headers, ["mine-secret-value"]) == {
        "Authorization": REDACTED,
        "x-api-key": REDACTED,
        "api-key": REDACTED,
        "Cookie": REDACTED,
        "Content-Type": "application/json",
        "X-Note": f"echo {REDACTED}",
        "X-Custom": REDACTED,
    }


def test_redact_value_nested() -> None:
    value: dict[str, Any] = {
        "model": "gpt-4o",
        "headers": {"Authorization": "Bearer xyz", "Accept": "text/event-stream"},
        "litellm_params": {"api_key": "plain-looking-value", "api_base": "https://example.test/v1"},
        "deployments": [
            {"API_KEY": "k1", "name": "a"},
            {"password": "p", "secret": {"nested": "dict"}, "count": 3},
        ],
        "messages": [{"role": "user", "content": f"my key is {ANTHROPIC_KEY}"}],
        "tuple": ("fine", f"{AWS_KEY_ID}"),
        "numbers": [1, 2.5, True, None],
        "api_key": "",  # empty: nothing to hide, left as is
        "master": "the-master-key-1",
    }
    original = copy.deepcopy(value)
    out = redact_value(value, ["the-master-key-1"])
    assert value == original  # input not mutated
    assert out == {
        "model": "gpt-4o",
        "headers": {"Authorization": REDACTED, "Accept": "text/event-stream"},
        "litellm_params": {"api_key": REDACTED, "api_base": "https://example.test/v1"},
        "deployments": [
            {"API_KEY": REDACTED, "name": "a"},
            {"password": REDACTED, "secret": REDACTED, "count": 3},
        ],
        "messages": [{"role": "user", "content": f"my key is {REDACTED}"}],
        "tuple": ["fine", REDACTED],
        "numbers": [1, 2.5, True, None],
        "api_key": "",
        "master": REDACTED,
    }


@pytest.mark.parametrize("value", [None, 0, 1.5, True, "plain", [], {}])
def test_redact_value_scalars_and_empties(value: Any) -> None:
    assert redact_value(value) == value


# --- may_hold_secrets: the screen that lets the trace writer skip the scrub ---------------------------

SCREEN_SECRETS = ["tok_999999-secret", 'quo"te-secret', "back\\slash", "tab\tsecret"]
FRAGMENTS = [
    OPENAI_KEY,
    ANTHROPIC_KEY,
    AWS_KEY_ID,
    LANGFUSE_SECRET,
    "pk-lf-1234abcd-5678",
    GOOGLE_KEY,
    GROQ_KEY,
    XAI_KEY,
    "Bearer eyJhbGciOiJIUzI1NiJ9",
    "ya29.a0AfH6SMBx-Abcdefghijklmnopqrst",
    "-----BEGIN RSA PRIVATE KEY-----\nMIIEabc\n-----END RSA PRIVATE KEY-----",
    *SCREEN_SECRETS,
    "sk-",
    "AKIA",
    "\n",
    '"',
    "\\",
    "\x00",
    "é",
    "☕",
    " ",
]
KEYS = [*sorted(SECRET_FIELDS), "API_KEY", "Set-Cookie", "Coo\u212aie", "role", "content", "my_password", ""]


def json_texts(value: Any) -> list[str]:
    """The JSON encoders the screen may be handed text from: orjson, and the standard library's fallback."""
    return [jsoncodec.dumps_str(value), json.dumps(value, ensure_ascii=False, separators=(",", ":"))]


texts = st.lists(st.one_of(st.sampled_from(FRAGMENTS), st.text(max_size=8)), max_size=4).map("".join)
values = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), texts),
    lambda inner: st.one_of(
        st.lists(inner, max_size=3),
        st.dictionaries(st.one_of(st.sampled_from(KEYS), texts), inner, max_size=3),
    ),
    max_leaves=12,
)


@settings(max_examples=400, deadline=None)
@given(value=values, secrets=st.lists(st.sampled_from(SCREEN_SECRETS), max_size=2))
def test_screen_never_passes_a_value_the_scrub_would_change(value: Any, secrets: list[str]) -> None:
    if redact_value(value, secrets) != value:
        for text in json_texts(value):
            assert may_hold_secrets(text, secrets), text


@settings(max_examples=300, deadline=None)
@given(text=texts, secrets=st.lists(st.sampled_from(SCREEN_SECRETS), max_size=2))
def test_screen_never_passes_a_string_the_scrub_would_change(text: str, secrets: list[str]) -> None:
    if redact_text(text, secrets) != text:
        assert may_hold_secrets(text, secrets)


@pytest.mark.parametrize(
    ("value", "secrets"),
    [
        pytest.param({"Coo\u212aie": "x"}, [], id="kelvin-sign-lowers-to-a-field-name"),
        pytest.param({"X-API-KEY": "x"}, [], id="field-name-in-capitals"),
        pytest.param(["say Bearer abcdefghijklmnop"], [], id="bearer"),
        pytest.param(['a quo"te-secret here'], ['quo"te-secret'], id="secret-json-escapes"),
        pytest.param(["x\ntab\tsecret"], ["tab\tsecret"], id="secret-with-control-character"),
    ],
)
def test_screen_flags(value: Any, secrets: list[str]) -> None:
    assert redact_value(value, secrets) != value
    assert all(may_hold_secrets(text, secrets) for text in json_texts(value))


def test_screen_passes_ordinary_chat() -> None:
    chat = [{"role": "user", "content": "Say hello in one short sentence, in café ☕ style.\n"}]
    assert not may_hold_secrets(jsoncodec.dumps_str(chat), ["sk-upstream-0123456789", "master-key-abc"])
    assert may_hold_secrets(jsoncodec.dumps_str(chat), ["one short"])  # a configured secret in the text
    # The screen looks for fragments, so a word like "task-list" costs a full scrub (which changes nothing).
    assert may_hold_secrets('"my task-list app"') and redact_text("my task-list app") == "my task-list app"


# Every literal the screen looks for (redact._KEY_MARKERS), and near misses of each: the screen searches for
# them with a few compiled patterns, which must find exactly what `marker in text` finds.
MARKERS = ["sk-", "pk-lf-", "AKIA", "AIza", "gsk_", "xai-", "ya29.", "PRIVATE KEY-----", "earer "]
NEAR = ["sk", "-sk", "pk-lf", "pk-", "AKI", "AIz", "gsk", "xai", "ya29", "PRIVATE KEY----", "KEY-----", "earer", "-"]
marker_texts = st.lists(
    st.one_of(st.sampled_from(MARKERS + NEAR), st.text(alphabet="-_.skpAIKaz29 ", max_size=6)), max_size=5
)


@settings(max_examples=500, deadline=None)
@given(parts=marker_texts)
def test_screen_finds_exactly_the_key_markers(parts: list[str]) -> None:
    text = "".join(parts)  # no quote: no key position, so only the markers decide
    assert may_hold_secrets(text) == any(marker in text for marker in MARKERS), text


@pytest.mark.parametrize("marker", MARKERS)
@pytest.mark.parametrize(("before", "after"), [("", ""), ("x-", " y"), ("--", "--"), ("é☕", "\u00e9")])
def test_screen_finds_each_marker_anywhere(marker: str, before: str, after: str) -> None:
    assert may_hold_secrets(before + marker + after)
    assert not may_hold_secrets(before + marker[:-1] + "#" + after)


@pytest.mark.parametrize("secret", ["sk-upstream-4f8a1c2e9b7d", "a.b*c+d?(e)[f]", "^$|x"])
def test_screen_finds_configured_secrets_with_regex_characters(secret: str) -> None:
    assert may_hold_secrets(f"say {secret} again", [secret])
    assert not may_hold_secrets("say " + secret[:-1] + "# again", [secret]) or any(m in secret for m in MARKERS)
