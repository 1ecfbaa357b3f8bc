"""The one pooled HTTP client for native passthrough upstreams (aiohttp is confined to this module).

A pooled aiohttp call costs ~0.1 ms of CPU where the openai SDK costs over 1 ms (see DESIGN.md). Every
transport failure is translated into a `GatewayError` here, the one boundary that sees aiohttp.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from urllib.parse import urlsplit

import aiohttp

from ..errors import OPENAI_TYPES_BY_STATUS, GatewayError, UpstreamError, UpstreamTimeout
from .base import CallOptions, UpstreamResponse, pick_response_headers


class UpstreamHTTP:
    """Asks for identity encoding: the tap reads the bytes it relays, and loopback-to-LAN links gain nothing."""

    def __init__(self) -> None:
        self._session: aiohttp.ClientSession | None = None

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            connector = aiohttp.TCPConnector(limit=0, ttl_dns_cache=300, keepalive_timeout=60)
            self._session = aiohttp.ClientSession(
                connector=connector, skip_auto_headers=("User-Agent", "Accept-Encoding")
            )
        return self._session

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()

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
