"""What the trace helper's caches really hold, in bytes, and what glibc keeps besides (a debug probe).

The caches are budgeted in characters or entries; what they cost is their objects: a str's header and
its characters, a parsed block's dicts and lists, a run's list of keys. This walks each cache instance the
process holds (found through the collector, so no cache needs to know about it) and counts every object it
reaches once (shared values are counted for the first cache that reaches them), and reads glibc's own
account (mallinfo2: bytes in use, bytes free but kept) next to the RSS. Set LLM_SCOPE_MEMPROBE to a file
path and the helper appends one JSON line there at its stop; nothing is read or written otherwise.
"""

from __future__ import annotations

import gc
import json
import os
import sys
from typing import Any

from ..memtrim import glibc_heap

ENV = "LLM_SCOPE_MEMPROBE"
_CACHES = ("BodyBlocks", "InputRuns", "CleanBlocks", "BlockWriter", "SessionRuns")


def deep_size(root: Any, seen: set[int]) -> int:
    """Bytes of root and everything it reaches that is not in `seen` (then added to it)."""
    total = 0
    stack = [root]
    while stack:
        obj = stack.pop()
        if id(obj) in seen or isinstance(obj, type) or (callable(obj) and not hasattr(obj, "__slots__")):
            continue
        seen.add(id(obj))
        total += sys.getsizeof(obj)
        if isinstance(obj, str | bytes | int | float | bool) or obj is None:
            continue
        if isinstance(obj, dict):
            stack += obj.keys()
            stack += obj.values()
        elif isinstance(obj, list | tuple | set | frozenset):
            stack += obj
        else:
            for name in getattr(type(obj), "__slots__", ()):
                if hasattr(obj, name):
                    stack.append(getattr(obj, name))
            d = getattr(obj, "__dict__", None)
            if d is not None:
                stack.append(d)
    return total


def malloc_info() -> dict[str, int]:
    """glibc's heap: bytes in use (arena + mmapped) and free but kept; {} where it is not glibc."""
    found = glibc_heap()
    return found.account() if found is not None else {}


def rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def probe() -> dict[str, Any]:
    """Each cache's bytes (by class name, summed over instances), the key cache's entries, RSS, malloc."""
    from .blocks import key_of

    seen: set[int] = set()
    out: dict[str, Any] = {name: 0 for name in _CACHES}
    for obj in gc.get_objects():
        name = type(obj).__name__
        if name in _CACHES and type(obj).__module__.startswith("llm_scope."):
            out[name] += deep_size(obj, seen) - sys.getsizeof(obj)  # its contents
    out["key_of_entries"] = key_of.cache_info().currsize
    out["rss"] = rss_bytes()
    out.update(malloc_info())
    return out


def report() -> None:
    """Append probe() as a JSON line to the file LLM_SCOPE_MEMPROBE names, if it is set."""
    path = os.environ.get(ENV)
    if path:
        with open(path, "a") as f:
            f.write(json.dumps(probe()) + "\n")
