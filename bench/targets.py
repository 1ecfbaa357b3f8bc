"""What the benchmark runs: the mock upstream, the OTLP sink, llm-scope and LiteLLM Proxy.

LiteLLM Proxy is installed from the package registry into its own virtualenv (bench/.venvs/), created on
first use, so the project never depends on it. Same for the chart and profiling tools.
"""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

from bench.procs import Service, free_port

ROOT = Path(__file__).resolve().parent.parent
VENVS = ROOT / "bench" / ".venvs"
LITELLM_VENV = VENVS / "litellm-proxy"
TOOLS_VENV = VENVS / "tools"
MODEL = "bench-model"
# The numbers are from 1.109; newer LiteLLM releases may not resolve on a given index (1.106.3+
# need a newer certifi than some mirrors serve), so fall back to the project's own pin.
LITELLM_VERSIONS = ("1.109.1", "1.106.2")


def project_python() -> str:
    venv = ROOT / ".venv" / "bin" / "python"
    return str(venv) if venv.exists() else sys.executable


# llm-scope's tuning knobs a caller may set for a run (`LLM_SCOPE_HELPER_SCHED=idle python -m bench.run ...`):
# they reach llm-scope only; every other gateway setting is dropped so a shell's own config cannot leak in.
TUNING = ("LLM_SCOPE_HELPER_SCHED", "LLM_SCOPE_HELPER_NICE", "LLM_SCOPE_QUEUE_MB", "LLM_SCOPE_MALLOC_TRIM_S")


def tuning() -> dict[str, str]:
    """The tuning knobs set in this process's environment, as llm-scope will get them."""
    return {k: os.environ[k] for k in TUNING if os.environ.get(k)}


def _clean_env() -> dict[str, str]:
    """The caller's environment minus anything that would configure a gateway or point it elsewhere."""
    drop = ("LLM_SCOPE_", "LANGFUSE_", "LITELLM_", "OPENAI_", "ANTHROPIC_", "AZURE_", "PROXY_", "METRICS_")
    env = {k: v for k, v in os.environ.items() if not k.startswith(drop)}
    env.pop("DATABASE_URL", None)
    env["PYTHONUNBUFFERED"] = "1"
    env["PYTHONPATH"] = str(ROOT)
    return env


@dataclass
class Target:
    name: str  # "direct", "passthrough", "llm-scope", "llm-scope-w2", "litellm"
    url: str
    api_key: str = "sk-bench"
    service: Service | None = None
    info: dict[str, object] = field(default_factory=dict)


def start_helper(module: str, port: int, workdir: Path, *extra: str) -> Service:
    svc = Service(
        module.rsplit(".", 1)[-1],
        [project_python(), "-m", module, "--port", str(port), *extra],
        port=port,
        ready_path="/health",
        env=_clean_env(),
        cwd=ROOT,
        log=workdir / f"{module.rsplit('.', 1)[-1]}.log",
    )
    svc.start(timeout=20)
    return svc


def _model_yaml(mock_port: int) -> str:
    return (
        "model_list:\n"
        f"  - model_name: {MODEL}\n"
        "    litellm_params:\n"
        f"      model: openai/{MODEL}\n"
        f"      api_base: http://127.0.0.1:{mock_port}/v1\n"
        "      api_key: sk-upstream-bench\n"
    )


def llm_scope_service(
    workdir: Path, mock_port: int, otlp_port: int, workers: int, tag: str
) -> tuple[Service, str, int]:
    """llm-scope with everything on: local store, Langfuse export (to the sink), metrics, a master key."""
    home = workdir / tag
    data = home / "data"
    data.mkdir(parents=True, exist_ok=True)
    config = home / "config.yaml"
    config.write_text(_model_yaml(mock_port))
    key = "sk-bench-" + secrets.token_hex(16)
    port = free_port()
    metrics_port = free_port()  # with several workers the metrics are served from their own port
    env = _clean_env()
    env.update(
        LLM_SCOPE_MASTER_KEY=key,
        LANGFUSE_PUBLIC_KEY="pk-lf-bench",
        LANGFUSE_SECRET_KEY="sk-lf-bench-" + secrets.token_hex(8),
        LANGFUSE_HOST=f"http://127.0.0.1:{otlp_port}",
        METRICS_PORT=str(metrics_port),
    )
    env.update(tuning())
    argv = [
        project_python(), "-m", "llm_scope", "serve", "--host", "127.0.0.1", "--port", str(port),
        "--config", str(config), "--data-dir", str(data), "--workers", str(workers),
    ]  # fmt: skip
    svc = Service(tag, argv, port=port, ready_path="/ready", env=env, cwd=home, log=home / "server.log")
    return svc, key, metrics_port


