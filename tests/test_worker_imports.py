"""What a gateway worker loads: each library a worker does not use at steady state is memory in every worker.

A module imported is resident for the process's life, once per worker (docs/scaling.md measures it). These
build the app the way a uvicorn worker does, in a fresh interpreter, and check that the libraries only other
processes or other configurations use stay out of it: aiohttp posts exports from the trace helper, LiteLLM
translates for deployments that are neither OpenAI- nor Anthropic-format, psycopg talks to DATABASE_URL.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

PROBE = """
import json, sys
from llm_scope.cli import app_factory
app_factory()
print(json.dumps(sorted({name.split(".")[0] for name in sys.modules})))
"""

PASSTHROUGH = """model_list:
  - model_name: gpt-4o-mini
    litellm_params: {model: openai/gpt-4o-mini, api_base: "http://127.0.0.1:9/v1", api_key: sk-upstream-probe}
  - model_name: claude
    litellm_params: {model: anthropic/claude-sonnet-4, api_base: "http://127.0.0.1:9", api_key: sk-ant-probe}
"""


def loaded_by_a_worker(tmp_path: Path, env: dict[str, str]) -> set[str]:
    config = tmp_path / "config.yaml"
    config.write_text(PASSTHROUGH)
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("LLM_SCOPE_", "LANGFUSE_", "OTEL_"))}
    clean.pop("DATABASE_URL", None)
    clean.update(LLM_SCOPE_CONFIG=str(config), LLM_SCOPE_DATA_DIR=str(tmp_path / "data"), **env)
    out = subprocess.run(
        [sys.executable, "-c", PROBE], env=clean, cwd=tmp_path, capture_output=True, text=True, check=True
    )
    return set(json.loads(out.stdout.splitlines()[-1]))


@pytest.mark.parametrize(
    "env",
    [
        {},
        {
            "LANGFUSE_PUBLIC_KEY": "pk-lf-probe",
            "LANGFUSE_SECRET_KEY": "sk-lf-probe",
            "LANGFUSE_HOST": "http://127.0.0.1:9",
        },
        {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:9"},
    ],
    ids=["store only", "langfuse export", "otel export"],
)
def test_a_passthrough_worker_leaves_the_helpers_and_translators_libraries_unloaded(
    tmp_path: Path, env: dict[str, str]
) -> None:
    loaded = loaded_by_a_worker(tmp_path, env)
    assert "llm_scope" in loaded and "starlette" in loaded  # the probe did build the app
    assert not loaded & {"aiohttp", "litellm", "psycopg", "openai", "tiktoken"}
