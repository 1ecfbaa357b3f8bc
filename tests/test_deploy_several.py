"""The multi-instance Compose profile, parsed: replicas that share PostgreSQL and Redis, each with its own outbox."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from llm_scope.model_config import parse_config

COMPOSE = Path(__file__).resolve().parents[1] / "docker" / "docker-compose.yml"


def test_several_profile_runs_two_replicas_on_one_postgres_and_redis() -> None:
    services: dict[str, Any] = yaml.safe_load(COMPOSE.read_text())["services"]
    several = {name for name, service in services.items() if "several" in service.get("profiles", [])}
    assert several == {"postgres", "redis", "gateway-a", "gateway-b"}
    assert "profiles" not in services["llm-scope"]  # the single instance stays the default
    a, b = services["gateway-a"], services["gateway-b"]
    for replica in (a, b):
        env = replica["environment"]
        assert env["DATABASE_URL"].startswith("postgresql://") and "@postgres:5432/" in env["DATABASE_URL"]
        assert env["REDIS_URL"] == "redis://redis:6379/0"
        assert replica["depends_on"]["postgres"]["condition"] == "service_healthy"
        assert "/ready" in " ".join(replica["healthcheck"]["test"])
    assert a["environment"] == b["environment"]
    assert a["ports"] != b["ports"]
    assert a["volumes"] != b["volumes"]  # each replica's local store is its own durable outbox


def _manifests() -> dict[str, dict[str, Any]]:
    docs = [d for p in sorted(KUBERNETES.glob("*.yaml")) for d in yaml.safe_load_all(p.read_text()) if d]
    return {d["kind"]: d for d in docs}


KUBERNETES = COMPOSE.parents[1] / "deploy" / "kubernetes"


def test_kubernetes_manifests_run_replicas_that_share_postgres_each_with_its_own_outbox() -> None:
    kinds = _manifests()
    assert set(kinds) == {"StatefulSet", "Service", "ConfigMap", "Secret"}
    sts, secret, config = kinds["StatefulSet"], kinds["Secret"], kinds["ConfigMap"]
    assert sts["spec"]["replicas"] >= 2
    pod = sts["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert container["readinessProbe"]["httpGet"]["path"] == "/ready"
    assert container["livenessProbe"]["httpGet"]["path"] == "/health"
    env = {e["name"]: e["value"] for e in container["env"]}
    assert env["LLM_SCOPE_DATA_DIR"] == "/data" and env["PROXY_HOST"] == "0.0.0.0"
    sources = {next(iter(s.values()))["name"] for s in container["envFrom"]}
    assert sources == {secret["metadata"]["name"], config["metadata"]["name"]}
    assert secret["stringData"]["DATABASE_URL"].startswith("postgresql://")
    assert "LLM_SCOPE_MASTER_KEY" in secret["stringData"]  # required: the pods listen beyond loopback
    assert [c["metadata"]["name"] for c in sts["spec"]["volumeClaimTemplates"]] == ["data"]
    mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    assert mounts == {"data": "/data", "config": "/app/config"}
    selector = kinds["Service"]["spec"]["selector"]
    assert selector.items() <= sts["spec"]["template"]["metadata"]["labels"].items()


def test_kubernetes_model_list_is_a_valid_config() -> None:
    text = _manifests()["ConfigMap"]["data"]["config.yaml"]
    config = parse_config(yaml.safe_load(text), {"OPENAI_API_KEY": "sk-x", "ANTHROPIC_API_KEY": "sk-y"}, source="k8s")
    assert {"gpt-4o-mini", "claude-sonnet-4-5"} <= {d.model_name for d in config.deployments}
