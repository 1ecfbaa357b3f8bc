"""What the scripted upstream answers, decided from the conversation alone (pure functions, no I/O).

A run plants a nonce in a file in the CLI's working directory and asks, in the prompt, for that file by
path only; the nonce itself is never in the prompt. So when the nonce shows up in a later request, it came
from the CLI's own environment — a tool it ran, a test it ran — and the final answer quotes it back:

* ``COMPAT_ASK <word>`` in the user text, nothing else asked → text ``ANSWER-<word>``: a plain answer.
* ``COMPAT_TOOL path=<p>`` and the request offers tools → call the tool that best reads ``<p>``
  (a Read/read-file tool with a path argument, else a shell tool with ``cat <p>``);
  ``COMPAT_TOOL via=shell path=<p>`` prefers a shell tool (``cat <p>``).
* ``COMPAT_EDIT path=<p>`` (aider) → a SEARCH/REPLACE edit of ``<p>`` in aider's diff format.
* ``NONCE-<hex>`` in any non-assistant content (a tool result, or test output a CLI sent back)
  → text ``ROUNDTRIP:NONCE-<hex>`` (plus ``value=<n>`` if that appeared too): the round trip closed.
* anything else (title generation, quota probes, …) → a short text ``ok``.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any, Literal

Json = dict[str, Any]
Format = Literal["chat", "responses", "messages"]

NONCE_RE = re.compile(r"NONCE-[0-9a-f]{8,}")
VALUE_RE = re.compile(r"value=(\d+)")
ASK_RE = re.compile(r"COMPAT_ASK (\w[\w-]*)")
TOOL_RE = re.compile(r"COMPAT_TOOL (?:via=(shell) )?path=(\S+)")
EDIT_RE = re.compile(r"COMPAT_EDIT path=(\S+)")

# Tools that read a file by path, best first, then shell tools (name → how the command is passed).
READ_TOOLS = ("Read", "read_file", "read_compat_file", "view")
SHELL_TOOLS = ("shell_command", "exec_command", "shell", "Bash", "local_shell")
EDIT_BEFORE = "VALUE = 20"
EDIT_AFTER = "VALUE = 42"


@dataclass
class Conversation:
    """The parts of a request the script reads, whatever the wire format."""

    fmt: Format
    user_texts: list[str] = field(default_factory=list)  # every user / system / developer text
    client_texts: list[str] = field(default_factory=list)  # tool results and user texts after the first turn
    tool_results: list[str] = field(default_factory=list)
    tools: list[Json] = field(default_factory=list)  # normalized: {"name", "parameters", "kind"}


@dataclass(frozen=True)
class ToolCall:
    name: str
    arguments: Json
    kind: str = "function"  # "function" | "custom" | "local_shell"


@dataclass(frozen=True)
class Reply:
    text: str = ""
    tool: ToolCall | None = None
    rule: str = "default"


def _text_of(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = []
        for part in content:
            if isinstance(part, str):
                parts.append(part)
            elif isinstance(part, dict):
                if part.get("type") == "tool_result":
                    continue
                for key in ("text", "input_text", "output_text", "content"):
                    if isinstance(part.get(key), str):
                        parts.append(part[key])
                        break
        return "\n".join(parts)
    return ""


def _tool_result_text(block: Json) -> str:
    content = block.get("content", block.get("output"))
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return _text_of(content)
    return json.dumps(content) if content is not None else ""


def parse(fmt: Format, body: Json) -> Conversation:
    conv = Conversation(fmt)
    if fmt == "messages":
        system = body.get("system")
        if system:
            conv.user_texts.append(_text_of(system))
        for message in body.get("messages") or []:
            content = message.get("content")
            if message.get("role") in ("user", "system"):
                conv.user_texts.append(_text_of(content))
                for block in content if isinstance(content, list) else []:
                    if isinstance(block, dict) and block.get("type") == "tool_result":
                        conv.tool_results.append(_tool_result_text(block))
        for tool in body.get("tools") or []:
            conv.tools.append(
                {"name": tool.get("name"), "parameters": tool.get("input_schema") or {}, "kind": "function"}
            )
    elif fmt == "chat":
        for message in body.get("messages") or []:
            role = message.get("role")
            if role == "tool":
                conv.tool_results.append(_text_of(message.get("content")))
            elif role in ("user", "system", "developer"):
                conv.user_texts.append(_text_of(message.get("content")))
        for tool in body.get("tools") or []:
            fn = tool.get("function") or {}
            conv.tools.append({"name": fn.get("name"), "parameters": fn.get("parameters") or {}, "kind": "function"})
    else:
        if body.get("instructions"):
            conv.user_texts.append(str(body["instructions"]))
        items = body.get("input")
        items = [{"role": "user", "content": items}] if isinstance(items, str) else items or []
        for item in items:
            kind = item.get("type", "message")
            if kind.endswith("_call_output"):
                conv.tool_results.append(_tool_result_text(item))
            elif kind == "message" and item.get("role") in ("user", "system", "developer"):
                conv.user_texts.append(_text_of(item.get("content")))
        for tool in body.get("tools") or []:
            kind = tool.get("type", "function")
            name = tool.get("name") or kind
            conv.tools.append({"name": name, "parameters": tool.get("parameters") or {}, "kind": kind})
    # User turns after the first one carry what a CLI sent back (aider's test output, for one).
    later_users = conv.user_texts[1:] if len(conv.user_texts) > 1 else []
    conv.client_texts = conv.tool_results + later_users
    return conv


def _arguments_for(tool: Json, path: str) -> Json:
    """Fill a tool's schema for 'read <path>': a path-like property, else a command-like one."""
    props = (tool.get("parameters") or {}).get("properties") or {}
    for key in ("file_path", "path", "filename", "file"):
        if key in props:
            return {key: path}
    for key in ("command", "cmd"):
        if key in props:
            if props[key].get("type") == "array":
                return {key: ["cat", path]}
            return {key: f"cat {path}"}
    return {}


