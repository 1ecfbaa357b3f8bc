"""The command line, run as a user runs it: real subprocesses with a clean environment, and the real
gateway process driven by the curl regression suite (tests/test_curl.sh)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import yaml

from llm_scope import __version__
from llm_scope.cli import check_bind, is_loopback
from llm_scope.settings import load_settings
from tests.conftest import UPSTREAM_KEY
from tests.fakes.serving import free_port
from tests.fakes.upstream import FakeUpstream

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
LLM_SCOPE = str(BIN / "llm-scope")


def clean_env(**extra: str) -> dict[str, str]:
    """Only PATH and HOME: no provider keys, no master key, nothing from the developer's shell."""
    env = {"PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}", "HOME": os.environ.get("HOME", "/tmp")}
    env.update(extra)
    return env


def run(args: list[str], cwd: Path, timeout: float = 60, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, cwd=cwd, env=clean_env(**env), capture_output=True, text=True, timeout=timeout)


# --- binding beyond loopback needs a master key ------------------------------------------------------------


def test_serve_on_all_interfaces_without_master_key_refuses(tmp_path: Path) -> None:
    proc = run([LLM_SCOPE, "serve", "--host", "0.0.0.0", "--port", str(free_port())], tmp_path)
    assert proc.returncode != 0
    assert "refusing to listen on 0.0.0.0" in proc.stderr
    assert "LLM_SCOPE_MASTER_KEY" in proc.stderr and "127.0.0.1" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert "Uvicorn running" not in proc.stderr  # stopped before anything listened


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True),
        ("127.0.0.53", True),
        ("localhost", True),
        ("::1", True),
        ("0.0.0.0", False),
        ("::", False),
        ("192.168.1.10", False),
        ("10.0.0.1", False),
        ("gateway.example.com", False),
    ],
)
def test_check_bind(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback
    check_bind(load_settings({"PROXY_HOST": host, "LLM_SCOPE_MASTER_KEY": "mk-0123456789"}, env_file=None))
    keyless = load_settings({"PROXY_HOST": host}, env_file=None)
    if loopback:
        check_bind(keyless)
    else:
        with pytest.raises(SystemExit) as info:
            check_bind(keyless)
        assert f"refusing to listen on {host}" in str(info.value.code)


# --- check-config, version, help ---------------------------------------------------------------------------


def test_check_config_names_file_entry_and_field(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        yaml.safe_dump(
            {
                "model_list": [
                    {"model_name": "ok", "litellm_params": {"model": "openai/gpt-4o-mini"}},
                    {"model_name": "broken", "litellm_params": {"api_key": "x"}},
                ]
            }
        )
    )
    proc = run([LLM_SCOPE, "check-config", "--config", "bad.yaml"], tmp_path)
    assert proc.returncode == 2, proc.stderr
    assert "bad.yaml" in proc.stderr and "model_list[1]" in proc.stderr and "(broken)" in proc.stderr
    assert "litellm_params.model" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_check_config_missing_env_var(tmp_path: Path) -> None:
    cfg = tmp_path / "env.yaml"
    cfg.write_text(
        "model_list:\n  - model_name: gpt\n    litellm_params:\n"
        "      model: openai/gpt-4o\n      api_key: os.environ/MY_OPENAI_KEY\n"
    )
    proc = run([LLM_SCOPE, "check-config", "--config", str(cfg)], tmp_path)
    # a warning, as the gateway starts with that deployment unavailable; --strict makes it fail
    assert proc.returncode == 0 and "MY_OPENAI_KEY" in proc.stderr and "litellm_params.api_key" in proc.stderr
    assert run([LLM_SCOPE, "check-config", "--strict", "--config", str(cfg)], tmp_path).returncode == 1
    proc = run([LLM_SCOPE, "check-config", "--config", str(cfg)], tmp_path, MY_OPENAI_KEY="sk-set-now-1234567")
    assert proc.returncode == 0, proc.stderr
    routes = proc.stdout.splitlines()
    assert any(line.split()[:2] == ["gpt", "openai/gpt-4o"] for line in routes)
    assert any(line.split()[:1] == ["mock-gpt"] for line in routes)
    assert "sk-set-now-1234567" not in proc.stdout  # routes are printed, keys are not


def test_serve_with_invalid_config_exits_2(tmp_path: Path) -> None:
    (tmp_path / "bad.yaml").write_text("model_list:\n  - model_name: m\n    litellm_params: not-a-mapping\n")
    proc = run([LLM_SCOPE, "serve", "--config", "bad.yaml", "--port", str(free_port())], tmp_path)
    assert proc.returncode == 2
    assert "bad.yaml" in proc.stderr and "model_list[0]" in proc.stderr and "litellm_params" in proc.stderr


def test_python_m_version(tmp_path: Path) -> None:
    proc = run([sys.executable, "-m", "llm_scope", "--version"], tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == f"llm-scope {__version__}"


def test_main_py_help(tmp_path: Path) -> None:
    proc = run([sys.executable, str(REPO / "main.py"), "--help"], tmp_path)
    assert proc.returncode == 0, proc.stderr
    for flag in ("--host", "--port", "--config", "--data-dir", "--workers"):
        assert flag in proc.stdout


def test_top_level_help_lists_commands(tmp_path: Path) -> None:
    proc = run([LLM_SCOPE, "--help"], tmp_path)
    assert proc.returncode == 0
    for command in ("serve", "check-config"):
        assert command in proc.stdout


# --- the real gateway process, driven by the curl suite -----------------------------------------------------


@pytest.fixture
def gateway_process(tmp_path: Path, upstream: FakeUpstream) -> Iterator[tuple[str, subprocess.Popen[str]]]:
    config = tmp_path / "config.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "model_list": [
                    {
                        "model_name": "gpt-fake",
                        "litellm_params": {
                            "model": "openai/gpt-4o-mini",
                            "api_base": upstream.openai_base_url,
                            "api_key": "os.environ/FAKE_UPSTREAM_KEY",
                        },
                    }
                ]
            }
        )
    )
    port = free_port()
    log = (tmp_path / "gateway.log").open("w+")
    proc = subprocess.Popen(
        [LLM_SCOPE, "serve", "--port", str(port), "--data-dir", str(tmp_path / "data"), "--config", str(config)],
        cwd=tmp_path,
        env=clean_env(FAKE_UPSTREAM_KEY=UPSTREAM_KEY),
        stdout=log,
        stderr=subprocess.STDOUT,
        text=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            assert proc.poll() is None, f"gateway exited early:\n{(tmp_path / 'gateway.log').read_text()}"
            try:
                if httpx.get(url + "/ready", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "gateway not ready after 30 s"
            time.sleep(0.05)
        yield url, proc
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)
        log.close()


def test_curl_suite_against_the_real_gateway_then_sigterm(
    tmp_path: Path, upstream: FakeUpstream, gateway_process: tuple[str, subprocess.Popen[str]]
) -> None:
    url, proc = gateway_process
    upstream.reset()
    suite = subprocess.run(
        ["bash", str(REPO / "tests" / "test_curl.sh"), url],
        cwd=tmp_path,
        env=clean_env(PYTHON=sys.executable),
        capture_output=True,
        text=True,
        timeout=120,
    )
    report = suite.stdout + suite.stderr + "\n--- gateway log ---\n" + (tmp_path / "gateway.log").read_text()
    assert suite.returncode == 0, report
    last = suite.stdout.strip().splitlines()[-1]
    assert last.endswith(" passed, 0 failed") and int(last.split()[0]) >= 15, report
    assert "FAIL" not in suite.stdout and "SKIP" not in suite.stdout, report  # gpt-fake was exercised too

    # the passthrough really reached the fake upstream, with the key resolved from os.environ/
    sent = [r for r in upstream.requests if r.path == "/v1/chat/completions"]
    assert len(sent) >= 2 and {bool(r.json.get("stream")) for r in sent} == {True, False}
    assert all(r.headers["authorization"] == f"Bearer {UPSTREAM_KEY}" for r in sent)
    assert all(r.json["model"] == "gpt-4o-mini" for r in sent)

    started = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    code = proc.wait(timeout=10)
    took = time.monotonic() - started
    output = (tmp_path / "gateway.log").read_text()
    # uvicorn re-raises the signal it handled after a graceful shutdown, so -SIGTERM is a clean exit too
    assert code in (0, -signal.SIGTERM), output
    assert took < 10
    assert "Application shutdown complete" in output, output
    # The banner came after the bind, and says where things are and what is on.
    assert output.index("Uvicorn running on") < output.index(f"ready on {url}"), output
    for line in (f"dashboard:          {url}/ui", "models to try:      gpt-fake, mock-gpt", "master key:         off"):
        assert line in output, output
    assert "Langfuse export:    off" in output and f"{tmp_path / 'data' / 'llm-scope.db'}" in output, output
    assert "Traceback" not in output and "ERROR" not in output, output
    assert UPSTREAM_KEY not in output  # the key never reaches the logs


def test_dashboard_cookie_is_secure_behind_a_tls_proxy_on_loopback(tmp_path: Path) -> None:
    """`llm-scope serve` trusts X-Forwarded-Proto from loopback (docs/DEPLOYMENT.md), so the cookie gets Secure."""
    from tests.gateway_server import spawn_gateway

    key = "sk-master-forwarded-proto-test"
    proc, url = spawn_gateway(tmp_path, [], env={"LLM_SCOPE_MASTER_KEY": key})
    try:
        behind_tls = httpx.get(f"{url}/ui", params={"key": key}, headers={"X-Forwarded-Proto": "https"})
        plain = httpx.get(f"{url}/ui", params={"key": key})
    finally:
        proc.terminate()
        proc.wait(10)
    assert behind_tls.status_code == plain.status_code == 303
    assert "secure" in behind_tls.headers["set-cookie"].lower()
    assert "secure" not in plain.headers["set-cookie"].lower()
