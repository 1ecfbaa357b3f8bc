"""Known secrets in, zero hits out: every log line, trace (local and Langfuse), error body and metric."""

from __future__ import annotations

import io
import json
import logging
import re
import sys
import time
from pathlib import Path

import httpx
import psycopg
import pytest

from llm_scope.logs import JsonFormatter
from tests.conftest import UPSTREAM_KEY, upstream_models
from tests.fakes.otlp_receiver import start_otlp_receiver
from tests.fakes.upstream import FakeUpstream
from tests.gateway_server import GatewayServer, make_settings, model_config

MASTER = "sk-master-secret-value-0123456789"
LANGFUSE_PK, LANGFUSE_SK = "pk-lf-secret-test-1234", "sk-lf-secret-test-5678"
ODD_KEY = "azure0hex0key0that0matches0no0known0pattern"  # a key no regex would recognise
FILE_PATH = re.compile(r"[\\/][\w.-]+\.(?:py|pyc|pyx|so)\b|site-packages|File \"")
DB_PASSWORD = "pg-secret-password-24680"


def _shared_tables(url: str, ids: list[str]) -> str:
    """Every row of every table in the shared database, once the calls have been shipped there."""
    deadline = time.monotonic() + 30
    with psycopg.connect(url, autocommit=True) as conn:
        while conn.execute(
            "SELECT COUNT(DISTINCT trace_id) FROM traces WHERE trace_id = ANY(%s)", (ids,)
        ).fetchone() != (len(set(ids)),):
            assert time.monotonic() < deadline, "calls never reached PostgreSQL"
            time.sleep(0.1)
        tables = [row[0] for row in conn.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")]
        assert {"traces", "scores", "virtual_keys", "key_spend"} <= set(tables)
        return "\n".join(repr(conn.execute(f"SELECT * FROM {table}".encode()).fetchall()) for table in tables)


@pytest.mark.parametrize("shared", [False, True], ids=["sqlite", "postgres"])
def test_no_secret_leaks_anywhere(
    tmp_path: Path, upstream: FakeUpstream, shared: bool, request: pytest.FixtureRequest
) -> None:
    database_url = None
    if shared:  # PostgreSQL's tables too (trust auth: the password is checked for leaks, not by the server)
        database_url = request.getfixturevalue("postgres_url").replace("postgres@", f"postgres:{DB_PASSWORD}@")
    receiver = start_otlp_receiver(credentials=(LANGFUSE_PK, LANGFUSE_SK))
    models = [
        *upstream_models(upstream),
        {
            "model_name": "odd",
            "litellm_params": {"model": "openai/gpt-4o-mini", "api_base": upstream.openai_base_url, "api_key": ODD_KEY},
        },
    ]
    settings = make_settings(
        tmp_path,
        master_key=MASTER,
        langfuse_public_key=LANGFUSE_PK,
        langfuse_secret_key=LANGFUSE_SK,
        langfuse_host=receiver.url,
        debug_mode=True,
        database_url=database_url,
    )
    captured = io.StringIO()
    handler = logging.StreamHandler(captured)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    old_level = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    error_bodies: list[str] = []
    try:
        with GatewayServer(settings, model_config=model_config(models)) as gw:
            auth = {"Authorization": f"Bearer {MASTER}"}
            virtual = httpx.post(gw.url + "/admin/keys", headers=auth, json={"owner": "eve"}).json()["key"]
            secrets = [MASTER, UPSTREAM_KEY, LANGFUSE_SK, ODD_KEY, virtual, DB_PASSWORD]
            with httpx.Client(base_url=gw.url, timeout=30) as client:
                prompts = [
                    f"my keys are {UPSTREAM_KEY} and {virtual} and {ODD_KEY}",
                    "FAKE_ERROR_401",
                    "FAKE_ERROR_500",
                    "FAKE_DROP",
                ]
                ids = []
                for key in (MASTER, virtual):
                    for model in ("gpt-fake", "odd", "claude-fake"):
                        for i, prompt in enumerate(prompts):
                            route = "/v1/messages" if model == "claude-fake" else "/v1/chat/completions"
                            r = client.post(
                                route,
                                headers={"Authorization": f"Bearer {key}"},
                                json={
                                    "model": model,
                                    "max_tokens": 20,
                                    "stream": i == 3,
                                    "metadata": {"note": prompts[0]},
                                    "messages": [{"role": "user", "content": prompt}],
                                },
                            )
                            ids.append(r.headers["x-trace-id"])
                            if r.status_code >= 400:
                                error_bodies.append(r.text)
                # Through LiteLLM (cross-format), where its failures carry tracebacks and install paths:
                # broken upstream framing, stream and not, and a failure inside LiteLLM itself (Responses).
                for route, model in (("/v1/chat/completions", "claude-fake"), ("/v1/messages", "gpt-fake")):
                    for stream in (False, True):
                        r = client.post(
                            route,
                            headers={"Authorization": f"Bearer {virtual}"},
                            json={
                                "model": model,
                                "max_tokens": 20,
                                "stream": stream,
                                "messages": [{"role": "user", "content": "FAKE_GARBAGE"}],
                            },
                        )
                        assert r.status_code >= 400 or "error" in r.text
                        error_bodies.append(r.text)
                failing_inside = {"model": "claude-fake", "input": [{"role": "user", "content": 5}]}  # a LiteLLM bug
                r = client.post("/v1/responses", headers=auth, json=failing_inside)
                assert r.status_code == 502
                error_bodies.append(r.text)
                for bad in ("wrong-" + MASTER, virtual + "x"):
                    error_bodies.append(
                        client.post(
                            "/v1/chat/completions",
                            headers={"Authorization": f"Bearer {bad}"},
                            json={"model": "gpt-fake", "messages": []},
                        ).text
                    )
                traces = client.get("/api/traces", headers=auth, params={"limit": 500}).text
                details = [client.get(f"/api/traces/{i}", headers=auth).text for i in ids]
                metrics = client.get("/metrics", headers=auth).text
                keys_listing = client.get("/admin/keys", headers=auth).text
            receiver.wait_for_spans(len(ids), timeout=20)  # one span per call
            shared_rows = _shared_tables(database_url, ids) if database_url else ""
        spans = json.dumps(receiver.spans(), default=str)
        stored = b"".join(p.read_bytes() for p in (tmp_path / "data").glob("*.db*"))
    finally:
        root.removeHandler(handler)
        root.setLevel(old_level)
        receiver.stop()
    assert len(error_bodies) >= 10
    places = {
        "logs": captured.getvalue(),
        "errors": "\n".join(error_bodies),
        "traces": traces,
        "trace details": "\n".join(details),
        "metrics": metrics,
        "key listing": keys_listing,
        "langfuse spans": spans,
        "sqlite files": stored.decode("utf-8", "replace"),
        "postgres tables": shared_rows,
    }
    leaks = [(where, secret[:12]) for where, text in places.items() for secret in secrets if secret in text]
    assert leaks == []
    # Nor how the gateway is built: no Python traceback, no file path, no install location.
    assert "Traceback" not in places["errors"]
    assert FILE_PATH.search(places["errors"]) is None, FILE_PATH.search(places["errors"])
    assert sys.prefix not in places["errors"] and str(Path(__file__).parents[1]) not in places["errors"]
    assert "[REDACTED]" in places["trace details"] and "[REDACTED]" in places["logs"]
