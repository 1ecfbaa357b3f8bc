"""The real CLIs under test: how each is configured against the gateway, and the two checks it runs.

Every CLI gets its own HOME (and config dir) under the run directory, telemetry and update checks off,
HTTP(S)_PROXY pointed at the egress recorder (loopback excluded), and only the environment listed here —
nothing from the caller's environment but PATH and locale, so no real key can leak into a run.

Checks (markers are decided by ``compat/script.py``):
* answer: a prompt ``COMPAT_ASK <word>``; stdout must contain ``ANSWER-<word>``.
* tool:   a prompt naming a file whose content (a nonce) only the CLI's own tool can read; stdout must
          contain ``ROUNDTRIP:<nonce>``, and the upstream must have seen the tool call go out and its
          result come back.
"""

from __future__ import annotations

import json
import os
import secrets
import textwrap
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from .install import CACHE, claude_binary, npm_bin
from .script import EDIT_BEFORE


@dataclass
class Context:
    run_dir: Path
    gateway: str  # http://127.0.0.1:PORT
    gateway_key: str
    egress: str  # http://127.0.0.1:PORT


@dataclass
class Check:
    name: str
    argv: list[str]
    expect: str  # must appear in stdout
    roundtrip: bool = False  # the upstream must show a tool call (or edit) and then the round-trip answer
    extra: Callable[[], str | None] | None = None  # more proof; returns a failure reason or None


@dataclass
class Client:
    name: str
    needs: str  # which install provides it ("npm", "aider", "llm")
    routes: frozenset[str]  # trace routes its calls must land on
    version_argv: list[str]
    env: dict[str, str]
    cwd: Path
    checks: list[Check] = field(default_factory=list)
    note: str = ""
    attributed: str | None = None  # the client name attribution must give its calls (None: not asserted)


def _dirs(ctx: Context, name: str) -> tuple[Path, Path]:
    home, work = ctx.run_dir / name / "home", ctx.run_dir / name / "work"
    home.mkdir(parents=True, exist_ok=True)
    work.mkdir(parents=True, exist_ok=True)
    return home, work


def base_env(ctx: Context, home: Path) -> dict[str, str]:
    path = os.pathsep.join([str(CACHE / "npm" / "node_modules" / ".bin"), os.environ.get("PATH", "/usr/bin:/bin")])
    return {
        "PATH": path,
        "HOME": str(home),
        "LANG": os.environ.get("LANG", "C.UTF-8"),
        "TERM": "dumb",
        "NO_COLOR": "1",
        "XDG_CONFIG_HOME": str(home / ".config"),
        "XDG_CACHE_HOME": str(home / ".cache"),
        "XDG_DATA_HOME": str(home / ".local" / "share"),
        "HTTP_PROXY": ctx.egress,
        "HTTPS_PROXY": ctx.egress,
        "http_proxy": ctx.egress,
        "https_proxy": ctx.egress,
        "NO_PROXY": "127.0.0.1,localhost,::1",
        "no_proxy": "127.0.0.1,localhost,::1",
        "DO_NOT_TRACK": "1",
    }


def _nonce_file(work: Path) -> tuple[Path, str]:
    nonce = f"NONCE-{secrets.token_hex(8)}"
    path = work / "nonce.txt"
    path.write_text(f"compat nonce: {nonce}\n")
    return path, nonce


def _word() -> str:
    return f"w{secrets.token_hex(4)}"


