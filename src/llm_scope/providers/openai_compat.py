"""Native passthrough to OpenAI-compatible upstreams (OpenAI, Azure OpenAI, vLLM, Groq, …).

The client's JSON goes up with only the model and credentials changed, and the answer's bytes come back
untouched: chat completions, Responses and embeddings alike.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from .. import jsoncodec
from ..apis import FAMILIES, ApiFamily, ApiName, by_name
from ..model_config import OPENAI_COMPATIBLE
from ..types import Deployment
from .base import CallOptions, UpstreamResponse
from .egress import verify_setting
from .upstream_http import UpstreamHTTP

DEFAULT_AZURE_API_VERSION = "2024-10-21"


class OpenAICompatProvider:
    def __init__(self, http: UpstreamHTTP, families: Iterable[ApiFamily] = FAMILIES) -> None:
        self.http = http
        self.families = by_name(families)

    async def aclose(self) -> None:
        await self.http.aclose()

    async def call(
        self, api: ApiName, deployment: Deployment, body: dict[str, Any], options: CallOptions
    ) -> UpstreamResponse:
        url, headers = upstream_target(deployment, self.families[api].upstream_path)
        payload = dict(body)
        payload["model"] = deployment.model
        data = jsoncodec.dumps(payload)
        verify = verify_setting(deployment.params.get("ssl_verify"))
        return await self.http.post(url, headers, data, stream=bool(body.get("stream")), options=options, verify=verify)


def upstream_target(deployment: Deployment, path: str) -> tuple[str, dict[str, str]]:
    """URL and auth headers for an OpenAI-compatible upstream; Azure has its own URL and header."""
    headers = {"Content-Type": "application/json"}
    if deployment.provider == "azure":
        base = (deployment.api_base or "").rstrip("/")
        version = deployment.api_version or DEFAULT_AZURE_API_VERSION
        url = f"{base}/openai/deployments/{deployment.model}/{path}?api-version={version}"
        if deployment.api_key:
            headers["api-key"] = deployment.api_key
        return url, headers
    base = deployment.api_base or OPENAI_COMPATIBLE.get(deployment.provider) or ""
    if deployment.api_key:
        headers["Authorization"] = f"Bearer {deployment.api_key}"
    return f"{base.rstrip('/')}/{path}", headers
