"""How the metrics leave the process: the separate metrics port, and prometheus_client's multiprocess mode.

With several workers each writes its counts to files under PROMETHEUS_MULTIPROC_DIR (prometheus_client reads
the variable itself, so this module must agree with it); the CLI cleans that directory on start and its parent
process serves the merged view. Kept apart from `metrics.py`, which defines what is counted.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry, multiprocess, start_http_server


def multiprocess_dir() -> str | None:
    return os.environ.get("PROMETHEUS_MULTIPROC_DIR") or None


def serve_metrics(port: int, host: str, registry: CollectorRegistry | None = None) -> Any:
    """The separate metrics port; in multiprocess mode the CLI's parent process serves the merged view."""
    if registry is None:
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
    server, _thread = start_http_server(port, addr=host, registry=registry)
    return server


def prepare_multiprocess_dir(path: Path) -> None:
    """Start clean: stale files from a previous run would add old counts to new ones."""
    path.mkdir(parents=True, exist_ok=True)
    for child in path.glob("*.db"):
        child.unlink()


def mark_worker_dead(pid: int) -> None:
    if multiprocess_dir():
        multiprocess.mark_process_dead(pid)  # type: ignore[no-untyped-call]
