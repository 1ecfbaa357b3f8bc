"""What a passthrough upstream receives: the client's own bytes, spliced where routing or `prepare` changed a
top-level member, re-serialized where a splice cannot be proven right (providers/upstream_body.py)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from llm_scope import jsoncodec
from llm_scope.providers.upstream_body import SPLICE_FROM, upstream_bytes
from tests.conftest import UPSTREAM_KEY
from tests.fakes.upstream import FakeUpstream
from tests.gateway_server import GatewayServer, make_settings, model_config


def canonical(value: Any) -> str:
    """Equal JSON values, ints and floats told apart (json.dumps writes 1 and 1.0 differently)."""
    return json.dumps(value, sort_keys=True)


def sent(raw: bytes, change: Any) -> tuple[bytes, dict[str, Any]]:
    original = jsoncodec.loads(raw)
    payload = change(dict(original))
    out = upstream_bytes(raw, original, payload)
    assert canonical(json.loads(out)) == canonical(payload)
    return out, payload


def swap_model(body: dict[str, Any]) -> dict[str, Any]:
    return {**body, "model": "gpt-4o-mini"}


def add_usage(body: dict[str, Any]) -> dict[str, Any]:
    return {**body, "stream_options": {"include_usage": True}}


def drop_metadata(body: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in body.items() if k != "metadata"}


@pytest.mark.parametrize(
    ("raw", "change", "want"),
    [
        # Unchanged: the received bytes themselves, odd whitespace and escapes included.
        (b' {"model" :"m", "messages":[{"role":"user","content":"caf\\u00e9"}]}\n', dict, None),
        # The model swapped: only its value changes; a nested "model" key is not touched.
        (
            b'{ "messages": [{"role": "user", "content": "{\\"model\\": 1}"}],\t"model" :  "alias" }',
            swap_model,
            b'{ "messages": [{"role": "user", "content": "{\\"model\\": 1}"}],\t"model" :  "gpt-4o-mini" }',
        ),
        (b'{"model":"alias"}', swap_model, b'{"model":"gpt-4o-mini"}'),
        # A key added (usage asked for in a stream): in front, whatever the rest looks like.
        (
            b'{"model":"m","stream":true}',
            add_usage,
            b'{"stream_options":{"include_usage":true},"model":"m","stream":true}',
        ),
        (b"{}", add_usage, b'{"stream_options":{"include_usage":true}}'),
        # A member removed, first, middle or last, with its comma (the whitespace around it stays).
        (b'{"metadata": {"a": [1, "}"]}, "model": "m"}', drop_metadata, b'{ "model": "m"}'),
        (b'{"model": "m", "metadata": {"a": 1}, "n": 1}', drop_metadata, b'{"model": "m",  "n": 1}'),
        (b'{"model": "m" , "metadata" : null }', drop_metadata, b'{"model": "m"  }'),
        (b'{"metadata":{}}', drop_metadata, b"{}"),
        # Integers beyond 64 bits stay as written, in kept members and beside a spliced one.
        (
            b'{"model":"alias","seed":123456789012345678901234567890,"logit_bias":{"1":18446744073709551616}}',
            swap_model,
            b'{"model":"gpt-4o-mini","seed":123456789012345678901234567890,"logit_bias":{"1":18446744073709551616}}',
        ),
    ],
)
def test_splices_into_the_received_bytes(raw: bytes, change: Any, want: bytes | None) -> None:
    out, _ = sent(raw, change)
    assert out == (raw if want is None else want)


@pytest.mark.parametrize(
    "raw",
    [
        b'{"mo\\u0064el": "alias", "messages": []}',  # the key escaped: not found by its bytes
        b'{"model": "x", "messages": [], "model": "alias"}',  # a duplicate key: the last one counts
        b'{"model": "alias", "messages": [{"model": "nested"}]}',  # "model" twice in the text
        b'{"model": "alias", "note": "\\u006d"}',  # an escaped letter anywhere: no proof from the bytes
        b'{"model": "alias", "note": "say \\"model"}',  # `"model"` at the end of a string
        b'\xef\xbb\xbf{"model": "alias"}',  # a BOM: UTF-8 without it goes up
        '{"model": "alias"}'.encode("utf-16-le"),  # UTF-16 the standard library read: UTF-8 goes up
    ],
)
def test_falls_back_to_reserializing_when_a_splice_is_not_proven(raw: bytes) -> None:
    out, payload = sent(raw, swap_model)
    assert out == jsoncodec.dumps(payload)


def test_two_removed_members_sharing_a_comma_are_reserialized() -> None:
    out, payload = sent(b'{"model":"m","a":1,"b":2}', lambda body: {"model": body["model"]})
    assert out == jsoncodec.dumps(payload)


def test_a_new_value_is_reserialized_even_when_equal() -> None:
    """Members are compared by identity (or, for scalars, type and value): 1 is not 1.0 nor True."""
    for value in (1.0, True):
        out, _ = sent(b'{"model":"m","n":1}', lambda body, v=value: {**body, "n": v})
        assert type(json.loads(out)["n"]) is type(value)


# --- property: whatever the text looks like, the upstream reads exactly the payload --------------------------

KEYS = st.sampled_from(["model", "metadata", "stream", "stream_options", "messages", "tools", "x", "mo del"])
LEAVES = st.none() | st.booleans() | st.integers(min_value=-(2**70), max_value=2**70) | st.text(max_size=8)
VALUES = st.recursive(
    LEAVES | st.floats(allow_nan=False, allow_infinity=False),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(KEYS, inner, max_size=3),
    max_leaves=8,
)


@st.composite
def bodies(draw: st.DrawFn) -> bytes:
    members = draw(st.dictionaries(KEYS, VALUES, max_size=6))
    members["model"] = draw(st.text(min_size=1, max_size=6))
    separators = draw(st.sampled_from([(",", ":"), (", ", ": "), (" ,\n", " :\t")]))
    text = json.dumps(members, separators=separators, ensure_ascii=draw(st.booleans()))
    if draw(st.booleans()):
        text = text.replace('"model"', '"mo\\u0064el"', 1)  # one spelling of the key with an escape
    return (draw(st.sampled_from(["", " ", "\n\t"])) + text + draw(st.sampled_from(["", " \r\n"]))).encode()


CHANGES = [dict, swap_model, add_usage, drop_metadata, lambda b: drop_metadata(add_usage(swap_model(b)))]


@settings(max_examples=400, deadline=None)
@given(raw=bodies(), change=st.sampled_from(CHANGES))
def test_the_upstream_reads_exactly_the_payload(raw: bytes, change: Any) -> None:
    original = json.loads(raw)  # exact, as jsoncodec.loads is
    payload = change(dict(original))
    out = upstream_bytes(raw, original, payload)
    assert canonical(json.loads(out)) == canonical(payload)
    if change is dict:
        assert out == raw


# --- end to end: what the fake upstream receives through the gateway -----------------------------------------


PAD = b"x = 1\\n" * 700  # a coding agent's tool result, as JSON text: the bodies below are over SPLICE_FROM


def post(gateway: GatewayServer, path: str, body: bytes) -> httpx.Response:
    with gateway.client() as client:
        r = client.post(path, content=body, headers={"content-type": "application/json"})
    assert r.status_code == 200, r.text
    return r


def test_the_upstream_gets_the_clients_bytes(tmp_path: Path, upstream: FakeUpstream) -> None:
    """A model served under its own name: the body goes up byte for byte, whatever its spacing and escapes."""
    upstream.reset()
    models = [{"model_name": "gpt-4o-mini", "litellm_params": {"model": "openai/gpt-4o-mini",
               "api_base": upstream.openai_base_url, "api_key": UPSTREAM_KEY}}]  # fmt: skip
    raw = (
        b'{ "messages" : [ {"role":"user", "content":"caf\\u00e9 \\"model\\"'
        + PAD
        + b'"} ],\n "model":"gpt-4o-mini",\n'
        b' "seed": 18446744073709551616 }'
    )
    assert len(raw) >= SPLICE_FROM
    with GatewayServer(make_settings(tmp_path), model_config=model_config(models)) as gw:
        post(gw, "/v1/chat/completions", raw)
    assert upstream.last_request().body == raw


def test_an_alias_and_a_stream_are_spliced_in(gateway: GatewayServer, upstream: FakeUpstream) -> None:
    raw = (
        b'{"messages": [{"role": "user", "content": "'
        + PAD
        + b'"}],  "model" : "gpt-fake", "n": 123456789012345678901234}'
    )
    post(gateway, "/v1/chat/completions", raw)
    assert upstream.last_request().body == raw.replace(b'"gpt-fake"', b'"gpt-4o-mini"')
    streamed = raw[:-1] + b', "stream": true, "metadata": {"team": "a"}}'
    post(gateway, "/v1/chat/completions", streamed)
    want = b'{"stream_options":{"include_usage":true},' + raw[1:-1].replace(b'"gpt-fake"', b'"gpt-4o-mini"')
    assert upstream.last_request().body == want + b', "stream": true}'  # the gateway's metadata cut out


def test_anthropic_bodies_are_spliced_or_reserialized(gateway: GatewayServer, upstream: FakeUpstream) -> None:
    raw = b'{"model": "claude-fake", "max_tokens": 5, "messages": [{"role": "user", "content": "' + PAD + b'"}]}'
    post(gateway, "/v1/messages", raw)
    assert upstream.last_request().body == raw.replace(b'"claude-fake"', b'"claude-haiku-4-5-20251001"')
    hoisted = (
        b'{"model": "claude-fake", "max_tokens": 5, "messages": [{"role": "system", "content": "be brief"}, '
        b'{"role": "user", "content": "' + PAD + b'"}]}'
    )
    post(gateway, "/v1/messages", hoisted)
    assert upstream.last_request().json == {
        "model": "claude-haiku-4-5-20251001",
        "max_tokens": 5,
        "system": [{"type": "text", "text": "be brief"}],
        "messages": [{"role": "user", "content": json.loads(b'"' + PAD + b'"')}],
    }


def test_a_short_body_is_reserialized(gateway: GatewayServer, upstream: FakeUpstream) -> None:
    """Below SPLICE_FROM orjson writes the body faster than a splice is proven: compact JSON goes up."""
    raw = b'{ "model" : "gpt-fake", "messages": [ {"role": "user", "content": "hi"} ] }'
    post(gateway, "/v1/chat/completions", raw)
    want = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}
    assert upstream.last_request().body == jsoncodec.dumps(want)
