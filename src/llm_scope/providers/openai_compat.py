"""Native passthrough to OpenAI-compatible upstreams (OpenAI, Azure OpenAI, vLLM, Groq, …).

The client's JSON goes up with only the model and credentials changed, and the answer's bytes come back
untouched. aiohttp is used because a pooled aiohttp call costs ~0.1 ms of CPU where the openai SDK costs
over 1 ms (see DESIGN.md); it is confined to this module.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import urlsplit

import aiohttp

from ..config import OPENAI_COMPATIBLE
from ..errors import OPENAI_TYPES_BY_STATUS, GatewayError, UpstreamError, UpstreamTimeout
from ..types import Deployment
from .base import CallOptions, UpstreamResponse, pick_response_headers

DEFAULT_AZURE_API_VERSION = "2024-10-21"


class OpenAICompatProvider:
    def __init__(self) -> None:
        self._session: aiohttp.ClientSession | None = None

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            connector = aiohttp.TCPConnector(limit=0, ttl_dns_cache=300, keepalive_timeout=60)
            self._session = aiohttp.ClientSession(
                connector=connector, auto_decompress=False, skip_auto_headers=("User-Agent",)
            )
        return self._session

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()

    async def chat(self, deployment: Deployment, body: dict[str, Any], options: CallOptions) -> UpstreamResponse:
        url, headers = upstream_target(deployment, "chat/completions")
        headers.update(options.headers)
        payload = dict(body)
        payload["model"] = deployment.model
        data = json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode()
        return await self.post(url, headers, data, stream=bool(body.get("stream")), options=options)

    async def post(
        self, url: str, headers: dict[str, str], data: bytes, *, stream: bool, options: CallOptions
    ) -> UpstreamResponse:
        timeout = aiohttp.ClientTimeout(total=None, sock_connect=options.connect_timeout, sock_read=options.timeout)
        host = urlsplit(url).netloc
        try:
            resp = await self._client().post(url, data=data, headers=headers, timeout=timeout)
        except (TimeoutError, aiohttp.ServerTimeoutError):
            raise UpstreamTimeout(f"upstream {host} did not answer within {options.timeout:g}s") from None
        except aiohttp.ClientError as exc:
            raise UpstreamError(f"cannot reach upstream {host}: {type(exc).__name__}") from None
        out_headers = pick_response_headers(resp.headers)
        out_headers["content-type"] = resp.headers.get("Content-Type", "application/json")
        if encoding := resp.headers.get("Content-Encoding"):
            out_headers["content-encoding"] = encoding
        if resp.status >= 400:
            try:
                raw = await resp.read()
            except (TimeoutError, aiohttp.ClientError):
                raw = b""
            finally:
                resp.release()
            raise upstream_status_error(resp.status, raw, host, out_headers.get("retry-after"))
        if not stream or not resp.headers.get("Content-Type", "").startswith("text/event-stream"):
            try:
                body = await resp.read()
            except (TimeoutError, aiohttp.ServerTimeoutError):
                raise UpstreamTimeout(f"upstream {host} did not answer within {options.timeout:g}s") from None
            except aiohttp.ClientError as exc:
                raise UpstreamError(f"upstream {host} failed mid-response: {type(exc).__name__}") from None
            finally:
                resp.release()
            return UpstreamResponse(status=resp.status, headers=out_headers, body=body)

        async def close() -> None:
            resp.close()

        return UpstreamResponse(
            status=resp.status, headers=out_headers, chunks=_iter_chunks(resp, host, options), close=close
        )


async def _iter_chunks(resp: aiohttp.ClientResponse, host: str, options: CallOptions) -> AsyncIterator[bytes]:
    try:
        async for chunk in resp.content.iter_any():
            yield chunk
    except (TimeoutError, aiohttp.ServerTimeoutError):
        raise UpstreamTimeout(f"upstream {host} stalled for {options.timeout:g}s mid-stream") from None
    except aiohttp.ClientError as exc:
        raise UpstreamError(f"upstream {host} broke off the stream: {type(exc).__name__}") from None
    finally:
        resp.close()


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


def upstream_status_error(status: int, raw: bytes, host: str, retry_after: str | None) -> GatewayError:
    """Keep the upstream's own message; 4xx keep their status, 5xx become 502."""
    message = _error_message(raw) or f"upstream {host} answered HTTP {status}"
    retry = float(retry_after) if retry_after and retry_after.replace(".", "", 1).isdigit() else None
    if status >= 500:
        return UpstreamError(f"upstream {host} failed with HTTP {status}: {message}", retry_after=retry)
    code = "rate_limit_exceeded" if status == 429 else f"upstream_{status}"
    return GatewayError(
        message,
        status=status,
        type=OPENAI_TYPES_BY_STATUS.get(status, "invalid_request_error"),
        code=code,
        retry_after=retry,
    )


def _error_message(raw: bytes) -> str:
    try:
        data = json.loads(raw)
    except ValueError:
        return raw[:500].decode("utf-8", "replace").strip()
    if isinstance(data, dict):
        err = data.get("error", data)
        if isinstance(err, dict) and isinstance(err.get("message"), str):
            return str(err["message"])
        if isinstance(err, str):
            return err
        if isinstance(data.get("message"), str):
            return str(data["message"])
    return raw[:500].decode("utf-8", "replace").strip()
