"""The tests against the real depeg product: the session's chain with the product deployed
from the npm packages stands in for the fresh anvil and the test double of the other
integration tests."""

from __future__ import annotations

import pytest


@pytest.fixture
def anvil(real_product):
    """The session's chain with the real product, in place of a fresh anvil per test."""
    return real_product.anvil


@pytest.fixture
def product(real_product):
    """start_service reads the product's address from here."""
    return real_product
