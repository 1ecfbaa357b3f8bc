"""Install the pinned CLIs into `.compat/` (git-ignored), once: a stamp holding the hash of the pins makes
re-runs skip the install. Only the package registries are used (npm, PyPI), through npm and pip.

    .compat/npm/           @anthropic-ai/claude-code and @openai/codex (compat/npm/package-lock.json)
    .compat/aider-venv/    aider-chat (compat/requirements/aider.txt)
    .compat/llm-venv/      llm (compat/requirements/llm.txt)

Each install reports ok or the reason it failed; the runner marks that CLI SKIPPED with the reason.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
CACHE = ROOT / ".compat"
STAMP = ".compat-stamp"
MIN_NODE_MAJOR = 18  # the npm packages ship native binaries; node only runs their launchers


@dataclass
class Installed:
    ok: bool
    reason: str = ""


def _digest(*files: Path) -> str:
    h = hashlib.sha256()
    for f in files:
        h.update(f.read_bytes())
    return h.hexdigest()


def _fresh(target: Path, digest: str) -> bool:
    stamp = target / STAMP
    return stamp.exists() and stamp.read_text().strip() == digest


def _run(cmd: list[str], cwd: Path | None = None, timeout: float = 900) -> tuple[bool, str]:
    env = {**os.environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1", "npm_config_update_notifier": "false"}
    try:
        done = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=timeout, env=env)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return False, f"{' '.join(cmd[:3])}: {exc}"
    tail = "\n".join((done.stdout + done.stderr).strip().splitlines()[-8:])
    return done.returncode == 0, tail


def _log(message: str) -> None:
    print(f"[compat] {message}", file=sys.stderr, flush=True)


def node_major() -> int | None:
    node = shutil.which("node")
    if node is None:
        return None
    ok, out = _run([node, "--version"], timeout=30)
    try:
        return int(out.strip().lstrip("v").split(".")[0]) if ok else None
    except ValueError:
        return None


def install_npm() -> Installed:
    target = CACHE / "npm"
    pins = [HERE / "npm" / "package.json", HERE / "npm" / "package-lock.json"]
    digest = _digest(*pins)
    if _fresh(target, digest):
        return Installed(True)
    major = node_major()
    if major is None or shutil.which("npm") is None:
        return Installed(False, "node/npm not found on PATH (apt-get install nodejs npm)")
    if major < MIN_NODE_MAJOR:
        return Installed(False, f"node {major} is too old (need >= {MIN_NODE_MAJOR})")
    target.mkdir(parents=True, exist_ok=True)
    for pin in pins:
        shutil.copy(pin, target / pin.name)
    _log("npm ci: @anthropic-ai/claude-code, @openai/codex (first run only, ~1 GB)")
    ok, out = _run(["npm", "ci", "--no-audit", "--no-fund", "--loglevel=error"], cwd=target)
    if not ok:
        return Installed(False, f"npm ci failed: {out}")
    (target / STAMP).write_text(digest)
    return Installed(True)


def install_venv(name: str) -> Installed:
    target = CACHE / f"{name}-venv"
    pins = HERE / "requirements" / f"{name}.txt"
    digest = _digest(pins)
    if _fresh(target, digest):
        return Installed(True)
    _log(f"pip install -r compat/requirements/{name}.txt into .compat/{name}-venv (first run only)")
    if target.exists():
        shutil.rmtree(target)
    ok, out = _run([sys.executable, "-m", "venv", str(target)])
    if not ok:
        return Installed(False, f"python -m venv failed: {out}")
    ok, out = _run([str(target / "bin" / "pip"), "install", "-q", "-r", str(pins)])
    if not ok:
        return Installed(False, f"pip install failed: {out}")
    (target / STAMP).write_text(digest)
    return Installed(True)


def install_all() -> dict[str, Installed]:
    npm = install_npm()
    return {
        "npm": npm,
        "aider": install_venv("aider"),
        "llm": install_venv("llm"),
    }


def npm_bin(name: str) -> Path:
    return CACHE / "npm" / "node_modules" / ".bin" / name


def claude_binary() -> Path | None:
    """The native claude binary: the wrapper's bin/claude.exe once its postinstall copied it there; if npm
    skipped that install script (newer npm asks to approve them), the platform package's own binary."""
    wrapper = CACHE / "npm" / "node_modules" / "@anthropic-ai" / "claude-code" / "bin" / "claude.exe"
    if wrapper.exists() and wrapper.stat().st_size > 1_000_000:
        return wrapper
    for platform in sorted((CACHE / "npm" / "node_modules" / "@anthropic-ai").glob("claude-code-linux-*")):
        binary = platform / "claude"
        if binary.exists():
            return binary
    return None


if __name__ == "__main__":
    results = install_all()
    for tool, result in results.items():
        print(f"{tool}: {'ok' if result.ok else 'FAILED: ' + result.reason}")
    sys.exit(0 if all(r.ok for r in results.values()) else 1)
