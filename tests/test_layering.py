"""The architecture, held by a test: imports point one way, and each third-party library lives in one module.

cli → app → http → gateway → {providers, tracing, metrics, accounting} → {model_config, settings, errors, types}

`apis` (one module per API family, and their table) sits under http, gateway and providers, which all read it.
"""

from __future__ import annotations

import ast
from collections.abc import Iterable
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "llm_scope"
# Where the environment may be read: settings.py reads it for everyone, cli.py hands --workers to uvicorn.
# The others are there for a library that reads the variable itself, so we must see it (and set it) too.
ENVIRON_READERS = {
    "settings.py": "the one reader of settings",
    "cli.py": "passes settings to uvicorn's worker processes",
    "metrics/serving.py": "prometheus_client reads PROMETHEUS_MULTIPROC_DIR itself; metrics must agree with it",
    "providers/litellm_adapter.py": "LiteLLM reads LITELLM_LOCAL_MODEL_COST_MAP at import; set before importing",
    "tracing/memprobe.py": "a debug probe bench.session sets for the trace helper, which is handed no settings of it",
}

# Which of our own layers each layer may import (by top-level module or subpackage name).
ALLOWED: dict[str, set[str]] = {
    "types": set(),
    "jsoncodec": set(),
    "internals": set(),  # the fenced reaches into libraries' private parts
    "memtrim": set(),  # glibc's malloc_trim through ctypes, for app's worker
    "errors": set(),
    "settings": set(),
    "litellm_keys": set(),
    "config_sections": {"litellm_keys"},
    "postgres": set(),
    "retry_policy": set(),
    "model_config": {"settings", "types", "litellm_keys", "config_sections", "retry_policy"},
    "accounting": {"types", "accounting"},
    "logs": {"types"},
    # The API families: what each is, read by http, gateway and providers; no web framework, no gateway.
    "apis": {"apis", "accounting", "errors", "types", "jsoncodec"},
    "metrics": {"metrics", "types", "errors", "internals"},
    "providers": {"providers", "apis", "model_config", "errors", "types", "jsoncodec"},
    # logs: the helper process sets up its own; postgres: the shared store it ships to
    # apis: the exporters name a record's operation after its API family's row
    "tracing": {"tracing", "apis", "accounting", "logs", "types", "jsoncodec", "internals", "postgres", "memtrim"},
    "gateway": {"gateway", "apis", "providers", "accounting", "model_config", "errors", "types", "jsoncodec"},
    "access": {"access", "errors", "types", "settings", "postgres"},
    "http": {
        "http",
        "apis",
        "gateway",
        "tracing",
        "providers",
        "errors",
        "metrics",
        "access",
        "accounting",
        "settings",  # the typed app state (http/state.py) holds the effective Settings
        "types",
        "jsoncodec",
        "internals",
        "postgres",
    },
    "app": {
        "http",
        "apis",
        "gateway",
        "providers",
        "tracing",
        "metrics",
        "accounting",
        "model_config",
        "settings",
        "logs",
        "types",
        "errors",
        "access",
        "postgres",
        "parts",
        "memtrim",
    },
    # What the app is assembled from, built from settings alone (the key store for `llm-scope keys` too).
    "parts": {"access", "metrics", "model_config", "postgres", "providers", "settings", "tracing"},
    "store_commands": {"parts", "settings", "tracing", "access"},
    "cli": {"app", "model_config", "settings", "metrics", "tracing", "logs", "access", "store_commands", "internals"},
    "__main__": {"cli"},
}

# Third-party libraries confined to one module each (module path relative to the package; a path ending in
# "/" is a whole subpackage).
CONFINED = {
    "starlette": {"http/", "app.py"},
    "pydantic": {"settings.py"},
    "dotenv": {"settings.py"},
    "litellm": {"providers/litellm_adapter.py"},
    "prometheus_client": {"metrics/"},
    # Test-only: tracing/otlp.py writes the OTLP wire format itself, and the tests decode it with these.
    "opentelemetry": set(),
    "google": set(),
    "uvicorn": {"cli.py"},
    "httptools": {"providers/upstream_http.py"},
    "aiohttp": {"tracing/exporting.py"},
    "yaml": {"model_config.py"},
    "pydantic_settings": {"settings.py"},
    "sqlite3": {"tracing/store.py", "access/keys.py"},
    "redis": {"access/shared_state.py"},
    "psycopg": {"postgres.py"},
    "orjson": {"jsoncodec.py"},
    "ctypes": {"memtrim.py"},
}


def _layer(path: Path) -> str:
    rel = path.relative_to(PACKAGE)
    return rel.parts[0].removesuffix(".py") if len(rel.parts) > 1 else rel.stem


