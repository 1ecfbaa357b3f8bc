"""Client attribution: recorded request headers of the real tools → a normalized client and version.

The header shapes are what each tool sends as published in captures of its traffic (Claude Code and Codex
fingerprint comparisons in proxy projects, Cline's and Continue's own sources and PRs), trimmed to the
headers attribution reads plus the noise around them.
"""

from __future__ import annotations

import pytest

from llm_scope.accounting.clients import KNOWN_CLIENTS, Client, attribute, subagent_of

STAINLESS_JS = {"x-stainless-lang": "js", "x-stainless-runtime": "node", "x-stainless-os": "Linux"}

CASES: list[tuple[str, dict[str, str], Client]] = [
    (
        "claude code 2.x over /v1/messages",
        {
            "user-agent": "claude-cli/2.0.14 (external, cli)",
            "x-app": "cli",
            "anthropic-version": "2023-06-01",
            "anthropic-beta": "claude-code-20250219,interleaved-thinking-2025-05-14",
            "x-stainless-package-version": "0.60.0",
            "x-claude-code-session-id": "5b4c2f0e-8d1a-4c3e-9f21-0d6e7a1b2c3d",
            **STAINLESS_JS,
        },
        Client("claude-code", "2.0.14"),
    ),
    (
        "claude code 1.x",
        {"user-agent": "claude-cli/1.0.83 (external, cli)", "x-app": "cli", "anthropic-version": "2023-06-01"},
        Client("claude-code", "1.0.83"),
    ),
    (
        "claude agent sdk (python)",
        {"user-agent": "claude-cli/2.1.105 (external, sdk-py, agent-sdk/0.1.59)", "x-app": "cli"},
        Client("claude-code", "2.1.105"),
    ),
    ("claude code, newer UA", {"user-agent": "claude-code/2.1.45", "x-app": "cli"}, Client("claude-code", "2.1.45")),
    (
        "codex cli over /v1/responses",
        {
            "user-agent": "codex_cli_rs/0.38.0 (Ubuntu 24.04.2 LTS; x86_64) WindowsTerminal",
            "originator": "codex_cli_rs",
            "version": "0.38.0",
            "session_id": "8f1f0b18-2fb3-4c24-9a9a-000000000000",
            "conversation_id": "8f1f0b18-2fb3-4c24-9a9a-000000000000",
            "accept": "text/event-stream",
        },
        Client("codex", "0.38.0"),
    ),
    (
        "codex exec, version only in the UA",
        {"user-agent": "codex_exec/0.50.0 (Mac OS 15.0.0; arm64) iTerm.app/3.5.0", "originator": "codex_exec"},
        Client("codex", "0.50.0"),
    ),
    ("codex vscode", {"originator": "codex_vscode", "version": "0.72.0"}, Client("codex", "0.72.0")),
    (
        "cline (openai SDK with OpenRouter app headers)",
        {
            "user-agent": "OpenAI/JS 4.83.0",
            "http-referer": "https://cline.bot",
            "x-title": "Cline",
            "x-cline-version": "3.17.0",
            "x-stainless-package-version": "4.83.0",
            **STAINLESS_JS,
        },
        Client("cline", None),
    ),
    (
        "cline 4 (ai-sdk)",
        {
            "user-agent": "Cline/4.1.16 ai-sdk/openai-compatible/3.0.30 runtime/node.js/v24.18.1",
            "x-title": "Cline",
            "x-client-version": "4.1.16",
        },
        Client("cline", "4.1.16"),
    ),
    (
        "roo code",
        {
            "user-agent": "OpenAI/JS 4.78.1",
            "http-referer": "https://github.com/RooVetGit/Roo-Cline",
            "x-title": "Roo Code",
        },
        Client("roo-code", None),
    ),
    (
        "continue extension",
        {"user-agent": "Continue/1.2.10 (Visual Studio Code; vscode)"},
        Client("continue", "1.2.10"),
    ),
    ("continue cli", {"user-agent": "Continue-CLI/1.5.1"}, Client("continue", "1.5.1")),
    (
        "cursor",
        {"user-agent": "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 Cursor/1.7.2 Chrome/132.0"},
        Client("cursor", "1.7.2"),
    ),
    (
        "aider via litellm to openrouter-style headers",
        {"user-agent": "OpenAI/Python 1.99.1", "http-referer": "https://aider.chat", "x-title": "Aider"},
        Client("aider", None),
    ),
    (
        "openai python SDK (also llm and aider on a plain OpenAI base URL)",
        {
            "user-agent": "OpenAI/Python 1.54.0",
            "x-stainless-lang": "python",
            "x-stainless-package-version": "1.54.0",
            "x-stainless-runtime": "CPython",
        },
        Client("openai-python", "1.54.0"),
    ),
    ("async openai python", {"user-agent": "AsyncOpenAI/Python 1.99.1"}, Client("openai-python", "1.99.1")),
    ("openai node", {"user-agent": "OpenAI/JS 4.77.0", **STAINLESS_JS}, Client("openai-node", "4.77.0")),
    (
        "anthropic python",
        {"user-agent": "Anthropic/Python 0.72.0", "x-stainless-lang": "python", "anthropic-version": "2023-06-01"},
        Client("anthropic-python", "0.72.0"),
    ),
    ("anthropic node", {"user-agent": "Anthropic/JS 0.60.0", **STAINLESS_JS}, Client("anthropic-node", "0.60.0")),
    (
        "an SDK behind a generic agent: the stainless headers say which",
        {
            "user-agent": "node",
            "anthropic-version": "2023-06-01",
            "x-stainless-package-version": "0.55.1",
            **STAINLESS_JS,
        },
        Client("anthropic-node", "0.55.1"),
    ),
    (
        "stainless headers, no UA, no anthropic-version",
        {"x-stainless-lang": "python", "x-stainless-package-version": "1.40.0"},
        Client("openai-python", "1.40.0"),
    ),
    ("langchain", {"user-agent": "langchain-openai/0.3.28 OpenAI/Python 1.99.1"}, Client("langchain", "0.3.28")),
    ("litellm", {"user-agent": "litellm/1.77.0"}, Client("litellm", "1.77.0")),
    ("llm (its own UA token)", {"user-agent": "llm/0.27.1"}, Client("llm", "0.27.1")),
    ("opencode", {"user-agent": "opencode/0.15.0 ai-sdk/provider-utils/3.0.0"}, Client("opencode", "0.15.0")),
    ("curl", {"user-agent": "curl/8.5.0"}, Client("curl", "8.5.0")),
    (
        "an app of its own on an SDK keeps its name",
        {"user-agent": "TeamBot/2.3 OpenAI/Python 1.54.0", "x-stainless-lang": "python"},
        Client("TeamBot", "2.3"),
    ),
    ("unknown agent keeps its raw first token", {"user-agent": "MyAgent/0.9 (linux)"}, Client("MyAgent", "0.9")),
    ("a generic library without SDK headers", {"user-agent": "python-httpx/0.28.1"}, Client("python-httpx", "0.28.1")),
    ("no version", {"user-agent": "SomeTool"}, Client("SomeTool", None)),
    ("a version that is not one", {"user-agent": "Tool/latest"}, Client("Tool", None)),
    ("nothing at all", {}, Client(None, None)),
]


