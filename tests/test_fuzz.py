"""Property-based fuzzing of every route: whatever arrives, no 500, no crash, no hang, errors well-formed."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.gateway_server import GatewayServer, make_settings

MASTER = "sk-fuzz-master-0123456789"
POST_ROUTES = [
    "/v1/chat/completions",
    "/chat/completions",
    "/v1/messages",
    "/v1/messages/count_tokens",
    "/v1/responses",
    "/v1/embeddings",
    "/admin/keys",
    "/api/traces/" + "a" * 32 + "/scores",
]
GET_ROUTES = ["/api/traces", "/api/sessions", "/api/usage", "/api/stats", "/v1/models", "/api/traces/nope"]

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**63)
    | st.floats(allow_nan=False)
    | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=12,
)
models = st.sampled_from(["mock-gpt", "mock/echo", "no-such-model", "", "*"]) | json_values
messages = (
    st.lists(
        st.fixed_dictionaries(
            {
                "role": st.sampled_from(["user", "assistant", "system", "tool", "x"]) | json_values,
                "content": st.text(max_size=30) | json_values,
            }
        ),
        max_size=3,
    )
    | json_values
)
bodies = st.fixed_dictionaries(
    {"model": models, "messages": messages},
    optional={
        "stream": st.booleans() | json_values,
        "max_tokens": st.integers(-5, 50) | json_values,
        "input": json_values,
        "tools": json_values,
        "metadata": json_values,
        "stream_options": json_values,
        "owner": json_values,
        "name": json_values,
        "value": json_values,
    },
)
payloads = (
    bodies.map(lambda b: json.dumps(b).encode())
    | json_values.map(lambda v: json.dumps(v).encode())
    | st.binary(max_size=64)
)
queries = st.dictionaries(
    st.sampled_from(["user", "session", "model", "status", "since", "until", "limit", "offset", "bucket", "days"]),
    st.text(max_size=12),
    max_size=4,
)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayServer]:
    tmp: Path = tmp_path_factory.mktemp("fuzz")
    with GatewayServer(make_settings(tmp, master_key=MASTER, max_body_bytes=32 * 1024)) as gw:
        yield gw


def check(response: httpx.Response) -> None:
    assert response.status_code < 500, response.text
    if response.status_code >= 400:
        body: Any = response.json()
        error = body["error"]
        assert isinstance(error, dict) and isinstance(error["message"], str) and error["message"]


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(route=st.sampled_from(POST_ROUTES), payload=payloads)
def test_post_routes_never_fail_badly(server: GatewayServer, route: str, payload: bytes) -> None:
    with httpx.Client(base_url=server.url, timeout=10, headers={"Authorization": f"Bearer {MASTER}"}) as client:
        response = client.post(route, content=payload, headers={"content-type": "application/json"})
        if response.headers.get("content-type", "").startswith("text/event-stream"):
            assert response.status_code == 200
            return
        check(response)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(route=st.sampled_from(GET_ROUTES), params=queries)
def test_get_routes_never_fail_badly(server: GatewayServer, route: str, params: dict[str, str]) -> None:
    with httpx.Client(base_url=server.url, timeout=10, headers={"Authorization": f"Bearer {MASTER}"}) as client:
        check(client.get(route, params=params))
