"""The architecture, held by a test: imports point one way, and each third-party library lives in one module.

cli → app → http → gateway → {providers, tracing, metrics, accounting} → {config, settings, errors, types}
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "llm_scope"

# Which of our own layers each layer may import (by top-level module or subpackage name).
ALLOWED: dict[str, set[str]] = {
    "types": set(),
    "jsoncodec": set(),
    "errors": set(),
    "settings": set(),
    "postgres": set(),
    "config": {"settings", "types"},
    "accounting": {"types", "accounting"},
    "logs": {"types"},
    "metrics": {"types", "errors"},
    "providers": {"providers", "config", "errors", "types", "jsoncodec"},
    # logs: the helper process sets up its own; postgres: the shared store it ships to
    "tracing": {"tracing", "accounting", "logs", "types", "jsoncodec", "postgres"},
    "gateway": {"gateway", "providers", "accounting", "config", "errors", "types", "jsoncodec"},
    "access": {"access", "errors", "types", "settings", "postgres"},
    "http": {
        "http",
        "gateway",
        "tracing",
        "providers",
        "errors",
        "metrics",
        "access",
        "accounting",
        "types",
        "jsoncodec",
        "postgres",
    },
    "app": {
        "http",
        "gateway",
        "providers",
        "tracing",
        "metrics",
        "accounting",
        "config",
        "settings",
        "logs",
        "types",
        "errors",
        "access",
        "postgres",
    },
    "cli": {"app", "config", "settings", "metrics", "tracing", "logs", "access"},
    "__main__": {"cli"},
}

# Third-party libraries confined to one module each (module path relative to the package).
CONFINED = {
    "litellm": {"providers/litellm_adapter.py"},
    "prometheus_client": {"metrics.py"},
    # Test-only: tracing/otlp.py writes the OTLP wire format itself, and the tests decode it with these.
    "opentelemetry": set(),
    "google": set(),
    "uvicorn": {"cli.py"},
    "httptools": {"providers/upstream_http.py"},
    "aiohttp": {"tracing/langfuse.py"},
    "yaml": {"config.py"},
    "pydantic_settings": {"settings.py"},
    "sqlite3": {"tracing/store.py", "access/keys.py"},
    "redis": {"access/shared_state.py"},
    "psycopg": {"postgres.py"},
    "orjson": {"jsoncodec.py"},
}


def _layer(path: Path) -> str:
    rel = path.relative_to(PACKAGE)
    return rel.parts[0].removesuffix(".py") if len(rel.parts) > 1 else rel.stem


def _imports(path: Path) -> tuple[set[str], set[str]]:
    """(our layers imported, third-party top-level packages imported)."""
    ours: set[str] = set()
    theirs: set[str] = set()
    rel_parts = path.relative_to(PACKAGE).parts
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = list(rel_parts[:-1])[: len(rel_parts) - node.level]
                target = [*base, *(node.module.split(".") if node.module else [])]
                if target:
                    ours.add(target[0])
                else:  # `from . import x` at the package root
                    ours.update(alias.name for alias in node.names)
            elif node.module and node.module.startswith("llm_scope"):
                parts = node.module.split(".")
                ours.add(parts[1] if len(parts) > 1 else parts[0])
            elif node.module:
                theirs.add(node.module.split(".")[0])
        elif isinstance(node, ast.Import):
            for alias in node.names:
                theirs.add(alias.name.split(".")[0])
    return ours - {"__init__"}, theirs


def test_imports_point_one_way() -> None:
    problems = []
    for path in sorted(PACKAGE.rglob("*.py")):
        layer = _layer(path)
        if layer == "__init__":
            continue
        ours, _ = _imports(path)
        allowed = ALLOWED.get(layer, set()) | {layer}
        for target in sorted(ours - allowed - {"__version__"}):
            problems.append(f"{path.relative_to(PACKAGE)} ({layer}) imports {target}")
    assert problems == []


def test_third_party_libraries_stay_in_their_module() -> None:
    problems = []
    for path in sorted(PACKAGE.rglob("*.py")):
        _, theirs = _imports(path)
        rel = str(path.relative_to(PACKAGE))
        for library, homes in CONFINED.items():
            if library in theirs and rel not in homes:
                problems.append(f"{rel} imports {library} (confined to {sorted(homes)})")
    assert problems == []


def test_modules_stay_small() -> None:
    big = {
        str(p.relative_to(PACKAGE)): n for p in PACKAGE.rglob("*.py") if (n := len(p.read_text().splitlines())) > 500
    }
    assert big == {}
