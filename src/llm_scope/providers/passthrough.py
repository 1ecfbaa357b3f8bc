"""The native passthrough, one call for both wire formats: the client's JSON goes up with the model swapped
in (its own bytes where they can be, see `upstream_body`), and the answer's bytes come back untouched, whole
or streamed.

What tells the formats apart is where a call goes and how it authenticates (`target`) and what the body
needs before it goes (`payload`): `openai_compat` and `anthropic_compat` say that much, and nothing else.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from .. import jsoncodec
from ..apis import FAMILIES, ApiFamily, ApiName
from ..types import Deployment
from .base import CallOptions, FamilyProvider, UpstreamResponse
from .egress import verify_setting
from .upstream_body import upstream_bytes
from .upstream_http import UpstreamHTTP


class PassthroughProvider(FamilyProvider):
    def __init__(self, http: UpstreamHTTP, families: Iterable[ApiFamily] = FAMILIES) -> None:
        super().__init__(families)
        self.http = http

    async def aclose(self) -> None:
        await self.http.aclose()

    def target(self, deployment: Deployment, path: str) -> tuple[str, dict[str, str]]:
        """The URL of `path` (the family's `upstream_path`) on the deployment's upstream, and its headers."""
        raise NotImplementedError

    def payload(self, body: dict[str, Any]) -> dict[str, Any]:
        """A copy of the body as the upstream needs it (the model is swapped in afterwards)."""
        return dict(body)

    async def call(
        self, api: ApiName, deployment: Deployment, body: dict[str, Any], options: CallOptions
    ) -> UpstreamResponse:
        url, headers = self.target(deployment, self.families[api].upstream_path)
        if options.headers:  # the family's forwarded client headers (anthropic-version, anthropic-beta)
            headers = {**headers, **options.headers}
        payload = self.payload(body)
        payload["model"] = deployment.model
        received = options.received
        if received is not None:
            data = upstream_bytes(received.raw, received.body, payload)
        else:
            data = jsoncodec.dumps(payload)
        verify = verify_setting(deployment.params.get("ssl_verify"))
        return await self.http.post(url, headers, data, stream=bool(body.get("stream")), options=options, verify=verify)
