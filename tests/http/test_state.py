"""The typed app state: one frozen object that the entry layer, every route and the tests read alike."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import httpx
import pytest

from llm_scope.app import create_app
from llm_scope.http.state import AppState
from tests.gateway_server import GatewayServer, make_settings, model_config


def test_the_state_is_typed_and_frozen(tmp_path: Path) -> None:
    app = create_app(make_settings(tmp_path), model_config=model_config([]))
    assert isinstance(app.state, AppState)
    with pytest.raises(dataclasses.FrozenInstanceError):
        app.state.pipeline = None  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        app.state.anything_else = 1  # type: ignore[attr-defined]
    # Built, not started: not ready until the lifespan has run.
    assert app.state.lifecycle.started is False
    assert "starting up" in app.state.readiness()


def test_routes_read_the_state_the_app_holds(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, master_key="sk-master-state-test")
    with GatewayServer(settings, model_config=model_config([])) as gw:
        headers = {"authorization": "Bearer sk-master-state-test"}
        ready = httpx.get(f"{gw.url}/ready", timeout=10)
        assert gw.app.state.lifecycle.started is True
        assert ready.status_code == 200 and ready.json()["status"] == "ready"
        models = httpx.get(f"{gw.url}/v1/models", headers=headers, timeout=10).json()["data"]
        assert [m["id"] for m in models] == [m["id"] for m in gw.app.state.model_list()]
        assert models  # the built-in mock models, at least
        # A key made through the state's store is the one the admin route lists.
        key, _ = gw.app.state.keys.create("state-test")
        listed = httpx.get(f"{gw.url}/admin/keys", headers=headers, timeout=10).json()
        assert key.id in str(listed)
