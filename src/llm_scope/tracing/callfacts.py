"""What a coding session's calls say about the session, taken from each call's request and answer in the trace
helper before content may be dropped (`trace_content` off still counts them): the tool calls the model made,
by tool name; a digest of the request, to tell a client's re-send of a failed call; and, only when the setting
is on, the repository (the working directory's name) and branch the tool itself stated in its prompt.

Parse only what is there, never guess: a call whose prompt has no environment block has no repository.
Pure functions over the record, off the request path; table-tested in tests/tracing/test_callfacts.py.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator
from typing import Any

from .. import jsoncodec
from ..types import CallRecord
from .blocks import blocks, shaped

# Anthropic content blocks that are calls the model made (client tools, server tools, MCP connector tools).
_ANTHROPIC_CALLS = frozenset(("tool_use", "server_tool_use", "mcp_tool_use"))
# Responses output items that are calls and carry the tool's own name; the other `*_call` items (shell,
# web search, file search, computer, code interpreter, image generation) are named by their type.
_NAMED_ITEMS = frozenset(("function_call", "custom_tool_call", "mcp_call"))
# The traces columns the facts are stored in (both stores, one migration each), and their SQL types.
COLUMNS: tuple[tuple[str, str], ...] = (
    ("tool_calls", "TEXT"),  # JSON {name: count}; NULL: no tool calls
    ("subagent", "TEXT"),
    ("retries", "INTEGER"),
    ("resent", "INTEGER"),
    ("request_digest", "TEXT"),
    ("repo", "TEXT"),
    ("branch", "TEXT"),
    ("session_derived", "INTEGER"),
)
MAX_TOOL_NAME = 100
MAX_TOOLS = 64  # distinct names kept per call: a runaway answer must not fill the column
MAX_SCAN_MESSAGES = 8  # messages searched for an environment block: the tools put it at the start

# Claude Code's system prompt: "<env>\nWorking directory: /path\nIs directory a git repo: Yes\n…</env>" and, when
# it is a git repository, "gitStatus: This is the git status at the start of the conversation. …\nCurrent
# branch: main\n…". Some versions write "Primary working directory:".
_ENV_BLOCK = re.compile(r"<env>(.*?)</env>", re.S)
_WORKING_DIR = re.compile(r"^[ \t]*(?:Primary )?[Ww]orking directory:[ \t]*(\S[^\n]*?)[ \t]*$", re.M)
GIT_STATUS_SPAN = 2000  # characters after "gitStatus:" where its "Current branch:" line is
_CURRENT_BRANCH = re.compile(r"^[ \t]*Current branch:[ \t]*(\S+)[ \t]*$", re.M)
# Codex's user-role item: "<environment_context>\n  <cwd>/path</cwd>\n  …</environment_context>".
_CODEX_CONTEXT = re.compile(r"<environment_context>(.*?)</environment_context>", re.S)
_CODEX_CWD = re.compile(r"<cwd>\s*([^<\n]+?)\s*</cwd>")
_CODEX_BRANCH = re.compile(r"<(?:git_)?branch>\s*([^<\s]+)\s*</(?:git_)?branch>")


def note(record: CallRecord, *, repo: bool = False) -> CallRecord:
    """Fill the record's tool calls and request digest (and repo/branch when asked); nothing else changes."""
    record.tool_calls = tool_calls(record.output)
    record.request_digest = request_digest(record.input)
    if repo and record.repo is None:
        record.repo, record.branch = repo_and_branch(record.input)
    return record


def tool_calls(output: Any) -> dict[str, int] | None:
    """The tool calls in an answer as the record holds it, by name: OpenAI chat `tool_calls[].function.name`,
    Anthropic `tool_use` blocks' `name`, Responses `function_call` (and the other `*_call`) items. None: none."""
    counts: dict[str, int] = {}
    for name in _call_names(output):
        name = name[:MAX_TOOL_NAME]
        if name in counts or len(counts) < MAX_TOOLS:
            counts[name] = counts.get(name, 0) + 1
    return counts or None


