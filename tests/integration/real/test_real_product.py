"""The processor against the real depeg product on a GIF instance (not the test double):
applications made the web app's way, premium approved first, each land exactly once; what the
product refuses is set aside without a transaction."""

from __future__ import annotations

import statistics
from collections import Counter

import pytest

from tests.conftest import wait_until
from tests.integration.conftest import (
    application,
    dead_letters,
    receipt,
    service_env,
    wallet_nonce,
)

pytestmark = pytest.mark.integration
APPLICATIONS_WITH_COPIES = 20
CONFIRMATIONS = 3


@pytest.mark.parametrize("applications", [10, 50])
def test_applications_made_the_web_apps_way_land_exactly_once(
    applications, real_product, start_service, redis_client, anvil
):
    bundle_id = real_product.new_bundle(applications)
    webapp = real_product.webapp(redis_client, bundle_id)
    submitted = {}
    for _ in range(applications):
        fields = webapp.application()
        submitted[webapp.submit(fields)] = fields
    start_block = anvil.block_number() + 1
    nonce_before = wallet_nonce(anvil)
    policies_before = real_product.depeg.product.functions.policies().call()

    start_service(min_confirmations=CONFIRMATIONS)
    # automine makes a block per transaction, so those sent first are confirmed and purged
    # while later ones are sent: what each became is read from its done marker at the end
    wait_until(
        lambda: wallet_nonce(anvil) >= nonce_before + applications,
        timeout=60,
        what="a transaction mined for every application",
    )
    anvil.mine(CONFIRMATIONS - 1)  # these confirm the last
    wait_until(
        lambda: not any(application(redis_client, e) for e in submitted),
        timeout=60,
        what="every application confirmed and purged",
    )
    hashes = [redis_client.get(f"application:signatures:done:{e}") for e in submitted]
    assert all(hashes), "a done marker with its transaction for each"

    events = real_product.applications_created(from_block=start_block)
    holders = Counter(e["policyHolder"] for e in events)
    assert holders == Counter(f["policyHolder"] for f in submitted.values()), "one each"
    assert sorted(e["protectedWallet"] for e in events) == sorted(
        f["protectedWallet"] for f in submitted.values()
    )
    assert sorted(e["transactionHash"] for e in events) == sorted(hashes)
    assert all(int(receipt(anvil, h)["status"], 16) == 1 for h in hashes)
    assert real_product.depeg.product.functions.policies().call() == policies_before + applications
    assert wallet_nonce(anvil) == nonce_before + applications, "one transaction each"
    assert dead_letters(redis_client) == {}
    assert (
        redis_client.xpending("application:signatures", "depeg-backend-processor")["pending"] == 0
    )

    gas = sorted(real_product.gas_used(h) for h in hashes)
    print(
        f"\ngas per application ({len(gas)}): min {gas[0]:,}, "
        f"median {int(statistics.median(gas)):,}, max {gas[-1]:,}"
    )


def test_the_entry_point_sets_aside_what_the_real_product_refuses(
    real_product, spawn, redis_server, redis_client, anvil
):
    """`python -m depeg_processor` as deployed (environment variables only): the real
    product's own checks end up as dead letters with its revert strings, and no gas is spent
    on them; the good applications around them go through."""
    bundle_id = real_product.new_bundle(2)
    webapp = real_product.webapp(redis_client, bundle_id)
    depeg = real_product.depeg
    premium = depeg.premium(webapp.protected_balance, webapp.duration, bundle_id)
    terms = dict(
        protected_balance=webapp.protected_balance, duration=webapp.duration, bundle_id=bundle_id
    )
    reused = webapp.application()
    goods = [webapp.submit(reused), webapp.apply()]
    bads = {
        "signature-used": webapp.submit(dict(reused)),
        "no-allowance": webapp.submit(
            webapp.webapp.application(webapp.new_holder(premium), **terms)
        ),
        "no-bundle": webapp.submit(webapp.webapp.application(**{**terms, "bundle_id": 999})),
    }
    nonce_before = wallet_nonce(anvil)
    spawn(service_env(redis_server.url, anvil.url, real_product.address))
    wait_until(
        lambda: (
            len(dead_letters(redis_client)) == len(bads)
            and not any(application(redis_client, e) for e in goods)
        ),
        timeout=60,
        what="good applications confirmed, bad ones dead-lettered",
    )
    # the bundle is full now: a third policy is refused by underwriting
    bads["bundle-full"] = webapp.apply()
    wait_until(
        lambda: len(dead_letters(redis_client)) == len(bads), what="over-capacity dead letter"
    )

    letters = dead_letters(redis_client)
    expected = {
        "signature-used": f"duplicate of application {goods[0]}",
        "no-allowance": "ERROR:DP-015:ALLOWANCE_TOO_LOW",
        "no-bundle": "ERROR:BUC-060:BUNDLE_DOES_NOT_EXIST",
        "bundle-full": "ERROR:DP-016:UNDERWRITING_FAILED",
    }
    for name, fragment in expected.items():
        assert fragment in letters[bads[name]]["reason"], (name, letters[bads[name]]["reason"])
    assert letters[bads["signature-used"]]["kind"] == "duplicate"
    assert letters[bads["no-bundle"]]["kind"] == "BUC-060", "the framework's code is a kind"
    assert wallet_nonce(anvil) == nonce_before + len(goods), "no gas spent on a refused one"


