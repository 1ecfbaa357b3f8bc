"""Loopback fakes of the providers LiteLLM translates for: one of each per session, like `upstream`."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.fakes.bedrock import FakeBedrock, start_fake_bedrock
from tests.fakes.gemini import FakeGemini, start_fake_gemini
from tests.fakes.google_oauth import ServiceAccount


@pytest.fixture(scope="session")
def bedrock_fake() -> Iterator[FakeBedrock]:
    fake = start_fake_bedrock(slow_seconds=3.0)
    yield fake
    fake.stop()


@pytest.fixture(scope="session")
def gemini_fake() -> Iterator[FakeGemini]:
    fake = start_fake_gemini(slow_seconds=3.0)
    yield fake
    fake.stop()


@pytest.fixture(scope="session")
def vertex_account(gemini_fake: FakeGemini) -> ServiceAccount:
    """A throw-away service account whose grants the fake's token endpoint honours."""
    account = ServiceAccount.create("vertex-fake-project")
    gemini_fake.oauth.trust(account)
    return account