def _call_names(output: Any) -> Iterator[str]:
    if isinstance(output, dict):
        for call in output.get("tool_calls") or ():
            if isinstance(call, dict):
                function = call.get("function")
                name = function.get("name") if isinstance(function, dict) else None
                if isinstance(name, str) and name:
                    yield name
        content = output.get("content")
        if isinstance(content, list):
            for block in content:
                if isinstance(block, dict) and block.get("type") in _ANTHROPIC_CALLS:
                    name = block.get("name")
                    if isinstance(name, str) and name:
                        yield name
    elif isinstance(output, list):  # Responses: the output items
        for item in output:
            if not isinstance(item, dict):
                continue
            kind = item.get("type")
            if kind in _NAMED_ITEMS:
                name = item.get("name")
                if isinstance(name, str) and name:
                    yield name
            elif isinstance(kind, str) and kind.endswith("_call"):
                yield kind[: -len("_call")]


def request_digest(content: Any) -> str | None:
    """A short digest of the request's content (messages or input, system or instructions, tools): two calls
    with the same one sent the same request. None without content (an unparsable body).

    An input read from the body's bytes (`bodyblocks`) is digested by its blocks' digests, taken there of their
    text, so its size costs nothing here; the same body read again gives the same digests, so a client's
    re-send still gives the same request digest.
    """
    if content is None:
        return None
    digests = getattr(content, "digests", None)
    if digests is not None:  # the blocks' digests stand for their content: no re-encoding of 50-200 KB (issue 20)
        if None in digests:
            parts = [d.hex() if d is not None else _json(b) for b, d in zip(blocks(content), digests, strict=True)]
        else:  # every block read from the bytes (a coding agent's call: ~70): one C-level map, no walk
            parts = list(map(bytes.hex, digests))
        return hashlib.sha256(b"digests:" + jsoncodec.dumps(shaped(content, parts))).hexdigest()[:24]
    try:
        data = jsoncodec.dumps(content)
    except (TypeError, ValueError):
        data = repr(content).encode("utf-8", "surrogatepass")
    return hashlib.sha256(data).hexdigest()[:24]  # sha256: twice as fast as blake2b here (SHA extensions)


def _json(block: Any) -> str:
    try:
        return jsoncodec.dumps_str(block)
    except (TypeError, ValueError):
        return repr(block)


def repo_and_branch(content: Any) -> tuple[str | None, str | None]:
    """The repository (the working directory's last part) and branch the tool stated: Claude Code's `<env>`
    block and `gitStatus:` in its system prompt, Codex's `<environment_context>` in its input."""
    repo: str | None = None
    branch: str | None = None
    for text in _prompt_texts(content):
        if repo is None:
            if (env := _ENV_BLOCK.search(text)) and (cwd := _WORKING_DIR.search(env.group(1))):
                repo = _basename(cwd.group(1))
            elif codex := _CODEX_CONTEXT.search(text):
                if found := _CODEX_CWD.search(codex.group(1)):
                    repo = _basename(found.group(1))
                if branch is None and (named := _CODEX_BRANCH.search(codex.group(1))):
                    branch = named.group(1)[:200]
        at = text.find("gitStatus:") if branch is None else -1
        if at >= 0 and (current := _CURRENT_BRANCH.search(text, at, at + GIT_STATUS_SPAN)):
            branch = current.group(1)[:200]
        if repo is not None and branch is not None:
            break
    return repo, branch


def _basename(path: str) -> str | None:
    parts = [part for part in re.split(r"[/\\]", path.strip().strip("\"'`")) if part]
    name = parts[-1] if parts else None
    return name[:200] if name and not name.endswith(":") else None  # "C:" alone names no repository


def _prompt_texts(content: Any) -> Iterator[str]:
    """The system prompt's texts (Anthropic `system`, Responses `instructions`), then the first messages' or
    input items' texts: where the tools put their environment."""
    if isinstance(content, dict):
        for key in ("system", "instructions"):
            yield from _texts(content.get(key))
        content = content.get("messages", content.get("input"))
    if isinstance(content, str):
        yield content
    elif isinstance(content, list):
        for message in content[:MAX_SCAN_MESSAGES]:
            if isinstance(message, dict):
                yield from _texts(message.get("content"))


def _texts(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, list):
        for block in value:
            if isinstance(block, str):
                yield block
            elif isinstance(block, dict) and isinstance(block.get("text"), str):
                yield block["text"]
