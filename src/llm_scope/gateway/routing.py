"""Model name → deployment: aliases first, then exact names, then wildcard routes, then a bare-name guess.

Several deployments may share one name; calls rotate through them so load spreads evenly.
"""

from __future__ import annotations

import fnmatch
import itertools
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import replace

from ..errors import ModelNotFound
from ..types import Deployment

# Bare names IDEs send by default, mapped to the provider prefix that serves them.
_BARE_NAME_PROVIDERS = (
    (("gpt-", "o1", "o3", "o4", "chatgpt-", "text-embedding-", "codex-"), "openai"),
    (("claude-",), "anthropic"),
    (("gemini-",), "gemini"),
)


class Router:
    def __init__(
        self,
        deployments: Iterable[Deployment],
        aliases: Mapping[str, str] | None = None,
        hidden: frozenset[str] = frozenset(),
    ) -> None:
        self._aliases = dict(aliases or {})  # router_settings.model_group_alias: alias -> model name
        self._listed_aliases = [a for a in self._aliases if a not in hidden]
        self._exact: dict[str, list[Deployment]] = {}
        self._patterns: dict[str, list[Deployment]] = {}  # several entries may share one wildcard pattern
        for d in deployments:
            (self._patterns if d.wildcard else self._exact).setdefault(d.model_name, []).append(d)
        # One representative per pattern, longest first, so "anthropic/claude-*" beats "anthropic/*" beats "*".
        self._wildcards = sorted(
            (ds[0] for ds in self._patterns.values()), key=lambda d: len(d.model_name.replace("*", "")), reverse=True
        )
        self._cycles: dict[str, Iterator[Deployment]] = {
            n: itertools.cycle(ds) for n, ds in (*self._exact.items(), *self._patterns.items())
        }
        groups = [*self._exact.values(), *self._patterns.values()]
        self.has_unavailable = any(d.unavailable for ds in groups for d in ds)

    @property
    def names(self) -> list[str]:
        return [*self._exact, *(a for a in self._listed_aliases if a not in self._exact)]

    @property
    def wildcards(self) -> list[Deployment]:
        return list(self._wildcards)

    def candidates(self, name: str) -> list[Deployment]:
        """Every deployment that can serve `name`, the next in rotation first."""
        if self._aliases:  # as in LiteLLM's router, an alias wins over a model_name of the same name
            name = self._aliases.get(name, name)
        exact = self._exact.get(name)
        if exact:
            return self._rotate(name, exact)
        patterns = [d for d in self._wildcards if d.model_name != "*"]
        for d in patterns:
            if fnmatch.fnmatchcase(name, d.model_name):
                return self._bind(d, name)
        for prefixes, provider in _BARE_NAME_PROVIDERS:
            if "/" not in name and name.startswith(prefixes):
                qualified = f"{provider}/{name}"
                for d in patterns:
                    if fnmatch.fnmatchcase(qualified, d.model_name):
                        return self._bind(d, qualified)
        for d in self._wildcards:
            if d.model_name == "*":  # the catch-all (default route) comes last
                return self._bind(d, name)
        return []

    def _rotate(self, key: str, group: list[Deployment]) -> list[Deployment]:
        first = next(self._cycles[key])
        return [first] + [d for d in group if d is not first]

    def _bind(self, pattern: Deployment, requested: str) -> list[Deployment]:
        group = self._patterns[pattern.model_name]
        return [_bind_wildcard(d, requested) for d in self._rotate(pattern.model_name, group)]

    def resolve(self, name: str) -> list[Deployment]:
        found = self.candidates(name)
        if not found:
            raise ModelNotFound(
                f"The model '{name}' does not exist or is not configured on this gateway", param="model"
            )
        return found


def _bind_wildcard(d: Deployment, requested: str) -> Deployment:
    """`openai/*` asked for `openai/gpt-4o` → upstream model `gpt-4o`; a model with no `*` is used as is."""
    if "*" not in d.model:
        return replace(d, model_name=requested, wildcard=False)
    prefix, _, suffix = d.model_name.partition("*")
    matched = requested[len(prefix) : len(requested) - len(suffix) if suffix else None]
    return replace(d, model_name=requested, model=d.model.replace("*", matched), wildcard=False)
