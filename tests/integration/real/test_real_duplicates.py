"""The same application stored again under new entity ids (same fields, same signature), on the
real product, while the first one's transaction is in flight or right behind it in the queue:
one signature succeeds once, so the copies are set aside as duplicates naming the application
they copy, none of them is sent, and no transaction of ours reverts."""

from __future__ import annotations

from collections import Counter

import pytest

from devnet.webapp import ulid
from tests.conftest import wait_until
from tests.integration.conftest import application, dead_letters, wallet_nonce
from tests.integration.real_replicas import (
    describe,
    reverted,
    settled,
    start_replicas,
    submit_together,
)

pytestmark = pytest.mark.integration
ORIGINALS, COPIED = 20, 5
BLOCK_SECONDS = 2


def names(letter: dict, entity_id: str) -> bool:
    """The letter names `entity_id` somewhere other than its own entity id."""
    return any(entity_id in value for key, value in letter.items() if key != "entityId")


@pytest.mark.parametrize("replicas", [1, 2], ids=["one-wallet", "two-replicas-two-wallets"])
@pytest.mark.parametrize("arrival", ["in-flight", "together"])
def test_copies_of_applications_are_set_aside_as_duplicates_and_never_sent(
    arrival, replicas, real_product, spawn, redis_server, redis_client, anvil
):
    """`in-flight`: the copies are enqueued once the originals are sent and before any block
    is mined; `together`: right behind the originals, in 2 s blocks from the start."""
    bundle_id = real_product.new_bundle(ORIGINALS)
    webapp = real_product.webapp(redis_client, bundle_id)
    originals = {ulid(): webapp.application() for _ in range(ORIGINALS)}
    copied = list(originals)[-COPIED:]  # the last ones: the first of them may be in flight
    copies = {ulid(): dict(originals[e]) for e in copied}
    original_of = dict(zip(copies, copied))

    # in-flight: no blocks until the copies are enqueued, so what was sent stays in flight
    with real_product.interval_mining(None if arrival == "in-flight" else BLOCK_SECONDS):
        start_block = anvil.block_number() + 1
        wallets = start_replicas(
            replicas,
            spawn=spawn,
            redis_server=redis_server,
            redis_client=redis_client,
            real_product=real_product,
            # in-flight: every original unmined at once, more than the default cap
            PROCESSOR_MAX_IN_FLIGHT=str(ORIGINALS),
        )
        nonces_before = [wallet_nonce(anvil, w) for w in wallets]
        if arrival == "together":
            submit_together(redis_client, originals | copies)
        else:
            submit_together(redis_client, originals)
            wait_until(
                lambda: all(application(redis_client, e).get("transactionHash") for e in copied),
                what="the applications to be copied sent",
            )
            submit_together(redis_client, copies)
            anvil.rpc("anvil_setIntervalMining", BLOCK_SECONDS)
        wait_until(
            lambda: settled(redis_client, [*originals, *copies]),
            timeout=120,
            what="every application confirmed or set aside",
        )
    receipts = real_product.our_receipts(wallets, start_block)
    sent = sum(wallet_nonce(anvil, w) for w in wallets) - sum(nonces_before)
    holders = {f["policyHolder"] for f in originals.values()}
    policies = real_product.policies_of(holders, start_block)
    letters = dead_letters(redis_client)
    outcome = (
        f"{describe(receipts)}; {len(policies)} policies; dead letters "
        f"{dict(Counter(letter['kind'] for letter in letters.values()))}"
    )

    assert reverted(receipts) == [], outcome
    assert sent == ORIGINALS, f"one transaction per original: {sent} sent; {outcome}"
    assert Counter(p["policyHolder"] for p in policies) == Counter(holders), outcome
    # of each pair exactly one is set aside, naming the other: the copy when it came after
    # its original was sent; arriving together, whichever a replica took second
    pairs = {copy: original_of[copy] for copy in copies}
    if arrival == "in-flight":
        assert set(letters) == set(copies), outcome
    for copy, original in pairs.items():
        [(aside, letter)] = [(e, letters[e]) for e in (copy, original) if e in letters]
        other = original if aside == copy else copy
        assert letter["kind"] == "duplicate", (letter["kind"], letter["reason"])
        assert names(letter, other), letter
    assert len(letters) == COPIED, outcome