def choose_tool(conv: Conversation, path: str, prefer_shell: bool = False) -> ToolCall | None:
    by_name = {t["name"]: t for t in conv.tools}
    for name in SHELL_TOOLS + READ_TOOLS if prefer_shell else READ_TOOLS + SHELL_TOOLS:
        tool = by_name.get(name)
        if tool is None:
            continue
        if tool["kind"] == "local_shell":
            return ToolCall(name, {"command": ["cat", path]}, kind="local_shell")
        if tool["kind"] != "function":
            continue
        args = _arguments_for(tool, path)
        if args:
            return ToolCall(name, args)
    for tool in conv.tools:  # a CLI whose tool names we don't know: the first that takes a path
        if tool["kind"] == "function" and _arguments_for(tool, path):
            return ToolCall(tool["name"], _arguments_for(tool, path))
    return None


def aider_edit(path: str) -> str:
    name = path.rsplit("/", 1)[-1]
    return (
        f"I will set VALUE to 42.\n\n{name}\n```python\n<<<<<<< SEARCH\n{EDIT_BEFORE}\n=======\n"
        f"{EDIT_AFTER}\n>>>>>>> REPLACE\n```\n"
    )


def decide(fmt: Format, body: Json) -> Reply:
    conv = parse(fmt, body)
    for text in conv.client_texts:
        nonce = NONCE_RE.search(text)
        if nonce:
            value = VALUE_RE.search(text)
            extra = f" value={value.group(1)}" if value else ""
            return Reply(text=f"Done. ROUNDTRIP:{nonce.group(0)}{extra}", rule="roundtrip")
    if conv.tool_results:
        sample = " ".join(conv.tool_results[-1].split())[:300]
        return Reply(text=f"TOOL-RESULT-WITHOUT-NONCE: {sample}", rule="tool_result_without_nonce")
    everything = "\n".join(conv.user_texts)
    tool_ask = TOOL_RE.search(everything)
    if tool_ask and conv.tools:
        call = choose_tool(conv, tool_ask.group(2), prefer_shell=tool_ask.group(1) == "shell")
        if call is not None:
            return Reply(text="Reading the file.", tool=call, rule="tool_call")
        names = ", ".join(str(t["name"]) for t in conv.tools)
        return Reply(text=f"NO-USABLE-TOOL among: {names}", rule="no_usable_tool")
    edit_ask = EDIT_RE.search(everything)
    if edit_ask:
        return Reply(text=aider_edit(edit_ask.group(1)), rule="edit")
    ask = ASK_RE.search(everything)
    if ask:
        return Reply(text=f"The answer is ANSWER-{ask.group(1)}.", rule="answer")
    return Reply(text="ok", rule="default")
