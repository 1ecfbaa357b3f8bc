"""Which tool made a call: a normalized client name and version from the headers the tools send anyway.

Team leads ask "what did Claude Code cost us this week", not "what did `claude-cli/2.0.14 (external, cli)`
cost": the store, the read API, Langfuse and Prometheus all want one stable name per tool. Every rule here
reads only what the tool itself sends, so attribution needs no configuration:

- Claude Code: `x-app: cli`; `User-Agent: claude-cli/<v> (external, cli)` (Agent SDK: `(external, sdk-py, …)`).
- Codex: `originator: codex_cli_rs | codex_exec | codex_vscode` with `version: <v>`; `User-Agent: codex_cli_rs/<v>`.
- Cline, Roo Code, Kilo Code, aider, Continue: OpenRouter's app headers `X-Title` / `HTTP-Referer`, or their
  own User-Agent token.
- Cursor, Continue, opencode, llm, LangChain, LiteLLM, …: a product token of theirs anywhere in the User-Agent.
- The OpenAI and Anthropic SDKs: `User-Agent: OpenAI/Python 1.x`, `Anthropic/JS 0.x`; behind a generic agent
  (`node`, `python-httpx`), `x-stainless-lang` and `x-stainless-package-version`.

The recorded shapes these rules were written from are the table in tests/accounting/test_clients.py.
An agent none of these rules knows keeps the raw name of its first User-Agent product token, so nothing is
hidden; only metric labels fold such names into "other" (`KNOWN_CLIENTS`). Runs per call on the request
path: the headers it reads form a tuple, and each distinct tuple is classified once (an LRU cache): about
0.4 µs a call, against ~3 µs to classify a header set the first time (timeit, one core).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from functools import lru_cache
from typing import NamedTuple

MAX_NAME = 80  # a made-up User-Agent must not fill the store's client column with a novel


class Client(NamedTuple):
    name: str | None
    version: str | None


UNKNOWN = Client(None, None)

# Names a product token (lower-cased) anywhere in the User-Agent maps to; apps before the libraries they use.
APP_TOKENS: dict[str, str] = {
    "claude-cli": "claude-code",
    "claude-code": "claude-code",
    "cursor": "cursor",
    "continue": "continue",
    "continue-cli": "continue",
    "cline": "cline",
    "roo-code": "roo-code",
    "roocode": "roo-code",
    "kilo-code": "kilo-code",
    "kilocode": "kilo-code",
    "aider": "aider",
    "llm": "llm",
    "opencode": "opencode",
    "goose": "goose",
    "zed": "zed",
    "windsurf": "windsurf",
    "litellm": "litellm",
}
# OpenRouter's app attribution headers, which several coding tools send to every OpenAI-compatible base URL.
TITLES: dict[str, str] = {
    "cline": "cline",
    "roo code": "roo-code",
    "kilo code": "kilo-code",
    "aider": "aider",
    "continue": "continue",
}
REFERERS: tuple[tuple[str, str], ...] = (
    ("cline.bot", "cline"),
    ("roocode", "roo-code"),
    ("roo-cline", "roo-code"),
    ("kilocode", "kilo-code"),
    ("aider.chat", "aider"),
    ("continue.dev", "continue"),
)
# `<Product>/<Language> <version>`: the official SDKs' User-Agent.
SDKS: dict[tuple[str, str], str] = {
    ("openai", "python"): "openai-python",
    ("asyncopenai", "python"): "openai-python",
    ("openai", "js"): "openai-node",
    ("anthropic", "python"): "anthropic-python",
    ("asyncanthropic", "python"): "anthropic-python",
    ("anthropic", "js"): "anthropic-node",
}
# A User-Agent that names only an HTTP library says nothing about the tool; SDK headers then say more.
GENERIC_AGENTS = frozenset(
    {"node", "node-fetch", "undici", "axios", "bun", "deno", "python-httpx", "python-requests", "aiohttp"}
    | {"python-urllib", "go-http-client", "okhttp", "reqwest", "mozilla"}
)
KNOWN_CLIENTS = frozenset(
    {*APP_TOKENS.values(), *SDKS.values(), "codex", "langchain", "curl"}
)  # the names metrics may use as label values

_COMMENT = re.compile(r"\([^)]*\)")
_VERSION = re.compile(r"v?\d[\w.+-]*")


def attribute(headers: Mapping[str, str]) -> Client:
    """The client of one call, from its (lower-cased) request headers."""
    get = headers.get
    return _classify(
        get("user-agent"),
        get("x-app"),
        get("originator"),
        get("version"),
        get("x-title"),
        get("http-referer"),
        get("x-stainless-lang"),
        get("x-stainless-package-version"),
        "anthropic-version" in headers,
    )


def _tokens(agent: str) -> list[tuple[str, str | None]]:
    """The User-Agent's product tokens as (name, version), comments in parentheses dropped."""
    out: list[tuple[str, str | None]] = []
    for word in _COMMENT.sub(" ", agent).split():
        name, _, version = word.partition("/")
        if name:
            out.append((name, version or None))
    return out