@pytest.mark.parametrize(("headers", "expected"), [(h, e) for _, h, e in CASES], ids=[name for name, _, _ in CASES])
def test_recorded_headers_attribute_to_the_tool(headers: dict[str, str], expected: Client) -> None:
    assert attribute(headers) == expected


def test_every_normalized_name_is_a_bounded_label() -> None:
    named = {expected.name for _, _, expected in CASES if expected.name}
    assert named - KNOWN_CLIENTS == {"MyAgent", "python-httpx", "SomeTool", "Tool", "TeamBot"}


def test_a_huge_agent_name_is_cut() -> None:
    client = attribute({"user-agent": "x" * 5000 + "/1.0"})
    assert client.name == "x" * 80 and client.version == "1.0"


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({"user-agent": "claude-cli/2.1.30 (external, cli)", "x-claude-code-session-id": "s"}, None),  # the main agent
        ({"x-claude-code-agent-id": "a1b2", "x-claude-code-parent-agent-id": "c3d4"}, "agent"),  # a Task subagent
        ({"originator": "codex_cli_rs", "x-openai-subagent": "review"}, "review"),
        ({"x-openai-subagent": "collab_spawn", "x-codex-parent-thread-id": "t0"}, "collab_spawn"),
        ({"x-codex-parent-thread-id": "t0"}, "thread"),
        ({"x-openai-subagent": "false"}, None),
        ({"x-openai-subagent": ""}, None),
    ],
)
def test_subagent_markers_only_as_the_tools_send_them(headers: dict[str, str], expected: str | None) -> None:
    assert subagent_of(headers) == expected
