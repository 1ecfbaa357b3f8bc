"""Native passthrough to OpenAI-compatible upstreams (OpenAI, Azure OpenAI, vLLM, Groq, …).

The client's JSON goes up with only the model and credentials changed, and the answer's bytes come back
untouched: chat completions, Responses and embeddings alike.
"""

from __future__ import annotations

from ..model_config import OPENAI_COMPATIBLE
from ..types import Deployment
from .passthrough import PassthroughProvider

DEFAULT_AZURE_API_VERSION = "2024-10-21"


class OpenAICompatProvider(PassthroughProvider):
    def target(self, deployment: Deployment, path: str) -> tuple[str, dict[str, str]]:
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
