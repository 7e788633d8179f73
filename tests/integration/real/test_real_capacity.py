"""More applications at once than a bundle's capital takes, on the real product, while blocks
come every 2 s so that many transactions are in flight together: as many become policies as
the capital allows, the rest are refused by underwriting (DP-016) before anything is sent, and
no transaction of ours reverts."""

from __future__ import annotations

from collections import Counter

import pytest

from devnet.webapp import ulid
from tests.conftest import wait_until
from tests.integration.conftest import dead_letters, wallet_nonce
from tests.integration.real_replicas import (
    describe,
    reverted,
    settled,
    start_replicas,
    submit_together,
)

pytestmark = pytest.mark.integration
APPLICATIONS, CAPACITY = 40, 24
BLOCK_SECONDS = 2


@pytest.mark.parametrize(
    "replicas", [pytest.param(1, id="one-wallet"), pytest.param(2, id="two-replicas-two-wallets")]
)
def test_applications_beyond_a_bundles_capital_are_refused_without_a_reverted_transaction(
    replicas, real_product, spawn, redis_server, redis_client, anvil
):
    bundle_id = real_product.new_bundle(CAPACITY)
    webapp = real_product.webapp(redis_client, bundle_id)
    applications = {ulid(): webapp.application() for _ in range(APPLICATIONS)}
    holders = {f["policyHolder"] for f in applications.values()}

    with real_product.interval_mining(BLOCK_SECONDS):
        start_block = anvil.block_number() + 1
        wallets = start_replicas(
            replicas,
            spawn=spawn,
            redis_server=redis_server,
            redis_client=redis_client,
            real_product=real_product,
        )
        nonces_before = [wallet_nonce(anvil, w) for w in wallets]
        submit_together(redis_client, applications)
        wait_until(
            lambda: settled(redis_client, applications),
            timeout=120,
            what="every application confirmed or set aside",
        )
    receipts = real_product.our_receipts(wallets, start_block)
    sent = sum(wallet_nonce(anvil, w) for w in wallets) - sum(nonces_before)

    policies = real_product.policies_of(holders, start_block)
    letters = dead_letters(redis_client)
    outcome = (
        f"{describe(receipts)}; {len(policies)} policies; dead letters "
        f"{dict(Counter(letter['kind'] for letter in letters.values()))}"
    )
    assert reverted(receipts) == [], outcome
    assert len(policies) == CAPACITY, outcome
    assert sent == CAPACITY, f"one transaction per policy: {sent} sent; {outcome}"
    insured = {p["policyHolder"] for p in policies}
    became = {e for e, f in applications.items() if f["policyHolder"] in insured}
    assert became.isdisjoint(letters) and became | set(letters) == set(applications), (
        "each application either a policy or a dead letter"
    )
    assert Counter(letter["kind"] for letter in letters.values()) == Counter(
        {"DP-016": APPLICATIONS - CAPACITY}
    ), [letter["reason"] for letter in letters.values()]
    assert all(
        "ERROR:DP-016:UNDERWRITING_FAILED" in letter["reason"] for letter in letters.values()
    )
