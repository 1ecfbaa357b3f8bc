"""How many of LiteLLM's own shipped example configs llm-scope starts, in a bare shell and with their variables set.

The configs are the YAML files LiteLLM's wheel ships under `litellm/proxy/example_config_yaml/` plus
`litellm/proxy/proxy_config.yaml`. For each: `llm-scope check-config` (exit code, and with `--strict`) and
`llm-scope serve` (does /ready answer 200). "Variables set" gives every `os.environ/NAME` the file names a
dummy value (a URL for names with BASE/URL/HOST/ENDPOINT). Nothing leaves the machine.

    .venv/bin/python scripts/litellm_examples.py [--no-serve]
"""

from __future__ import annotations

import importlib.util
import re
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

BIN = Path(sys.executable).parent


def example_configs() -> list[Path]:
    spec = importlib.util.find_spec("litellm")  # located, not imported (importing it reaches for the network)
    assert spec is not None and spec.submodule_search_locations, "LiteLLM is not installed"
    root = Path(spec.submodule_search_locations[0]) / "proxy"
    return [*sorted((root / "example_config_yaml").glob("*.yaml")), root / "proxy_config.yaml"]


def environment(path: Path, set_variables: bool, home: str) -> dict[str, str]:
    env = {"PATH": f"{BIN}:/usr/bin:/bin", "HOME": home, "METRICS_PORT": "0"}
    if set_variables:
        for name in set(re.findall(r"os\.environ/([A-Za-z0-9_]+)", path.read_text())):
            env[name] = "http://127.0.0.1:9/v1" if re.search("BASE|URL|HOST|ENDPOINT", name) else "dummy-value-0123"
    return env


def starts(path: Path, env: dict[str, str], home: str) -> bool:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    args = [str(BIN / "llm-scope"), "serve", "--config", str(path), "--port", str(port), "--data-dir", home]
    proc = subprocess.Popen(args, env=env, cwd=home, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 40
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/ready", timeout=1) as answer:
                    return bool(answer.status == 200)
            except OSError:
                time.sleep(0.1)
        return False
    finally:
        proc.terminate()
        proc.wait(10)


def main() -> int:
    serve = "--no-serve" not in sys.argv
    configs = example_configs()
    with tempfile.TemporaryDirectory() as home:
        for set_variables in (False, True):
            label = "variables set" if set_variables else "bare shell"
            counts = {"check-config": 0, "check-config --strict": 0, "serve": 0}
            for path in configs:
                env = environment(path, set_variables, home)
                check = [str(BIN / "llm-scope"), "check-config", "--config", str(path)]
                plain = subprocess.run(check, env=env, cwd=home, capture_output=True).returncode
                strict = subprocess.run([*check, "--strict"], env=env, cwd=home, capture_output=True).returncode
                started = starts(path, env, home) if serve else None
                counts["check-config"] += plain == 0
                counts["check-config --strict"] += strict == 0
                counts["serve"] += bool(started)
                print(f"{label:14} {path.name:45} check-config={plain} strict={strict} serve={started}", flush=True)
            summary = ", ".join(f"{what} {n}/{len(configs)}" for what, n in counts.items())
            print(f"{label}: {summary}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
