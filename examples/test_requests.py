"""Try a running gateway with the official openai SDK: a plain call, a stream and a tool call.

    make run                              # in one terminal
    .venv/bin/python examples/test_requests.py [--base-url URL] [--model NAME]

Uses the built-in mock model by default, so no provider key is needed. Set LLM_SCOPE_MASTER_KEY in the
environment if the gateway requires one. Each call prints its X-Trace-ID, the id to look up in Langfuse
or the local trace store.
"""

from __future__ import annotations

import argparse
import json
import os
from typing import Any

from openai import OpenAI
from openai.types.chat import ChatCompletionToolParam

TOOLS: list[ChatCompletionToolParam] = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "Current weather for a city.",
            "parameters": {
                "type": "object",
                "properties": {"city": {"type": "string"}},
                "required": ["city"],
            },
        },
    }
]


def non_stream(client: OpenAI, model: str) -> None:
    raw = client.chat.completions.with_raw_response.create(
        model=model,
        messages=[{"role": "user", "content": "Say hello in five words."}],
    )
    completion = raw.parse()
    print(f"[non-stream] trace {raw.headers.get('x-trace-id')}  {raw.headers.get('x-duration-ms')} ms")
    print("  ", completion.choices[0].message.content)
    if completion.usage:
        print("   usage:", completion.usage.prompt_tokens, "in /", completion.usage.completion_tokens, "out")


def stream(client: OpenAI, model: str) -> None:
    raw = client.chat.completions.with_raw_response.create(
        model=model,
        messages=[{"role": "user", "content": "Count to five."}],
        stream=True,
        stream_options={"include_usage": True},
    )
    print(f"[stream]     trace {raw.headers.get('x-trace-id')}")
    print("   ", end="")
    for chunk in raw.parse():
        if chunk.choices:
            print(chunk.choices[0].delta.content or "", end="", flush=True)
        elif chunk.usage:
            print(f"\n   usage: {chunk.usage.total_tokens} tokens", end="")
    print()


def tool_call(client: OpenAI, model: str) -> None:
    messages: list[Any] = [{"role": "user", "content": "What's the weather in Paris?"}]
    raw = client.chat.completions.with_raw_response.create(model=model, messages=messages, tools=TOOLS)
    first = raw.parse()
    print(f"[tool call]  trace {raw.headers.get('x-trace-id')}")
    message = first.choices[0].message
    if not message.tool_calls:
        print("   no tool call; answer:", message.content)
        return
    call = message.tool_calls[0]
    if call.type != "function":
        print("   unexpected tool call type:", call.type)
        return
    print(f"   model called {call.function.name}({json.loads(call.function.arguments)})")
    messages.append(message.model_dump(exclude_none=True))
    messages.append({"role": "tool", "tool_call_id": call.id, "content": "18°C and sunny"})
    raw = client.chat.completions.with_raw_response.create(model=model, messages=messages, tools=TOOLS)
    print(f"   trace {raw.headers.get('x-trace-id')}: {raw.parse().choices[0].message.content}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--base-url", default="http://127.0.0.1:8000/v1")
    parser.add_argument("--model", default="mock-gpt")
    args = parser.parse_args()
    client = OpenAI(
        base_url=args.base_url,
        api_key=os.environ.get("LLM_SCOPE_MASTER_KEY") or "unused",
        default_headers={"X-User-ID": "example-user", "X-Session-ID": "examples-test-requests"},
    )
    non_stream(client, args.model)
    stream(client, args.model)
    tool_call(client, args.model)


if __name__ == "__main__":
    main()
