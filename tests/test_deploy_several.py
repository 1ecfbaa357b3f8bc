"""The multi-instance Compose profile, parsed: replicas that share PostgreSQL and Redis, each with its own outbox."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

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
