"""The table of API families: every row complete, every API path the app serves from it, and a family made
at runtime (one module's worth of code, one row) served end to end by the real app."""

from __future__ import annotations

import dataclasses
import importlib
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from llm_scope.apis import FAMILIES, ApiFamily, Summary, by_name, by_path
from llm_scope.apis.family import event_tap, openai_stream_error, sse_events, without_metadata
from llm_scope.errors import InvalidRequest
from llm_scope.types import Deployment, Usage
from tests.gateway_server import GatewayServer, make_settings

APIS_DIR = Path(__file__).resolve().parents[2] / "src" / "llm_scope" / "apis"
SHARED = {"__init__", "family", "mocking"}  # the table, the row's type, the mock's common text


def test_every_row_is_complete() -> None:
    for family in FAMILIES:
        for field in dataclasses.fields(ApiFamily):
            value = getattr(family, field.name)
            if field.name == "forward":
                continue  # a family may forward no client headers
            assert value not in ("", (), None), f"{family.name}.{field.name} is empty"
            if field.name in ("validate", "input_of", "prepare", "summarize", "tap", "stream_error", "mock"):
                assert callable(value), f"{family.name}.{field.name}"
        assert all(path.startswith("/") for path in family.paths), family.name
        assert not family.upstream_path.startswith("/"), family.name
    assert len(by_name(FAMILIES)) == len({f.route for f in FAMILIES}) == len(FAMILIES)


def test_one_module_per_family_and_one_row_each() -> None:
    modules = sorted(p.stem for p in APIS_DIR.glob("*.py") if p.stem not in SHARED)
    assert modules == sorted(f.name for f in FAMILIES)
    for family in FAMILIES:
        module = importlib.import_module(f"llm_scope.apis.{family.name}")
        rows = [v for v in vars(module).values() if isinstance(v, ApiFamily) and v.name == family.name]
        assert rows == [family], f"apis/{family.name}.py must define its family's row, and it is the table's"


def test_a_path_claimed_twice_is_refused() -> None:
    twin = dataclasses.replace(FAMILIES[0], name="twin", route="twin")
    with pytest.raises(ValueError, match="served by both"):
        by_path([FAMILIES[0], twin])


def test_every_api_path_is_the_tables(tmp_path: Path) -> None:
    """The entry layer serves each table path in its family's error shape; Starlette has none of them."""
    with GatewayServer(make_settings(tmp_path)) as gw, gw.client() as http:
        starlette_paths = {getattr(route, "path", None) for route in gw.app.app.routes}
        for family in FAMILIES:
            for path in family.paths:
                assert path not in starlette_paths
                error = http.post(path, json={"nothing": "here"})
                assert error.status_code == 400, path
                assert (error.json().get("type") == "error") is family.anthropic, path
                assert http.get(path).status_code == 405, path


# A family of our own, as a new module would define it: POST /v1/echo {"model", "text"} answers the text.


def validate_echo(body: Any) -> dict[str, Any]:
    if not isinstance(body, dict) or not isinstance(body.get("model"), str) or not isinstance(body.get("text"), str):
        raise InvalidRequest("echo needs a 'model' and a 'text'", param="text")
    return body


def summarize_echo(raw: bytes) -> Summary:
    obj = json.loads(raw)
    usage = Usage(input=obj["usage"]["in"], output=obj["usage"]["out"], total=obj["usage"]["in"] + obj["usage"]["out"])
    return Summary(output={"echo": obj["echo"]}, usage=usage, finish_reason="echoed")


def summarize_echo_stream(raw: bytes) -> Summary:
    words = [event["word"] for event in sse_events(raw) if "word" in event]
    usage = Usage(input=len(words), output=len(words), total=2 * len(words))
    return Summary(output={"echo": " ".join(words)}, usage=usage, finish_reason="echoed")


def mock_echo(body: dict[str, Any], deployment: Deployment) -> bytes | AsyncIterator[bytes]:
    words = body["text"].split()
    if not body.get("stream"):
        return json.dumps({"echo": body["text"], "usage": {"in": len(words), "out": len(words)}}).encode()

    async def chunks() -> AsyncIterator[bytes]:
        for word in words:
            yield b"data: " + json.dumps({"word": word}).encode() + b"\n\n"
        yield b"data: [END]\n\n"

    return chunks()


ECHO = ApiFamily(
    name="echo",
    route="echo",
    paths=("/v1/echo",),
    validate=validate_echo,
    input_of=lambda body: body.get("text"),
    prepare=without_metadata,
    summarize=summarize_echo,
    tap=event_tap(b"word", (b"[END]",), summarize_echo_stream),
    stream_error=openai_stream_error,
    mock=mock_echo,
    upstream_path="echo",
    litellm="aecho",
    genai_operation="echo",
)


def trace(http: httpx.Client, response: httpx.Response) -> dict[str, Any]:
    found: dict[str, Any] = http.get(f"/api/traces/{response.headers['x-trace-id']}").json()
    return found


def test_a_family_added_at_runtime_is_served_end_to_end(tmp_path: Path) -> None:
    with GatewayServer(make_settings(tmp_path), families=(*FAMILIES, ECHO)) as gw, gw.client() as http:
        whole = http.post("/v1/echo", json={"model": "mock-gpt", "text": "hello there", "metadata": {"k": "v"}})
        assert whole.status_code == 200 and whole.json()["echo"] == "hello there"
        record = trace(http, whole)
        assert record["route"] == "echo" and record["input"] == "hello there" and record["metadata"] == {"k": "v"}
        assert record["output"] == {"echo": "hello there"} and record["finish_reason"] == "echoed"
        assert record["input_tokens"] == 2 and record["output_tokens"] == 2

        stream = http.post("/v1/echo", json={"model": "mock-gpt", "text": "one two three", "stream": True})
        assert stream.status_code == 200 and stream.headers["content-type"].startswith("text/event-stream")
        assert stream.content.endswith(b"data: [END]\n\n") and stream.content.count(b'"word"') == 3
        record = trace(http, stream)
        assert record["output"] == {"echo": "one two three"} and record["ttft_ms"] is not None
        assert record["input_tokens"] == 3 and record["stream"] in (True, 1)

        refused = http.post("/v1/echo", json={"model": "mock-gpt"})
        assert refused.status_code == 400 and refused.json()["error"]["param"] == "text"
        assert trace(http, refused)["route"] == "echo"
        assert http.post("/v1/echo", json={"model": "no-such-model", "text": "x"}).status_code == 404

        # The table's own families are served alongside it.
        hi = {"model": "mock-gpt", "messages": [{"role": "user", "content": "hi"}]}
        chat = http.post("/v1/chat/completions", json=hi)
        assert "You said: hi" in chat.json()["choices"][0]["message"]["content"]


def test_a_family_not_in_the_table_is_not_served(tmp_path: Path) -> None:
    with GatewayServer(make_settings(tmp_path)) as gw, gw.client() as http:
        assert http.post("/v1/echo", json={"model": "mock-gpt", "text": "hello"}).status_code == 404