def _imports(path: Path, source: str | None = None) -> tuple[set[str], set[str]]:
    """(our layers imported, third-party top-level packages imported), counting `importlib.import_module("x")`
    and `__import__("x")` with a literal name as imports too."""
    ours: set[str] = set()
    theirs: set[str] = set()
    rel_parts = path.relative_to(PACKAGE).parts
    for node in ast.walk(ast.parse(path.read_text() if source is None else source)):
        if isinstance(node, ast.Call) and _dynamic_import(node):
            name = node.args[0].value  # type: ignore[attr-defined]
            if name.startswith("llm_scope."):
                ours.add(name.split(".")[1])
            elif not name.startswith("."):
                theirs.add(name.split(".")[0])
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


def _dynamic_import(node: ast.Call) -> bool:
    func = node.func
    named = (isinstance(func, ast.Attribute) and func.attr == "import_module") or (
        isinstance(func, ast.Name) and func.id in ("__import__", "import_module")
    )
    return named and bool(node.args) and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str)


def _reads_environ(source: str) -> bool:
    """`os.environ`, `os.getenv`, `environ` imported from os, or `os.putenv`: any of them."""
    for node in ast.walk(ast.parse(source)):
        attribute = isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == "os"
        if attribute and node.attr in ("environ", "getenv", "putenv", "environb"):  # type: ignore[attr-defined]
            return True
        imported = isinstance(node, ast.ImportFrom) and node.module == "os"
        if imported and any(a.name in ("environ", "getenv", "putenv") for a in node.names):  # type: ignore[attr-defined]
            return True
    return False


def _confined_problems(rel: str, theirs: Iterable[str]) -> list[str]:
    problems = []
    for library, homes in CONFINED.items():
        if library in theirs and not any(
            rel == home or (home.endswith("/") and rel.startswith(home)) for home in homes
        ):
            problems.append(f"{rel} imports {library} (confined to {sorted(homes)})")
    return problems


def _modules() -> list[Path]:
    return sorted(PACKAGE.rglob("*.py"))


def test_the_package_is_there() -> None:
    # Every check below passes on an empty tree; this one does not.
    names = {str(p.relative_to(PACKAGE)) for p in _modules()}
    assert {"app.py", "cli.py", "settings.py", "types.py", "gateway/handle.py", "http/entry.py"} <= names
    assert len(names) > 40


def test_imports_point_one_way() -> None:
    problems = []
    for path in _modules():
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
    for path in _modules():
        _, theirs = _imports(path)
        problems += _confined_problems(str(path.relative_to(PACKAGE)), theirs)
    assert problems == []


def test_only_the_settings_read_the_environment() -> None:
    readers = {str(p.relative_to(PACKAGE)) for p in _modules() if _reads_environ(p.read_text())}
    assert readers <= set(ENVIRON_READERS), sorted(readers - set(ENVIRON_READERS))


def test_the_checks_bite() -> None:
    """What a careless change would add to the gateway, each caught (all of these passed the test before)."""
    handle = PACKAGE / "gateway" / "handle.py"
    careless = {
        "import starlette.requests": "starlette",
        "from pydantic import BaseModel": "pydantic",
        "from dotenv import load_dotenv": "dotenv",
        "import importlib\nlitellm = importlib.import_module('litellm')": "litellm",
        "yaml = __import__('yaml')": "yaml",
    }
    for source, library in careless.items():
        _, theirs = _imports(handle, source)
        assert _confined_problems("gateway/handle.py", theirs), source
        assert library in theirs
    ours, _ = _imports(handle, "import importlib\nhttp = importlib.import_module('llm_scope.http.entry')")
    assert "http" in ours and "http" not in ALLOWED["gateway"]
    for source in ("import os\nkey = os.environ['X']", "from os import getenv", "import os\nos.getenv('X')"):
        assert _reads_environ(source), source
    assert not _reads_environ("import os\npath = os.path.join('a', 'b')")


def test_modules_stay_small() -> None:
    """~400 lines is the aim for every module we write: the package, its dashboard scripts, tests, benchmarks
    and the compat runner alike. One that grows past it goes in `grown` (440) until it is split by what it does."""
    grown: set[str] = set()  # none at present
    root = PACKAGE.parents[1]
    files = [
        p for d in ("src", "tests", "bench", "compat") for ext in ("py", "js") for p in (root / d).rglob(f"*.{ext}")
    ]
    files = [p for p in files if ".venvs" not in p.parts and "node_modules" not in p.parts]
    assert len(files) > 200 and any(p.parent.name == "bench" for p in files)
    big = {
        rel: n
        for p in files
        if (n := len(p.read_text().splitlines())) > (440 if (rel := str(p.relative_to(root))) in grown else 400)
    }
    assert big == {}


def test_the_api_families_stay_under_their_readers() -> None:
    """http, gateway and providers read apis/; apis/ importing any of them (or Starlette) is caught."""
    chat = PACKAGE / "apis" / "chat.py"
    ours, theirs = _imports(chat, "from ..gateway.handle import Gateway\nfrom ..http import entry\nimport starlette")
    assert {"gateway", "http"} <= ours and not {"gateway", "http", "providers"} & ALLOWED["apis"]
    assert _confined_problems("apis/chat.py", theirs)
    assert all("apis" in ALLOWED[reader] for reader in ("http", "gateway", "providers"))
