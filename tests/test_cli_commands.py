"""`llm-scope traces` and `keys` as a user runs them: real subprocesses over a real local store."""

from __future__ import annotations

import json
import socket
import subprocess
import time
from pathlib import Path

import pytest

from llm_scope.tracing.store import Store
from llm_scope.types import CallRecord, Usage
from tests.test_cli import LLM_SCOPE, clean_env, run


def seed(data_dir: Path, count: int, start: float) -> list[str]:
    """Calls written with the store's own writer, one a second, oldest first; returns their trace ids."""
    data_dir.mkdir(parents=True, exist_ok=True)
    store = Store(data_dir / "llm-scope.db")
    records = [
        CallRecord(
            trace_id=f"{int(start) + i:032x}",
            route="chat_completion",
            start_time=start + i,
            end_time=start + i + 0.1,
            requested_model="mock-gpt",
            usage=Usage(input=10, output=5, total=15),
            input=[{"role": "user", "content": "x" * 400}],  # rows big enough to fill a pipe
        )
        for i in range(count)
    ]
    store.write(records, outbox=False, max_outbox=10)
    store.close()
    return [r.trace_id for r in records]


def test_follow_prints_the_last_n_then_only_new_calls(tmp_path: Path) -> None:
    data = tmp_path / "data"
    ids = seed(data, 25, time.time() - 30)
    proc = subprocess.Popen(
        [LLM_SCOPE, "traces", "-f", "-n", "2", "--json", "--data-dir", str(data)],
        cwd=tmp_path,
        env=clean_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        first = [json.loads(proc.stdout.readline())["trace_id"] for _ in range(2)]
        assert first == ids[-2:]
        (new,) = seed(data, 1, time.time())
        # Had the first poll re-printed older calls, one of those would come next instead.
        assert json.loads(proc.stdout.readline())["trace_id"] == new
    finally:
        proc.kill()
        proc.wait(10)


def test_json_into_a_closed_pipe_is_not_an_error(tmp_path: Path) -> None:
    data = tmp_path / "data"
    seed(data, 400, time.time() - 1000)
    with subprocess.Popen(
        [LLM_SCOPE, "traces", "--json", "-n", "400", "--data-dir", str(data)],
        cwd=tmp_path,
        env=clean_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    ) as proc:
        assert proc.stdout is not None and proc.stderr is not None
        proc.stdout.readline()
        proc.stdout.close()  # what `| head -1` does once it has its line
        errors = proc.stderr.read()
        assert proc.wait(30) == 0
    assert "BrokenPipeError" not in errors and "Traceback" not in errors


def test_keys_create_validates_as_the_admin_api_does(tmp_path: Path) -> None:
    for flag, value in (("--rpm", "-5"), ("--tpm", "-1"), ("--daily-budget", "-0.5")):
        proc = run([LLM_SCOPE, "keys", "create", "--owner", "x", flag, value], tmp_path)
        assert proc.returncode == 2, proc.stderr
        assert "expected a non-negative" in proc.stderr and "Traceback" not in proc.stderr
    assert not (tmp_path / "data" / "keys.db").exists()  # nothing was created


@pytest.mark.parametrize(
    "where",
    [
        ["--data-dir", "{d}", "keys", "list"],
        ["keys", "--data-dir", "{d}", "list"],
        ["keys", "list", "--data-dir", "{d}"],
        ["--data-dir={d}", "traces"],
        ["traces", "--data-dir", "{d}"],
    ],
)
def test_data_dir_is_accepted_before_or_after_the_command(tmp_path: Path, where: list[str]) -> None:
    data = tmp_path / "elsewhere"
    seed(data, 1, time.time())
    created = run([LLM_SCOPE, "keys", "create", "--owner", "dana", "--data-dir", str(data)], tmp_path)
    assert created.returncode == 0, created.stderr
    proc = run([LLM_SCOPE, *(w.format(d=data) for w in where)], tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert ("dana" if "keys" in where else "mock-gpt") in proc.stdout


def test_serve_help_describes_every_option(tmp_path: Path) -> None:
    text = run([LLM_SCOPE, "serve", "--help"], tmp_path).stdout
    for option, words in (
        ("--host", "interface to bind"),
        ("--port", "port for the API"),
        ("--config", "YAML model list"),
        ("--data-dir", "trace store"),
        ("--workers", "worker processes"),
    ):
        assert option in text and words in " ".join(text.split()), option


def test_no_banner_when_the_port_is_taken(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        proc = run([LLM_SCOPE, "serve", "--port", str(port), "--data-dir", str(tmp_path / "d")], tmp_path)
    assert proc.returncode != 0
    assert "address already in use" in proc.stderr and "ready on" not in proc.stderr