def claude_code(ctx: Context) -> Client:
    home, work = _dirs(ctx, "claude-code")
    env = base_env(ctx, home) | {
        "ANTHROPIC_BASE_URL": ctx.gateway,
        "ANTHROPIC_API_KEY": ctx.gateway_key,
        "CLAUDE_CONFIG_DIR": str(home / ".claude"),
        "DISABLE_TELEMETRY": "1",
        "DISABLE_AUTOUPDATER": "1",
        "DISABLE_ERROR_REPORTING": "1",
        "DISABLE_BUG_COMMAND": "1",
        "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
    }
    binary = str(claude_binary() or npm_bin("claude"))
    nonce_path, nonce = _nonce_file(work)
    word = _word()
    return Client(
        name="claude-code",
        needs="npm",
        routes=frozenset({"messages", "count_tokens"}),
        attributed="claude-code",
        version_argv=[binary, "--version"],
        env=env,
        cwd=work,
        checks=[
            Check("answer", [binary, "-p", f"COMPAT_ASK {word}"], f"ANSWER-{word}"),
            # Read is the file tool Claude Code may use without a permission prompt inside its cwd.
            Check("tool", [binary, "-p", f"COMPAT_TOOL path={nonce_path}"], f"ROUNDTRIP:{nonce}", roundtrip=True),
            # Bash needs a permission in print mode: allow exactly `cat`.
            Check(
                "shell",
                [binary, "-p", "--allowedTools", "Bash(cat:*)", "--", f"COMPAT_TOOL via=shell path={nonce_path}"],
                f"ROUNDTRIP:{nonce}",
                roundtrip=True,
            ),
        ],
        note="-p (print mode), default model (routed by the claude-* wildcard); tools: Read, then Bash",
    )


CODEX_CONFIG = """\
model = "compat-codex"
model_provider = "llmscope"
approval_policy = "never"
sandbox_mode = "read-only"
check_for_update_on_startup = false

[model_providers.llmscope]
name = "llm-scope gateway"
base_url = "{gateway}/v1"
env_key = "LLM_SCOPE_COMPAT_KEY"
wire_api = "responses"

[features]
# Startup sync of the curated plugin repo (github.com, api.github.com, chatgpt.com): not needed offline.
plugins = false
remote_plugin = false

[analytics]
enabled = false

[feedback]
enabled = false

[otel]
exporter = "none"
"""


def codex(ctx: Context) -> Client:
    home, work = _dirs(ctx, "codex")
    codex_home = home / ".codex"
    codex_home.mkdir(exist_ok=True)
    (codex_home / "config.toml").write_text(CODEX_CONFIG.format(gateway=ctx.gateway))
    env = base_env(ctx, home) | {"CODEX_HOME": str(codex_home), "LLM_SCOPE_COMPAT_KEY": ctx.gateway_key}
    binary = str(npm_bin("codex"))
    nonce_path, nonce = _nonce_file(work)
    word = _word()
    exec_ = [binary, "exec", "--skip-git-repo-check", "--color", "never"]
    return Client(
        name="codex",
        needs="npm",
        routes=frozenset({"responses"}),
        attributed="codex",
        version_argv=[binary, "--version"],
        env=env,
        cwd=work,
        checks=[
            Check("answer", [*exec_, f"COMPAT_ASK {word}"], f"ANSWER-{word}"),
            Check("tool", [*exec_, f"COMPAT_TOOL path={nonce_path}"], f"ROUNDTRIP:{nonce}", roundtrip=True),
        ],
        note="exec, custom provider wire_api=responses, read-only sandbox; tool: exec_command (shell)",
    )


