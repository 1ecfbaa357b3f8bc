"""The tap: bytes pass through untouched (or with only the usage the gateway added removed), however the
upstream's stream is cut into chunks, and the summary rebuilds what the client assembled."""

from __future__ import annotations

import json
from collections.abc import Iterable

import pytest

from llm_scope.apis.chat import ChatStreamTap, summarize_json, summarize_sse
from llm_scope.types import Usage

HEAD = b'"id":"chatcmpl-1","object":"chat.completion.chunk","created":1700000000,"model":"gpt-4o-mini"'

# A stream the gateway asked usage for (stream_options.include_usage): every chunk carries "usage":null and a
# final usage-only event follows. Includes a comment, reasoning, text, two parallel tool calls whose
# arguments arrive in fragments, an `n=2` choice that must not leak into the summary, and a
# non-ASCII character whose UTF-8 bytes a split can cut in half.
EVENTS_WITH_USAGE = [
    b"data: {" + HEAD + b',"choices":[{"index":0,"delta":{"role":"assistant","content":""},'
    b'"finish_reason":null}],"usage":null}\n\n',
    b": keep-alive\n\n",
    b"data: {" + HEAD + b',"choices":[{"index":0,"delta":{"reasoning_content":"Think "},'
    b'"finish_reason":null}],"usage":null}\n\n',
    b"data: {" + HEAD + b', "choices": [{"index": 0, "delta": {"reasoning_content": "hard."}}], "usage": null}\n\n',
    b"data: {" + HEAD + b',"choices":[{"index":0,"delta":{"content":"Caf\xc3\xa9 "},"finish_reason":null}],'
    b'"usage":null}\n\n',
    b"data: {" + HEAD + b',"choices":[{"index":1,"delta":{"content":"OTHER CHOICE"},"finish_reason":null}],'
    b'"usage":null}\n\n',
    b"data: {" + HEAD + b',"choices":[{"index":0,"delta":{"content":"time"},"finish_reason":null}],"usage":null}\n\n',
    b"data: {" + HEAD + b',"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"id":"call_a","type":"function",'
    b'"function":{"name":"get_weather","arguments":""}}]},"finish_reason":null}],"usage":null}\n\n',
    b"data: {"
    + HEAD
    + b',"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":"{\\"ci"}}]},'
    b'"finish_reason":null}],"usage":null}\n\n',
    b"data: {" + HEAD + b',"choices":[{"index":0,"delta":{"tool_calls":[{"index":1,"id":"call_b","type":"function",'
    b'"function":{"name":"get_time","arguments":"{\\"tz\\":"}}]},"finish_reason":null}],"usage":null}\n\n',
    b"data: {" + HEAD + b',"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":"ty\\":'
    b'\\"Paris\\"}"}}]},"finish_reason":null}],"usage":null}\n\n',
    b"data: {" + HEAD + b',"choices":[{"index":0,"delta":{"tool_calls":[{"index":1,"function":{"arguments":'
    b'"\\"UTC\\"}"}}]},"finish_reason":null}],"usage":null}\n\n',
    b"data: {" + HEAD + b',"choices":[{"index":0,"delta":{},"finish_reason":"tool_calls"}],"usage":null}\n\n',
    b"data: {" + HEAD + b',"choices":[],"usage":{"prompt_tokens":120,"completion_tokens":45,"total_tokens":165,'
    b'"prompt_tokens_details":{"cached_tokens":64},"completion_tokens_details":{"reasoning_tokens":12}}}\n\n',
    b"data: [DONE]\n\n",
]
STREAM = b"".join(EVENTS_WITH_USAGE)