def passthrough_service(workdir: Path, mock_port: int) -> Service:
    """The floor: uvicorn and llm-scope's upstream client with nothing between them (bench/passthrough.py)."""
    home = workdir / "passthrough"
    home.mkdir(parents=True, exist_ok=True)
    port = free_port()
    argv = [
        project_python(), "-m", "bench.passthrough", "--port", str(port),
        "--upstream", f"http://127.0.0.1:{mock_port}/v1/chat/completions",
    ]  # fmt: skip
    return Service(
        "passthrough", argv, port=port, ready_path="/ready", env=_clean_env(), cwd=ROOT, log=home / "server.log"
    )


def litellm_service(workdir: Path, mock_port: int) -> tuple[Service, str]:
    """LiteLLM Proxy, one worker, no database, telemetry off, the same model at the same mock."""
    home = workdir / "litellm"
    home.mkdir(parents=True, exist_ok=True)
    config = home / "config.yaml"
    config.write_text(_model_yaml(mock_port))
    key = "sk-bench-" + secrets.token_hex(16)
    port = free_port()
    env = _clean_env()
    env.update(
        LITELLM_MASTER_KEY=key,  # it refuses to start without one
        LITELLM_TELEMETRY="False",
        LITELLM_LOCAL_MODEL_COST_MAP="True",  # no fetch of the price table at start-up
    )
    env.pop("PYTHONPATH", None)
    argv = [
        str(LITELLM_VENV / "bin" / "litellm"), "--config", str(config), "--host", "127.0.0.1",
        "--port", str(port), "--num_workers", "1",
    ]  # fmt: skip
    svc = Service(
        "litellm", argv, port=port, ready_path="/health/readiness", env=env, cwd=home, log=home / "server.log"
    )
    return svc, key


def _venv_version(venv: Path, package: str) -> str | None:
    python = venv / "bin" / "python"
    if not python.exists():
        return None
    out = subprocess.run(
        [str(python), "-c", f"import importlib.metadata as m; print(m.version({package!r}))"],
        capture_output=True,
        text=True,
    )
    return out.stdout.strip() if out.returncode == 0 else None


def ensure_litellm(versions: tuple[str, ...] = LITELLM_VERSIONS, log: Path | None = None) -> tuple[str, list[str]]:
    """A venv with `litellm[proxy]` at the first of `versions` that installs; returns it and the failures."""
    installed = _venv_version(LITELLM_VENV, "litellm")
    if installed and installed in versions and (LITELLM_VENV / "bin" / "litellm").exists():
        notes = []
        for v in versions:
            if v == installed:
                break
            notes.append(f"litellm[proxy]=={v} did not install earlier (see bench/.venvs/litellm-install.log)")
        return installed, notes
    VENVS.mkdir(parents=True, exist_ok=True)
    if not (LITELLM_VENV / "bin" / "python").exists():
        subprocess.run([sys.executable, "-m", "venv", str(LITELLM_VENV)], check=True)
    log_path = log or VENVS / "litellm-install.log"
    failures = []
    for version in versions:
        print(f"bench: installing litellm[proxy]=={version} into {LITELLM_VENV} ...", flush=True)
        with log_path.open("a") as out:
            rc = subprocess.run(
                [str(LITELLM_VENV / "bin" / "pip"), "install", "-q", f"litellm[proxy]=={version}"],
                stdout=out,
                stderr=subprocess.STDOUT,
            ).returncode
        if rc == 0:
            return version, failures
        reason = _last_error(log_path)
        failures.append(f"litellm[proxy]=={version} did not install: {reason}")
        print(f"bench: {failures[-1]}", flush=True)
    raise RuntimeError("no LiteLLM Proxy version could be installed: " + "; ".join(failures))


def _last_error(log: Path) -> str:
    lines = [ln for ln in log.read_text(errors="replace").splitlines() if ln.startswith("ERROR")]
    if not lines:
        return "pip failed"
    text = lines[-1]
    if "(from versions:" in text:
        text = text.split("(from versions:")[0].strip()
    for line in reversed(lines):
        if "satisfies the requirement" in line:
            return line.split("(from versions:")[0].removeprefix("ERROR: ").strip()
    return text.removeprefix("ERROR: ")[:200]


def tools_python(install: bool) -> str | None:
    """A Python that can import matplotlib: this one, or bench/.venvs/tools (created if `install`)."""
    try:
        import matplotlib  # noqa: F401

        return sys.executable
    except ImportError:
        pass
    python = TOOLS_VENV / "bin" / "python"
    if _venv_version(TOOLS_VENV, "matplotlib"):
        return str(python)
    if not install:
        return None
    print(f"bench: installing matplotlib into {TOOLS_VENV} for the chart ...", flush=True)
    if not python.exists():
        subprocess.run([sys.executable, "-m", "venv", str(TOOLS_VENV)], check=True)
    rc = subprocess.run(
        [str(TOOLS_VENV / "bin" / "pip"), "install", "-q", "matplotlib", "py-spy"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    ).returncode
    return str(python) if rc == 0 else None


def version_of(package: str, python: str) -> str:
    out = subprocess.run(
        [python, "-c", f"import importlib.metadata as m; print(m.version({package!r}))"], capture_output=True, text=True
    )
    return out.stdout.strip() or "?"
