"""Shared fixtures of the unit tests."""
from __future__ import annotations

import fakeredis
import pytest

from depeg_processor.untrusted import REDIS_DECODING
from devnet.webapp import WebApp

from .helpers import CHAIN_ID, MESSAGE_HELPER


@pytest.fixture
def fake_redis() -> fakeredis.FakeRedis:
    return fakeredis.FakeRedis(**REDIS_DECODING)


@pytest.fixture
def webapp(fake_redis: fakeredis.FakeRedis) -> WebApp:
    return WebApp(redis=fake_redis, chain_id=CHAIN_ID, message_helper=MESSAGE_HELPER)