# The same stream as the client should see it when it did not ask for usage: written out by hand, not
# derived with the code under test.
STRIPPED = b"".join(
    [
        b"data: {" + HEAD + b',"choices":[{"index":0,"delta":{"role":"assistant","content":""},'
        b'"finish_reason":null}]}\n\n',
        b": keep-alive\n\n",
        b"data: {" + HEAD + b',"choices":[{"index":0,"delta":{"reasoning_content":"Think "},'
        b'"finish_reason":null}]}\n\n',
        b"data: {" + HEAD + b', "choices": [{"index": 0, "delta": {"reasoning_content": "hard."}}]}\n\n',
        b"data: {" + HEAD + b',"choices":[{"index":0,"delta":{"content":"Caf\xc3\xa9 "},"finish_reason":null}]}\n\n',
        b"data: {" + HEAD + b',"choices":[{"index":1,"delta":{"content":"OTHER CHOICE"},"finish_reason":null}]}\n\n',
        b"data: {" + HEAD + b',"choices":[{"index":0,"delta":{"content":"time"},"finish_reason":null}]}\n\n',
        b"data: {" + HEAD + b',"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"id":"call_a",'
        b'"type":"function","function":{"name":"get_weather","arguments":""}}]},"finish_reason":null}]}\n\n',
        b"data: {" + HEAD + b',"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":'
        b'"{\\"ci"}}]},"finish_reason":null}]}\n\n',
        b"data: {" + HEAD + b',"choices":[{"index":0,"delta":{"tool_calls":[{"index":1,"id":"call_b",'
        b'"type":"function","function":{"name":"get_time","arguments":"{\\"tz\\":"}}]},"finish_reason":null}]}\n\n',
        b"data: {" + HEAD + b',"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":'
        b'"ty\\":\\"Paris\\"}"}}]},"finish_reason":null}]}\n\n',
        b"data: {" + HEAD + b',"choices":[{"index":0,"delta":{"tool_calls":[{"index":1,"function":{"arguments":'
        b'"\\"UTC\\"}"}}]},"finish_reason":null}]}\n\n',
        b"data: {" + HEAD + b',"choices":[{"index":0,"delta":{},"finish_reason":"tool_calls"}]}\n\n',
        b"data: [DONE]\n\n",
    ]
)

