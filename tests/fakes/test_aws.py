"""The Bedrock fake's wire mechanics against botocore, AWS's own implementation of both sides.

The fake's framing and signature check are written from the specs with the stdlib; botocore decodes the
frames and signs the requests here, so a fake that drifted from the real wire fails these before it can make
a gateway test pass for the wrong reason.
"""

from __future__ import annotations

import base64
import json
import time

import httpx
import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from botocore.eventstream import ChecksumMismatch, EventStreamBuffer

from tests.fakes import aws, bedrock, wire

URL_PATH = "/model/anthropic.claude-3-5-haiku-20241022-v1%3A0/converse"


def test_frames_decode_with_botocore() -> None:
    frames = bedrock.converse_frames(wire.decide_answer("hi there", None, None), 3)
    buffer = EventStreamBuffer()
    buffer.add_data(b"".join(frames))
    decoded = list(buffer)
    types = [m.headers[":event-type"] for m in decoded]
    assert types == ["messageStart"] + ["contentBlockDelta"] * 3 + ["contentBlockStop", "messageStop", "metadata"]
    assert {m.headers[":message-type"] for m in decoded} == {"event"}
    usage = json.loads(decoded[-1].payload)["usage"]
    assert usage["inputTokens"] == wire.FAKE_PROMPT_TOKENS and usage["outputTokens"] == 6
    assert [(dict(m.headers), m.payload) for m in decoded] == aws.parse_frames(b"".join(frames))


def test_invoke_chunks_carry_anthropic_events_in_base64() -> None:
    frames = bedrock.invoke_frames("msg_1", "m", wire.decide_answer("hi", None, None), 2)
    buffer = EventStreamBuffer()
    buffer.add_data(b"".join(frames))
    events = [json.loads(base64.b64decode(json.loads(m.payload)["bytes"])) for m in buffer]
    assert [e["type"] for e in events] == ["message_start", "content_block_start"] + ["content_block_delta"] * 2 + [
        "content_block_stop",
        "message_delta",
        "message_stop",
    ]
    assert events[-1]["amazon-bedrock-invocationMetrics"]["outputTokenCount"] == 5


def test_a_corrupted_frame_fails_botocores_checksum() -> None:
    good = aws.event("metadata", b'{"usage": {}}')
    bad = good[:-6] + bytes([good[-6] ^ 1]) + good[-5:]
    buffer = EventStreamBuffer()
    buffer.add_data(bad)
    with pytest.raises(ChecksumMismatch):
        list(buffer)


def botocore_signed(body: bytes, secret: str = bedrock.SECRET_KEY, region: str = bedrock.REGION) -> AWSRequest:
    request = AWSRequest(
        "POST", f"http://127.0.0.1:8080{URL_PATH}", data=body, headers={"Content-Type": "application/json"}
    )
    SigV4Auth(Credentials(bedrock.ACCESS_KEY, secret), "bedrock", region).add_auth(request)
    return request


def check(request: AWSRequest, body: bytes, now: float | None = None) -> aws.Refusal | None:
    headers = {k.lower(): v for k, v in request.headers.items()}
    headers["host"] = "127.0.0.1:8080"
    creds = {bedrock.ACCESS_KEY: bedrock.SECRET_KEY}
    return aws.check_sigv4(
        "POST", URL_PATH, "", headers, body, creds, region=bedrock.REGION, service="bedrock", now=now
    )


def test_a_botocore_signature_passes_and_any_change_fails() -> None:
    body = b'{"messages": []}'
    assert check(botocore_signed(body), body) is None
    refused = check(botocore_signed(body), b'{"messages": [1]}')
    assert refused is not None and refused.error_type == "InvalidSignatureException"
    refused = check(botocore_signed(body, secret="wrong"), body)
    assert refused is not None and "does not match" in refused.message
    assert check(botocore_signed(body, region="eu-west-1"), body) is not None
    assert check(botocore_signed(body), body, now=time.time() + 3600) is not None  # too old


def test_the_fake_refuses_unsigned_requests_as_aws_does() -> None:
    fake = bedrock.start_fake_bedrock()
    try:
        r = httpx.post(fake.url + URL_PATH, json={"messages": []})
        assert r.status_code == 403 and r.headers["x-amzn-errortype"].startswith("MissingAuthenticationToken")
        assert set(r.json()) == {"message"}
    finally:
        fake.stop()
