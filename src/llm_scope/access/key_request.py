"""What a new virtual key may ask for: one validation for the admin API and `llm-scope keys create`.

A negative rate limit or budget would be accepted and then answer 429 forever, so both doors reject it with
the same words.
"""

from __future__ import annotations

from typing import Any

from ..errors import InvalidRequest


class KeyRequestError(InvalidRequest):
    """A 400 for the admin API; the CLI prints its message and exits 2."""


def _optional_number(body: dict[str, Any], name: str, kind: type) -> Any:
    value = body.get(name)
    if value is None:
        return None
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or value < 0
        or (kind is int and value != int(value))
    ):
        raise KeyRequestError(f"Invalid '{name}': expected a non-negative {kind.__name__}", param=name)
    return kind(value)


def parse_key_request(body: Any) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise KeyRequestError("Body must be a JSON object with at least 'owner'")
    owner = body.get("owner")
    if not isinstance(owner, str) or not owner.strip():
        raise KeyRequestError("Missing required parameter: 'owner'", param="owner")
    models = body.get("models")
    if models is not None and (not isinstance(models, list) or not all(isinstance(m, str) for m in models)):
        raise KeyRequestError("Invalid 'models': expected a list of model names", param="models")
    return {
        "owner": owner.strip(),
        "models": models,
        "budget_daily_usd": _optional_number(body, "budget_daily_usd", float),
        "budget_monthly_usd": _optional_number(body, "budget_monthly_usd", float),
        "rpm": _optional_number(body, "rpm", int),
        "tpm": _optional_number(body, "tpm", int),
    }
