"""Shared fixtures of the unit tests."""

from __future__ import annotations

import fakeredis
import pytest
import responses

from depeg_processor.inbound.untrusted import REDIS_DECODING
from devnet.webapp import WebApp

from .helpers import CHAIN_ID, MESSAGE_HELPER


@pytest.fixture
def fake_redis() -> fakeredis.FakeRedis:
    return fakeredis.FakeRedis(**REDIS_DECODING)


@pytest.fixture
def node():
    """A node's JSON-RPC over HTTP, answered by the test (`responses`)."""
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        yield mock


@pytest.fixture
def webapp(fake_redis: fakeredis.FakeRedis) -> WebApp:
    return WebApp(redis=fake_redis, chain_id=CHAIN_ID, message_helper=MESSAGE_HELPER)


@pytest.fixture
def raw_redis(fake_redis: fakeredis.FakeRedis) -> fakeredis.FakeRedis:
    """The same in-memory Redis, as bytes: what users may write, as it is stored."""
    kwargs = fake_redis.connection_pool.connection_kwargs
    return fakeredis.FakeRedis(
        server=kwargs["server"], host=kwargs["host"], port=kwargs["port"], db=kwargs["db"]
    )
