"""Shared fixtures of the unit tests."""
from __future__ import annotations

import fakeredis
import pytest

from devnet.webapp import WebApp

from .helpers import CHAIN_ID, MESSAGE_HELPER


@pytest.fixture
def fake_redis() -> fakeredis.FakeRedis:
    return fakeredis.FakeRedis(decode_responses=True)


@pytest.fixture
def webapp(fake_redis: fakeredis.FakeRedis) -> WebApp:
    return WebApp(redis=fake_redis, chain_id=CHAIN_ID, message_helper=MESSAGE_HELPER)
