"""The sections of a LiteLLM config besides `model_list`: what the gateway takes from them, and notes for the rest.

`general_settings.master_key`, Langfuse callbacks, `turn_off_message_logging` and `environment_variables`
become a `ProxySettings` that `config.effective_settings` lays over the process settings; routing keys
become part of the router policy; every other key becomes a `ConfigNote`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .litellm_keys import (
    CALLBACK_REASONS,
    GENERAL_ACTED,
    GENERAL_KNOWN,
    GENERAL_REASONS,
    LANGFUSE_CALLBACKS,
    LITELLM_ACTED,
    LITELLM_KNOWN,
    LITELLM_REASONS,
    MODEL_INFO_USED,
    PARAMS_KNOWN,
    PARAMS_ROUTER_ONLY,
    PARAMS_USED,
    ROUTER_ACTED,
    ROUTER_KNOWN,
    ROUTER_REASONS,
    ROUTING_STRATEGIES,
    TOP_LEVEL_ACTED,
    TOP_LEVEL_REASONS,
    UNSUPPORTED_STRATEGIES,
    ConfigError,
    ConfigNote,
    NoteKind,
    section_notes,
    suggest,
)

ENV_PREFIX = "os.environ/"
# What LiteLLM Proxy refuses to take from a config's environment_variables (ProxyConfig._BLOCKED_ENV_KEYS).
BLOCKED_ENV = frozenset(
    {
        "PATH",
        "LD_PRELOAD",
        "LD_LIBRARY_PATH",
        "DYLD_LIBRARY_PATH",
        "DYLD_INSERT_LIBRARIES",
        "PYTHONPATH",
        "PYTHONSTARTUP",
        "PYTHONHOME",
        "HOME",
        "USER",
        "SHELL",
        "LOGNAME",
        "NO_PROXY",
        "no_proxy",
    }
)


@dataclass(frozen=True)
class ProxySettings:
    """What the config asks of the gateway itself, beyond its routes."""

    master_key: str | None = field(default=None, repr=False)  # general_settings.master_key, resolved
    database_url: str | None = field(default=None, repr=False)  # general_settings.database_url (DATABASE_URL wins)
    langfuse: bool = False  # a callback names Langfuse
    trace_content: bool | None = None  # litellm_settings.turn_off_message_logging: true -> False
    environment: dict[str, str] = field(default_factory=dict, repr=False)  # environment_variables, resolved


def env_reference(value: Any) -> str | None:
    """The variable an `os.environ/NAME` value names, or None for a plain value."""
    if isinstance(value, str) and value.startswith(ENV_PREFIX):
        return value.removeprefix(ENV_PREFIX)
    return None


def unset_message(var: str) -> str:
    return f"refers to environment variable {var}, which is not set"


def mapping(raw: Mapping[str, Any], key: str, source: str) -> dict[str, Any]:
    value = raw.get(key) or {}
    if not isinstance(value, dict):
        raise ConfigError(f"{source}: '{key}' must be a mapping")
    return value


def read_includes(raw: dict[str, Any], path: Path, read: Callable[[Path], dict[str, Any]]) -> dict[str, Any]:
    """LiteLLM's `include: [other.yaml]`: lists are extended, every other value is taken from the included
    file; `read` loads one file (a mapping) or raises ConfigError."""
    includes = raw.get("include")
    if not includes:
        return raw
    if not isinstance(includes, list) or not all(isinstance(i, str) for i in includes):
        raise ConfigError(f"{path}: 'include' must be a list of file names")
    merged = {k: v for k, v in raw.items() if k != "include"}
    for name in includes:
        for key, value in read(path.parent / name).items():
            current = merged.get(key)
            merged[key] = [*current, *value] if isinstance(current, list) and isinstance(value, list) else value
    return merged


def top_level_notes(raw: Mapping[str, Any]) -> list[ConfigNote]:
    return section_notes("", raw, TOP_LEVEL_ACTED, TOP_LEVEL_REASONS, frozenset())


def environment_variables(
    raw: Mapping[str, Any], environ: Mapping[str, str], source: str
) -> tuple[dict[str, str], list[ConfigNote]]:
    """As LiteLLM Proxy applies them: each overrides the process environment; `os.environ/NAME` values are
    read from it; unset references and empty values set nothing."""
    values = mapping(raw, "environment_variables", source)
    out: dict[str, str] = {}
    notes: list[ConfigNote] = []
    for key, value in values.items():
        path = f"environment_variables.{key}"
        var = env_reference(value)
        if key in BLOCKED_ENV:
            notes.append(ConfigNote("ignored", path, "not taken from a config file (LiteLLM Proxy refuses it too)"))
        elif value is None:
            notes.append(ConfigNote("ignored", path, "has no value; nothing is set"))
        elif var is not None and var not in environ:
            notes.append(ConfigNote("unavailable", path, unset_message(var) + "; nothing is set"))
        else:
            out[str(key)] = environ[var] if var is not None else str(value)
    return out, notes


def proxy_settings(
    raw: Mapping[str, Any], environ: Mapping[str, str], source: str
) -> tuple[ProxySettings, list[ConfigNote]]:
    general = mapping(raw, "general_settings", source)
    litellm_settings = mapping(raw, "litellm_settings", source)
    notes = section_notes("general_settings", general, GENERAL_ACTED, GENERAL_REASONS, GENERAL_KNOWN)
    notes += section_notes("litellm_settings", litellm_settings, LITELLM_ACTED, LITELLM_REASONS, LITELLM_KNOWN)
    master_key = _string_setting(general, "master_key", environ, source, notes)
    database_url = _string_setting(general, "database_url", environ, source, notes)
    langfuse: str | None = None  # the key that names Langfuse
    for key in ("success_callback", "callbacks", "failure_callback"):
        names = litellm_settings.get(key) or []
        for index, name in enumerate([names] if isinstance(names, str) else names):
            path = f"litellm_settings.{key}[{index}]"
            if name in LANGFUSE_CALLBACKS:
                langfuse = langfuse or key
            elif name in CALLBACK_REASONS:
                notes.append(ConfigNote("different", path, f"'{name}': {CALLBACK_REASONS[name]}"))
            else:
                guess = suggest(str(name), [*LANGFUSE_CALLBACKS, *CALLBACK_REASONS])
                if guess:
                    notes.append(ConfigNote("typo", path, f"'{name}': did you mean '{guess}'? ignored as written"))
                else:
                    notes.append(ConfigNote("ignored", path, f"callback '{name}' is not supported"))
    if langfuse and not (environ.get("LANGFUSE_PUBLIC_KEY") and environ.get("LANGFUSE_SECRET_KEY")):
        notes.append(
            ConfigNote(
                "unavailable",
                f"litellm_settings.{langfuse}",
                "names Langfuse, but LANGFUSE_PUBLIC_KEY and LANGFUSE_SECRET_KEY are not both set: export is off",
            )
        )
    if litellm_settings.get("drop_params") is False:
        notes.append(
            ConfigNote(
                "different",
                "litellm_settings.drop_params",
                "LiteLLM-translated calls always drop "
                "parameters the provider does not take; passthrough calls send the body unchanged",
            )
        )
    quiet = litellm_settings.get("turn_off_message_logging")
    proxy = ProxySettings(
        master_key=master_key,
        database_url=database_url,
        langfuse=langfuse is not None,
        trace_content=False if quiet is True else None,
    )
    return proxy, notes


def router_notes(raw: Mapping[str, Any], source: str) -> tuple[str, list[ConfigNote]]:
    """The routing strategy to use, and notes on `router_settings` keys."""
    router = mapping(raw, "router_settings", source)
    notes = section_notes("router_settings", router, ROUTER_ACTED, ROUTER_REASONS, ROUTER_KNOWN)
    strategy = router.get("routing_strategy") or "simple-shuffle"
    supported = ", ".join(ROUTING_STRATEGIES)
    if strategy in ROUTING_STRATEGIES:
        return ROUTING_STRATEGIES[strategy], notes
    path = "router_settings.routing_strategy"
    if strategy in UNSUPPORTED_STRATEGIES:
        message = f"'{strategy}' is not supported; simple-shuffle is used (supported: {supported})"
        notes.append(ConfigNote("ignored", path, message))
    else:
        guess = suggest(str(strategy), [*ROUTING_STRATEGIES, *UNSUPPORTED_STRATEGIES])
        hint = f"did you mean '{guess}'? " if guess else ""
        kind: NoteKind = "typo" if guess else "unknown"
        notes.append(ConfigNote(kind, path, f"'{strategy}': {hint}unknown, so simple-shuffle is used"))
    return "simple-shuffle", notes


def model_group_aliases(raw: Mapping[str, Any], source: str) -> tuple[dict[str, str], frozenset[str]]:
    """`model_group_alias`: {alias: name} or {alias: {model: name, hidden: true}}; and the hidden aliases."""
    values = mapping(raw, "router_settings", source).get("model_group_alias") or {}
    if not isinstance(values, dict):
        raise ConfigError(f"{source}: 'router_settings.model_group_alias' must map alias names to model names")
    aliases: dict[str, str] = {}
    hidden: set[str] = set()
    for alias, target in values.items():
        if isinstance(target, dict):
            if target.get("hidden") is True:
                hidden.add(str(alias))
            target = target.get("model")
        if not isinstance(target, str) or not target:
            raise ConfigError(f"{source}: router_settings.model_group_alias.{alias} must name a model")
        aliases[str(alias)] = target
    return aliases, frozenset(hidden)


def _string_setting(
    section: Mapping[str, Any], key: str, environ: Mapping[str, str], source: str, notes: list[ConfigNote]
) -> str | None:
    value = section.get(key)
    if value is None:
        return None
    var = env_reference(value)
    if var is not None:
        if var not in environ:
            notes.append(ConfigNote("unavailable", f"general_settings.{key}", unset_message(var) + "; not used"))
            return None
        value = environ[var]
    if not isinstance(value, str) or not value:
        raise ConfigError(f"{source}: 'general_settings.{key}' must be a string")
    return value


def passed_params(
    path: str, provider: str, params: dict[str, Any], info: Mapping[str, Any], *, passthrough: bool
) -> tuple[dict[str, Any], list[ConfigNote]]:
    """The `litellm_params` a deployment passes on to LiteLLM, and notes for those that do less than in
    LiteLLM Proxy: router-only ones (dropped), likely typos, and any a passthrough call goes without."""
    notes: list[ConfigNote] = []
    unused_info = sorted(str(k) for k in info if k not in MODEL_INFO_USED)
    if unused_info:
        notes.append(ConfigNote("ignored", f"{path}.model_info", f"{', '.join(unused_info)}: not used"))
    passed = dict(params)
    for key in params:
        key_path = f"{path}.litellm_params.{key}"
        if key in PARAMS_ROUTER_ONLY:
            notes.append(ConfigNote("ignored", key_path, PARAMS_ROUTER_ONLY[key]))
            del passed[key]
        elif key not in PARAMS_KNOWN and (guess := suggest(key, PARAMS_USED | PARAMS_KNOWN)) is not None:
            notes.append(ConfigNote("typo", key_path, f"did you mean '{guess}'? passed on to LiteLLM as written"))
        elif passthrough and not key.startswith("mock_"):
            message = f"applied only to calls LiteLLM translates; calls in {provider}'s own format pass unchanged"
            notes.append(ConfigNote("different", key_path, message))
    return passed, notes
