"""AWS wire mechanics for the Bedrock fake, written from the published specs with the stdlib alone.

* The ``application/vnd.amazon.eventstream`` framing Bedrock streams in: a 12-byte prelude (total length,
  headers length, both big-endian u32, then the prelude's CRC32), typed headers (name length u8, name,
  type 7 = string, value length u16, value), the payload, and the CRC32 of everything before it. A client
  that checks the CRCs (botocore does) rejects a frame that is off by one byte, so this is worth getting
  exactly right rather than approximately.
* Signature Version 4 as a server checks it: rebuild the canonical request from what arrived, derive the
  signing key from the secret, and compare. An unsigned or mis-signed request is refused as AWS refuses it,
  so a test passes only if the gateway's requests would be accepted by the real service.
"""

from __future__ import annotations

import calendar
import hashlib
import hmac
import re
import struct
import time
import zlib
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import quote, unquote

# ------------------------------------------------------------------------------------------- eventstream

_STRING = 7


def _header(name: str, value: str) -> bytes:
    raw_name, raw_value = name.encode(), value.encode()
    return bytes([len(raw_name)]) + raw_name + bytes([_STRING]) + struct.pack(">H", len(raw_value)) + raw_value


def frame(headers: Mapping[str, str], payload: bytes) -> bytes:
    """One eventstream message: prelude, prelude CRC, headers, payload, message CRC."""
    encoded = b"".join(_header(k, v) for k, v in headers.items())
    total = 12 + len(encoded) + len(payload) + 4
    prelude = struct.pack(">II", total, len(encoded))
    message = prelude + struct.pack(">I", zlib.crc32(prelude)) + encoded + payload
    return message + struct.pack(">I", zlib.crc32(message))


def event(event_type: str, payload: bytes) -> bytes:
    headers = {":event-type": event_type, ":content-type": "application/json", ":message-type": "event"}
    return frame(headers, payload)


def exception(exception_type: str, payload: bytes) -> bytes:
    """A modelled error inside a stream (``throttlingException``, ``modelStreamErrorException``, …)."""
    headers = {":exception-type": exception_type, ":content-type": "application/json", ":message-type": "exception"}
    return frame(headers, payload)


def parse_frames(data: bytes) -> list[tuple[dict[str, str], bytes]]:
    """Split a byte string into (headers, payload) messages, checking both CRCs; for testing the fake."""
    out: list[tuple[dict[str, str], bytes]] = []
    while data:
        total, headers_len = struct.unpack(">II", data[:8])
        if struct.unpack(">I", data[8:12])[0] != zlib.crc32(data[:8]):
            raise ValueError("prelude CRC mismatch")
        if struct.unpack(">I", data[total - 4 : total])[0] != zlib.crc32(data[: total - 4]):
            raise ValueError("message CRC mismatch")
        raw, headers, i = data[12 : 12 + headers_len], {}, 0
        while i < len(raw):
            n = raw[i]
            name = raw[i + 1 : i + 1 + n].decode()
            assert raw[i + 1 + n] == _STRING, "the fake only writes string headers"
            (size,) = struct.unpack(">H", raw[i + 2 + n : i + 4 + n])
            headers[name] = raw[i + 4 + n : i + 4 + n + size].decode()
            i += 4 + n + size
        out.append((headers, data[12 + headers_len : total - 4]))
        data = data[total:]
    return out


# ------------------------------------------------------------------------------------------------- SigV4

_AUTH = re.compile(
    r"^AWS4-HMAC-SHA256 Credential=(?P<key>[^/]+)/(?P<date>\d{8})/(?P<region>[^/]+)/(?P<service>[^/]+)/aws4_request,"
    r"\s*SignedHeaders=(?P<signed>[a-z0-9;-]+),\s*Signature=(?P<signature>[0-9a-f]{64})$"
)
MAX_SKEW_S = 15 * 60  # AWS refuses a request signed more than 15 minutes away from its clock


@dataclass(frozen=True)
class Refusal:
    """Why a request's signature was refused, in AWS's terms: the error type and its message."""

    error_type: str
    message: str


def _hmac(key: bytes, text: str) -> bytes:
    return hmac.new(key, text.encode(), hashlib.sha256).digest()


def signing_key(secret: str, date: str, region: str, service: str) -> bytes:
    key = _hmac(("AWS4" + secret).encode(), date)
    return _hmac(_hmac(_hmac(key, region), service), "aws4_request")


def canonical_query(raw_query: str) -> str:
    pairs = []
    for part in filter(None, raw_query.split("&")):
        name, _, value = part.partition("=")
        pairs.append((quote(unquote(name), safe="-_.~"), quote(unquote(value), safe="-_.~")))
    return "&".join(f"{k}={v}" for k, v in sorted(pairs))


def canonical_request(
    method: str, raw_path: str, raw_query: str, headers: Mapping[str, str], signed: list[str], payload_hash: str
) -> str:
    """Services other than S3 encode the path once more on top of the encoding it was sent with."""
    lines = [method.upper(), quote(raw_path or "/", safe="/~"), canonical_query(raw_query)]
    lines.append("".join(f"{name}:{' '.join(headers.get(name, '').split())}\n" for name in signed))
    lines += [";".join(signed), payload_hash]
    return "\n".join(lines)


def check_sigv4(
    method: str,
    raw_path: str,
    raw_query: str,
    headers: Mapping[str, str],
    body: bytes,
    credentials: Mapping[str, str],
    *,
    region: str,
    service: str,
    now: float | None = None,
) -> Refusal | None:
    """None when the request is signed by a known key for this region and service; else AWS's refusal.

    `headers` must be keyed lower-case; `credentials` maps access key id to secret."""
    match = _AUTH.match(headers.get("authorization", ""))
    if match is None:
        return Refusal("MissingAuthenticationTokenException", "Missing Authentication Token")
    secret = credentials.get(match["key"])
    if secret is None:
        return Refusal("UnrecognizedClientException", "The security token included in the request is invalid.")
    amz_date = headers.get("x-amz-date", "")
    if not amz_date.startswith(match["date"]) or match["region"] != region or match["service"] != service:
        return Refusal("InvalidSignatureException", f"Credential should be scoped to a valid region ({region}).")
    signed = match["signed"].split(";")
    if "host" not in signed or "x-amz-date" not in signed:
        return Refusal("InvalidSignatureException", "'Host' and 'X-Amz-Date' must be signed headers.")
    stamp = calendar.timegm(time.strptime(amz_date, "%Y%m%dT%H%M%SZ"))
    if abs((time.time() if now is None else now) - stamp) > MAX_SKEW_S:
        return Refusal("InvalidSignatureException", "Signature expired: the request time is too skewed.")
    payload_hash = hashlib.sha256(body).hexdigest()
    if headers.get("x-amz-content-sha256", payload_hash) != payload_hash:
        return Refusal("InvalidSignatureException", "The provided x-amz-content-sha256 header does not match.")
    request = canonical_request(method, raw_path, raw_query, headers, signed, payload_hash)
    scope = f"{match['date']}/{region}/{service}/aws4_request"
    to_sign = "\n".join(["AWS4-HMAC-SHA256", amz_date, scope, hashlib.sha256(request.encode()).hexdigest()])
    expected = hmac.new(signing_key(secret, match["date"], region, service), to_sign.encode(), hashlib.sha256)
    if not hmac.compare_digest(expected.hexdigest(), match["signature"]):
        return Refusal(
            "InvalidSignatureException",
            "The request signature we calculated does not match the signature you provided.",
        )
    return None
