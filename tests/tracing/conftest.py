"""A fake Langfuse (a real OTLP receiver on loopback) for the tracing tests that run a gateway."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.fakes.otlp_receiver import OtlpReceiver, start_otlp_receiver

PK, SK = "pk-lf-test-0001", "sk-lf-test-secret-0001"


@pytest.fixture
def receiver() -> Iterator[OtlpReceiver]:
    r = start_otlp_receiver(credentials=(PK, SK))
    yield r
    if r.running:
        r.stop()
