"""The API families, one module each, and the one table every layer consults.

The HTTP layer serves `FAMILIES`' paths, the gateway reads a call's row for its record, body, tap and error
events, and the providers read it for their upstream path, mock answer or LiteLLM function. Adding a family
is a module that builds an `ApiFamily` and its row here.
"""

from __future__ import annotations

from collections.abc import Iterable

from .chat import CHAT
from .count_tokens import COUNT_TOKENS
from .embeddings import EMBEDDINGS
from .family import ApiFamily, ApiName, MockAnswer, Summary, Tap
from .messages import MESSAGES
from .responses import RESPONSES

FAMILIES: tuple[ApiFamily, ...] = (CHAT, MESSAGES, COUNT_TOKENS, RESPONSES, EMBEDDINGS)


def by_name(families: Iterable[ApiFamily]) -> dict[ApiName, ApiFamily]:
    """Each family by the name a provider is called with (what `Provider.call`'s `api` is)."""
    return {family.name: family for family in families}


def by_path(families: Iterable[ApiFamily]) -> dict[str, ApiFamily]:
    """Each served path's family; two families claiming one path is a mistake caught at start-up."""
    table: dict[str, ApiFamily] = {}
    for family in families:
        for path in family.paths:
            if path in table:
                raise ValueError(f"{path} is served by both {table[path].route} and {family.route}")
            table[path] = family
    return table


# Paths under which errors take Anthropic's shape, even for a path no family serves (a 404 under
# /v1/messages/...): what an Anthropic SDK can read.
ANTHROPIC_PREFIXES = tuple(path for family in FAMILIES if family.anthropic for path in family.paths)


def anthropic_shaped(path: str) -> bool:
    return path.startswith(ANTHROPIC_PREFIXES)


__all__ = [
    "ANTHROPIC_PREFIXES",
    "FAMILIES",
    "ApiFamily",
    "ApiName",
    "MockAnswer",
    "Summary",
    "Tap",
    "anthropic_shaped",
    "by_name",
    "by_path",
]