@lru_cache(maxsize=1024)
def _classify(
    agent: str | None,
    app: str | None,
    originator: str | None,
    version: str | None,
    title: str | None,
    referer: str | None,
    lang: str | None,
    package_version: str | None,
    anthropic: bool,
) -> Client:
    tokens = _tokens(agent) if agent else []
    lowered = [(name.lower(), ver) for name, ver in tokens]
    first = lowered[0][0] if lowered else ""
    if app == "cli" or first in ("claude-cli", "claude-code"):
        return Client("claude-code", _version_of(lowered, ("claude-cli", "claude-code")))
    if (originator or "").startswith("codex") or first.startswith("codex"):
        return Client("codex", _clean(version) or (_clean(lowered[0][1]) if first.startswith("codex") else None))
    for name, ver in lowered:
        if name in APP_TOKENS:
            return Client(APP_TOKENS[name], _clean(ver))
        if name.startswith("langchain"):
            return Client("langchain", _clean(ver))
    if title and (named := TITLES.get(title.strip().lower())) is not None:
        return Client(named, None)
    if referer:
        for needle, named in REFERERS:
            if needle in referer.lower():
                return Client(named, None)
    if lowered and (sdk := SDKS.get((first, (lowered[0][1] or "").lower()))) is not None:
        return Client(sdk, _clean(tokens[1][0]) if len(tokens) > 1 else None)
    if first == "curl":
        return Client("curl", _clean(lowered[0][1]))
    if lang in ("python", "js") and (not tokens or first in GENERIC_AGENTS):
        family = "anthropic" if anthropic else "openai"
        return Client(f"{family}-{'python' if lang == 'python' else 'node'}", _clean(package_version))
    if tokens:
        name, ver = tokens[0]
        return Client(name[:MAX_NAME], _clean(ver))
    return UNKNOWN


def _version_of(tokens: list[tuple[str, str | None]], names: tuple[str, ...]) -> str | None:
    return next((_clean(ver) for name, ver in tokens if name in names), None)


def _clean(version: str | None) -> str | None:
    """A version as the tool wrote it, if it looks like one (`1.2.3`, `v24.3.0`, `0.50.0-alpha.1`)."""
    if not version:
        return None
    match = _VERSION.match(version.strip())
    return match.group(0)[:40] if match else None


# The explicit markers the tools send on a subagent's own calls (header, what the stored marker says):
# - Claude Code 2.1+ sets `x-claude-code-agent-id` (and `x-claude-code-parent-agent-id`) on the calls of an
#   agent its Task/Agent tool started, never on the main conversation's (anthropics/claude-code#49204, #66761).
# - Codex sets `x-openai-subagent` to the subagent's kind (`review`, `compact`, `collab_spawn`, …) and
#   `x-codex-parent-thread-id` on a spawned thread's calls.
SUBAGENT_HEADERS: tuple[tuple[str, str], ...] = (
    ("x-openai-subagent", ""),
    ("x-claude-code-parent-agent-id", "agent"),
    ("x-claude-code-agent-id", "agent"),
    ("x-codex-parent-thread-id", "thread"),
)


def subagent_of(headers: Mapping[str, str]) -> str | None:
    """The marker a tool sent on a subagent's call (Codex's kind, else "agent"/"thread"), or None: only what the
    tool states, never a guess from the prompt. Four dict lookups on the request path."""
    for header, label in SUBAGENT_HEADERS:
        value = headers.get(header)
        if value is not None and value.strip().lower() not in ("", "false", "0"):
            return label or value.strip()[:MAX_NAME]
    return None