EXPECTED_MESSAGE = {
    "role": "assistant",
    "content": "Café time",
    "reasoning_content": "Think hard.",
    "tool_calls": [
        {"id": "call_a", "type": "function", "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'}},
        {"id": "call_b", "type": "function", "function": {"name": "get_time", "arguments": '{"tz":"UTC"}'}},
    ],
}
EXPECTED_USAGE = Usage(input=120, output=45, total=165, cache_read=64, reasoning=12)


def run(tap: ChatStreamTap, chunks: Iterable[bytes]) -> list[bytes]:
    out = [tap.feed(c) for c in chunks]
    out.append(tap.flush())
    return out


def splits(data: bytes) -> Iterable[tuple[int, list[bytes]]]:
    """The stream cut in two at every byte position (0 and len included: an empty chunk)."""
    for i in range(len(data) + 1):
        yield i, [data[:i], data[i:]]


def test_fixture_is_consistent() -> None:
    # Guard the hand-written expectation: the only difference is the usage the gateway asked for.
    assert STREAM.count(b'"usage":null') + STREAM.count(b'"usage": null') == len(EVENTS_WITH_USAGE) - 3
    assert b'"usage"' not in STRIPPED and len(STRIPPED) < len(STREAM)
    assert json.loads(EXPECTED_MESSAGE["tool_calls"][0]["function"]["arguments"]) == {"city": "Paris"}  # type: ignore[index]


def test_passthrough_is_identical_at_every_split() -> None:
    for i, chunks in splits(STREAM):
        tap = ChatStreamTap(strip_usage=False)
        out = run(tap, chunks)
        assert out[:2] == chunks, f"split at {i}: chunks must be forwarded as they came"
        assert b"".join(out) == STREAM, f"split at {i}"


def test_passthrough_byte_by_byte() -> None:
    tap = ChatStreamTap(strip_usage=False)
    out = run(tap, [STREAM[i : i + 1] for i in range(len(STREAM))])
    assert b"".join(out) == STREAM
    assert tap.first_chunk_at is not None


def test_stripping_is_exact_at_every_split() -> None:
    for i, chunks in splits(STREAM):
        out = run(ChatStreamTap(strip_usage=True), chunks)
        assert b"".join(out) == STRIPPED, f"split at {i}"
        # the client only ever receives whole events
        assert all(o.endswith(b"\n\n") for o in out if o), f"split at {i}"


def test_stripping_byte_by_byte_and_in_three_pieces_around_separators() -> None:
    out = run(ChatStreamTap(strip_usage=True), [STREAM[i : i + 1] for i in range(len(STREAM))])
    assert b"".join(out) == STRIPPED
    # cut inside and around every "\n\n" separator, and again somewhere later
    seps = [i for i in range(len(STREAM) - 1) if STREAM[i : i + 2] == b"\n\n"]
    for s in seps:
        for a in (s - 1, s, s + 1, s + 2):
            for b in (a + 1, a + 2, a + 37, len(STREAM)):
                if not 0 <= a <= b <= len(STREAM):
                    continue
                out = run(ChatStreamTap(strip_usage=True), [STREAM[:a], STREAM[a:b], STREAM[b:]])
                assert b"".join(out) == STRIPPED, (a, b)


def test_stripping_emits_each_event_as_soon_as_it_is_complete() -> None:
    tap = ChatStreamTap(strip_usage=True)
    first = EVENTS_WITH_USAGE[0]
    assert tap.feed(first[:-1]) == b""  # one "\n" short of a whole event: held back
    assert tap.feed(b"\n") == STRIPPED[: STRIPPED.index(b"\n\n") + 2]


def test_stream_without_trailing_separator_is_flushed() -> None:
    tap = ChatStreamTap(strip_usage=True)
    assert tap.feed(b'data: {"choices":[{"index":0,"delta":{"content":"x"}}],"usage":null}') == b""
    assert tap.flush() == b'data: {"choices":[{"index":0,"delta":{"content":"x"}}]}\n\n'
    assert tap.flush() == b""


def test_usage_event_the_client_asked_for_is_kept_when_not_stripping() -> None:
    tap = ChatStreamTap(strip_usage=False)
    out = b"".join(run(tap, [STREAM]))
    assert b'"prompt_tokens":120' in out


@pytest.mark.parametrize("strip", [True, False])
def test_summary_assembles_the_message(strip: bool) -> None:
    for _, chunks in list(splits(STREAM))[:: max(1, len(STREAM) // 40)]:
        tap = ChatStreamTap(strip_usage=strip)
        run(tap, chunks)
        summary = tap.summary()
        assert summary.output == EXPECTED_MESSAGE
        assert summary.usage == EXPECTED_USAGE
        assert summary.finish_reason == "tool_calls"
        assert summary.error is None


def test_summary_of_plain_text_stream() -> None:
    events = [
        b'data: {"choices":[{"index":0,"delta":{"role":"assistant","content":""}}]}\n\n',
        b'data: {"choices":[{"index":0,"delta":{"content":"Hello"}}]}\n\n',
        b'data: {"choices":[{"index":0,"delta":{"content":", world"}}]}\n\n',
        b'data: {"choices":[{"index":0,"delta":{"reasoning":"r1"}}]}\n\n',  # OpenRouter-style field
        b'data: {"choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}\n\n',
        b"data: [DONE]\n\n",
    ]
    summary = summarize_sse(b"".join(events))
    assert summary.output == {"role": "assistant", "content": "Hello, world", "reasoning_content": "r1"}
    assert summary.finish_reason == "stop"
    assert summary.usage == Usage()  # not asked for, not reported
    assert summary.error is None


def test_summary_of_tool_only_stream_has_null_content() -> None:
    raw = (
        b'data: {"choices":[{"index":0,"delta":{"role":"assistant","tool_calls":[{"index":0,"id":"c1",'
        b'"function":{"name":"f","arguments":"{}"}}]}}]}\n\n'
        b'data: {"choices":[{"index":0,"delta":{},"finish_reason":"tool_calls"}]}\n\n'
    )
    summary = summarize_sse(raw)
    assert summary.output == {
        "role": "assistant",
        "content": None,
        "tool_calls": [{"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}}],
    }


@pytest.mark.parametrize(
    ("raw", "error", "content"),
    [
        pytest.param(
            b'data: {"choices":[{"index":0,"delta":{"content":"par"}}]}\n\n'
            b'data: {"error":{"message":"upstream went away","type":"upstream_error"}}\n\n',
            "upstream went away",
            "par",
            id="error-object-after-content",
        ),
        pytest.param(b'data: {"error":"plain string error"}\n\n', "plain string error", "", id="error-string"),
        pytest.param(
            b'data: {"choices":[{"index":0,"delta":{"content":"a"}}]}\n\ndata: {not json\n\n',
            None,
            "a",
            id="garbage-frame-skipped",
        ),
        pytest.param(b"event: ping\ndata: 42\n\ndata:\n\n: comment\n\n", None, "", id="non-object-frames"),
        pytest.param(b"", None, "", id="empty"),
    ],
)
def test_summary_errors_and_junk(raw: bytes, error: str | None, content: str) -> None:
    summary = summarize_sse(raw)
    assert summary.error == error
    assert summary.output is not None and summary.output["content"] == content


def test_data_without_space_after_colon() -> None:
    summary = summarize_sse(b'data:{"choices":[{"index":0,"delta":{"content":"tight"},"finish_reason":"stop"}]}\n\n')
    assert summary.output == {"role": "assistant", "content": "tight"} and summary.finish_reason == "stop"


@pytest.mark.parametrize(
    ("raw", "output", "usage", "finish", "error"),
    [
        pytest.param(
            json.dumps(
                {
                    "id": "c",
                    "object": "chat.completion",
                    "choices": [
                        {"index": 0, "message": {"role": "assistant", "content": "hi"}, "finish_reason": "stop"}
                    ],
                    "usage": {
                        "prompt_tokens": 9,
                        "completion_tokens": 1,
                        "total_tokens": 10,
                        "prompt_tokens_details": {"cached_tokens": 4},
                    },
                }
            ).encode(),
            {"role": "assistant", "content": "hi"},
            Usage(input=9, output=1, total=10, cache_read=4),
            "stop",
            None,
            id="text",
        ),
        pytest.param(
            json.dumps(
                {
                    "choices": [
                        {
                            "index": 0,
                            "message": {
                                "role": "assistant",
                                "content": None,
                                "tool_calls": [
                                    {"id": "t", "type": "function", "function": {"name": "f", "arguments": "{}"}}
                                ],
                            },
                            "finish_reason": "tool_calls",
                        }
                    ]
                }
            ).encode(),
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [{"id": "t", "type": "function", "function": {"name": "f", "arguments": "{}"}}],
            },
            Usage(),
            "tool_calls",
            None,
            id="tool-calls-no-usage",
        ),
        pytest.param(b"{not json", None, Usage(), None, "upstream returned invalid JSON", id="invalid-json"),
        pytest.param(b"[1, 2]", None, Usage(), None, None, id="not-an-object"),
        pytest.param(b'{"choices": []}', None, Usage(), None, None, id="no-choices"),
    ],
)
def test_summarize_json(raw: bytes, output: object, usage: Usage, finish: str | None, error: str | None) -> None:
    summary = summarize_json(raw)
    assert (summary.output, summary.usage, summary.finish_reason, summary.error) == (output, usage, finish, error)


def test_summarize_json_tolerates_choices_object() -> None:
    assert summarize_json(b'{"choices": {"0": {}}}').output is None


def test_crlf_events_are_stripped_and_forwarded_promptly() -> None:
    tap = ChatStreamTap(strip_usage=True)
    first = tap.feed(b'data: {"choices":[{"index":0,"delta":{"content":"hi"}}],"usage":null}\r\n\r\n')
    assert first == b'data: {"choices":[{"index":0,"delta":{"content":"hi"}}]}\r\n\r\n'
    rest = tap.feed(b'data: {"choices":[],"usage":{"prompt_tokens":1}}\r\n\r\ndata: [DONE]\r\n\r\n') + tap.flush()
    assert rest == b"data: [DONE]\r\n\r\n"