def test_copies_under_new_entity_ids_are_set_aside_as_duplicates_and_cost_nothing(
    real_product, start_service, redis_client, anvil
):
    """20 applications, then 5 of them stored again by the web app under new entity ids (the
    same fields, the same signature) while the originals wait for their confirmations: every
    transaction sent succeeds, one per original, and each copy is a `duplicate` dead letter
    naming its original and the original's transaction."""
    bundle_id = real_product.new_bundle(APPLICATIONS_WITH_COPIES)
    webapp = real_product.webapp(redis_client, bundle_id)
    originals = {}
    for _ in range(APPLICATIONS_WITH_COPIES):
        fields = webapp.application()
        originals[webapp.submit(fields)] = fields
    start_block, nonce_before = anvil.block_number() + 1, wallet_nonce(anvil)
    start_service(min_confirmations=CONFIRMATIONS)

    def sent_as(entity_id: str) -> str | None:  # confirmed ones are purged: their done marker
        return application(redis_client, entity_id).get("transactionHash") or redis_client.get(
            f"application:signatures:done:{entity_id}"
        )

    hashes = wait_until(
        lambda: all(sent_as(e) for e in originals) and {e: sent_as(e) for e in originals},
        timeout=60,
        what="every original sent",
    )
    copied = list(originals)[::4]
    copies = {webapp.submit(dict(originals[e])): e for e in copied}
    wait_until(
        lambda: len(dead_letters(redis_client)) == len(copies),
        timeout=60,
        what="every copy dead-lettered",
    )
    wait_until(lambda: all(receipt(anvil, h) for h in hashes.values()), what="receipts")
    anvil.mine(CONFIRMATIONS)
    wait_until(
        lambda: not any(application(redis_client, e) for e in originals),
        timeout=60,
        what="every original confirmed and purged",
    )

    assert all(int(receipt(anvil, h)["status"], 16) == 1 for h in hashes.values())
    assert wallet_nonce(anvil) == nonce_before + APPLICATIONS_WITH_COPIES, "nothing reverted"
    letters = dead_letters(redis_client)
    assert set(letters) == set(copies)
    for copy, original in copies.items():
        letter = letters[copy]
        assert letter["kind"] == "duplicate", letter
        assert f"application {original}" in letter["reason"], letter["reason"]
        assert hashes[original] in letter["reason"], letter["reason"]
    events = real_product.applications_created(from_block=start_block)
    assert sorted(e["transactionHash"] for e in events) == sorted(hashes.values())


def test_applications_beyond_the_bundles_capacity_in_one_batch_cost_no_gas(
    real_product, start_service, redis_client, anvil
):
    bundle_id = real_product.new_bundle(2)
    webapp = real_product.webapp(redis_client, bundle_id)
    entity_ids = [webapp.apply() for _ in range(3)]  # waiting together: one batch
    nonce_before = wallet_nonce(anvil)
    start_service()
    wait_until(
        lambda: (
            len(dead_letters(redis_client)) == 1
            and not any(application(redis_client, e) for e in entity_ids)
        ),
        timeout=60,
        what="two confirmed, one dead-lettered",
    )
    (letter,) = dead_letters(redis_client).values()
    assert "ERROR:DP-016:UNDERWRITING_FAILED" in letter["reason"]
    assert wallet_nonce(anvil) == nonce_before + 2, letter["reason"]
