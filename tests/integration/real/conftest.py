"""The tests against the real depeg product: the session's chain with the product deployed
from the npm packages stands in for the fresh anvil and the test double of the other
integration tests."""

from __future__ import annotations

import pytest

from devnet.attacker import Attacker
from devnet.relay import Relay


@pytest.fixture
def anvil(real_product):
    """The session's chain with the real product, in place of a fresh anvil per test."""
    return real_product.anvil


@pytest.fixture
def product(real_product):
    """start_service reads the product's address from here."""
    return real_product


@pytest.fixture
def attack(real_product):
    """Start an Attacker (devnet.attacker) on the product's chain for `holders` (the web
    app's holders, with their keys); `options` are its own (allowance, shown, poll). Each is
    stopped at the end of the test."""
    started: list[Attacker] = []

    def start(holders: list, **options) -> Attacker:
        depeg = real_product.depeg
        attacker = Attacker(
            rpc_url=real_product.anvil.url,
            product=real_product.address,
            token=depeg.token.address,
            treasury=depeg.treasury,
            holders=holders,
            **options,
        )
        started.append(attacker.start())
        return attacker

    yield start
    for attacker in started:
        attacker.close()


@pytest.fixture
def private_relay(real_product):
    """Start a Relay (devnet.relay) in front of the product's chain; `options` are its own
    (block_time, max_blocks). It makes the blocks until the end of the test, then anvil
    automines again."""
    started: list[Relay] = []

    def start(**options) -> Relay:
        relay = Relay(real_product.anvil.url, **options)
        started.append(relay.start())
        return relay

    yield start
    for relay in started:
        relay.stop()