def aider(ctx: Context) -> Client:
    home, work = _dirs(ctx, "aider")
    model = "openai/compat-aider"
    metadata = {
        model: {
            "max_input_tokens": 128000,
            "max_output_tokens": 8192,
            "max_tokens": 8192,
            "input_cost_per_token": 0.000001,
            "output_cost_per_token": 0.000002,
            "litellm_provider": "openai",
            "mode": "chat",
        }
    }
    metadata_file = home / "model-metadata.json"
    metadata_file.write_text(json.dumps(metadata))
    # aider fetches LiteLLM's price list from the internet unless its 24 h cache is fresh and non-empty.
    caches = home / ".aider" / "caches"
    caches.mkdir(parents=True, exist_ok=True)
    (caches / "model_prices_and_context_window.json").write_text(json.dumps(metadata))
    _, nonce = _nonce_file(work)  # read by check.py, never named to the model
    target = work / "compat_value.py"
    target.write_text(f"{EDIT_BEFORE}\n")
    (work / "check.py").write_text(
        textwrap.dedent(
            """\
            import re, sys
            value = re.search(r"VALUE = (\\d+)", open("compat_value.py").read()).group(1)
            print(f"check: value={value} {open('nonce.txt').read().strip()}")
            sys.exit(1)  # fail on purpose: aider then sends this output back to the model
            """
        )
    )
    env = base_env(ctx, home) | {
        "OPENAI_API_KEY": ctx.gateway_key,
        "OPENAI_API_BASE": f"{ctx.gateway}/v1",
        "LITELLM_LOCAL_MODEL_COST_MAP": "True",
        "AIDER_CHECK_UPDATE": "false",
        "AIDER_ANALYTICS": "false",
    }
    binary = str(CACHE / "aider-venv" / "bin" / "aider")
    common = [
        binary,
        "--model",
        model,
        "--model-metadata-file",
        str(metadata_file),
        "--no-git",
        "--no-analytics",
        "--analytics-disable",
        "--no-check-update",
        "--no-show-model-warnings",
        "--no-show-release-notes",
        "--yes-always",
        "--no-pretty",
        "--no-fancy-input",
        "--map-tokens",
        "0",
    ]
    word = _word()

    def edited() -> str | None:
        text = target.read_text()
        return None if "VALUE = 42" in text else f"compat_value.py was not edited: {text!r}"

    return Client(
        name="aider",
        needs="aider",
        routes=frozenset({"chat_completion"}),
        attributed="openai-python",  # it calls through the OpenAI SDK and names itself nowhere else
        version_argv=[binary, "--version"],
        env=env,
        cwd=work,
        checks=[
            Check("answer", [*common, "--message", f"COMPAT_ASK {word}"], f"ANSWER-{word}"),
            Check(
                "tool",
                [
                    *common,
                    "--edit-format",
                    "diff",
                    "--test-cmd",
                    "python3 check.py",
                    "--auto-test",
                    "--message",
                    f"COMPAT_EDIT path={target.name}",
                    target.name,
                ],
                f"ROUNDTRIP:{nonce} value=42",
                roundtrip=True,
                extra=edited,
            ),
        ],
        note="--message; tool = diff edit applied on disk, then --auto-test output sent back to the model",
    )


LLM_TOOLS = """\
def read_compat_file(path: str) -> str:
    "Return the text of the file at path."
    with open(path) as f:
        return f.read()
"""


def llm(ctx: Context) -> Client:
    home, work = _dirs(ctx, "llm")
    user_dir = home / "llm"
    user_dir.mkdir(exist_ok=True)
    (user_dir / "extra-openai-models.yaml").write_text(
        f'- model_id: compat-llm\n  model_name: compat-llm\n  api_base: "{ctx.gateway}/v1"\n'
        "  api_key_name: llmscope\n  supports_tools: true\n"
    )
    (user_dir / "keys.json").write_text(json.dumps({"llmscope": ctx.gateway_key}))
    (work / "tools.py").write_text(LLM_TOOLS)
    env = base_env(ctx, home) | {"LLM_USER_PATH": str(user_dir)}
    binary = str(CACHE / "llm-venv" / "bin" / "llm")
    nonce_path, nonce = _nonce_file(work)
    word = _word()
    return Client(
        name="llm",
        needs="llm",
        routes=frozenset({"chat_completion"}),
        attributed="openai-python",  # it calls through the OpenAI SDK and names itself nowhere else
        version_argv=[binary, "--version"],
        env=env,
        cwd=work,
        checks=[
            Check("answer", [binary, "-m", "compat-llm", "--no-stream", f"COMPAT_ASK {word}"], f"ANSWER-{word}"),
            Check(
                "tool",
                [binary, "-m", "compat-llm", "--functions", "tools.py", "--td", f"COMPAT_TOOL path={nonce_path}"],
                f"ROUNDTRIP:{nonce}",
                roundtrip=True,
            ),
        ],
        note="extra-openai-models.yaml; answer non-streamed, tool streamed via --functions",
    )


CLIENTS: dict[str, Callable[[Context], Client]] = {
    "claude-code": claude_code,
    "codex": codex,
    "aider": aider,
    "llm": llm,
}
