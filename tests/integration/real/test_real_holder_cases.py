"""What else a holder controls between the simulation and the block (issue 21), against the
processor and the real product: ten honest applications and four attacking holders (three
with one application each, one with three), a block every 4 s, three confirmations (so that a
resend would show), one wallet. Each attacker (devnet.attacker) watches the node's pool and
front-runs the processor's transaction for its holder's application, with a higher tip:

- `balance`: the holder sends its premium tokens to an address of its own (`DP-014`), which
  sends them back once that is mined;
- `signature`: that address sends the very same call (the signature is in the calldata), so
  the policy is created by its transaction and the processor's finds it used (`DMH-001`);
- `capital`: that address applies directly on the holder's bundle, which has room for one such
  policy, and takes its last capital (`DP-016`).

Each attacking holder costs the pool at most one paid revert, with the reason the mode says;
the honest applications land once each; no application is sent again; every attacked one ends
set aside with its reason (in the signature case its policy exists once, created by the
attacker's transaction); /metrics shows what the reverts cost, to the wei of their receipts.
"""

from __future__ import annotations

import collections

import pytest
from eth_abi import decode as abi_decode
from eth_account import Account

from devnet.attacker import APPLY_SELECTOR, APPLY_TYPES
from devnet.depeg import USD
from devnet.webapp import ulid
from tests.conftest import wait_until
from tests.integration.conftest import dead_letters
from tests.integration.real_replicas import (
    check_metrics_show_spend,
    describe,
    settled,
    start_replicas,
    submit_together,
)

pytestmark = pytest.mark.integration
HONEST = 10
ATTACKING = (1, 1, 1, 3)  # applications of each attacking holder
ALLOWANCE = 100 * USD
BLOCK_SECONDS = 4
CONFIRMATIONS = 3
# the revert on chain, and what simulating it again may say after the attacker put back what it
# could (the balance) or not (a used signature, capital taken)
EXPECTED = {
    "balance": ("ERROR:DP-014:BALANCE_TOO_LOW", ("DP-014", "would succeed now")),
    "signature": ("ERROR:DMH-001:SIGNATURE_USED", ("DMH-001", "SMH-001")),
    "capital": ("ERROR:DP-016:UNDERWRITING_FAILED", ("DP-016",)),
}
# issue 22 will set a signature used by someone else's transaction aside as "already applied"
ASIDE = {"reverted_on_chain", "holder_held", "already_applied"}
ERROR_SELECTOR = "0x08c379a0"


def applied_wallet(tx: dict, product: str) -> str | None:
    """The protected wallet of the application `tx` sends to `product` (each application
    has its own, so it names the application), or None when it sends none."""
    data = tx.get("input") or "0x"
    if tx.get("to", "").lower() != product.lower() or not data.startswith(APPLY_SELECTOR):
        return None
    return abi_decode(APPLY_TYPES, bytes.fromhex(data[10:]))[1].lower()


def revert_reason(anvil, tx_hash: str) -> str:
    """The Error(string) a mined transaction reverted with, from the node's call trace."""
    trace = anvil.rpc("debug_traceTransaction", tx_hash, {"tracer": "callTracer"})
    output = trace.get("output") or "0x"
    if output.startswith(ERROR_SELECTOR):
        return abi_decode(["string"], bytes.fromhex(output[10:]))[0]
    return f"{trace.get('error')} {output[:80]}"


def again(letter: dict) -> str:
    """What the letter of a reverted application says simulating it again gave."""
    if letter["kind"] != "reverted_on_chain":
        return ""
    return letter["reason"].rpartition("simulated again: ")[2]


def accomplice_of(real_product, mode: str):
    """The attacker's own address: ETH to send, and for `capital` premium tokens with the
    treasury's allowance for the policies it takes."""
    account = Account.create()
    real_product.anvil.set_balance(account.address, 10**19)
    if mode == "capital":
        depeg = real_product.depeg
        depeg.t.call(depeg.actors.operator, depeg.token, "transfer", account.address, 1000 * USD)
        depeg.t.call(account, depeg.token, "approve", depeg.treasury, 1000 * USD)
    return account


@pytest.mark.parametrize("mode", list(EXPECTED))
def test_each_holder_case_costs_the_pool_one_paid_revert_at_most(
    mode, real_product, spawn, redis_server, redis_client, anvil, attack
):
    depeg = real_product.depeg
    honest_app = real_product.webapp(
        redis_client, real_product.new_bundle(HONEST + sum(ATTACKING) + 2)
    )
    honest = {ulid(): honest_app.application() for _ in range(HONEST)}
    applications = dict(honest)
    holders, attacked = [], {}  # attacked: entity id -> its holder (lowercase)
    for count in ATTACKING:
        # capital: a bundle of its own per holder, with room for one of its applications
        webapp = honest_app
        if mode == "capital":
            webapp = real_product.webapp(redis_client, real_product.new_bundle(1))
        holder = webapp.new_holder(ALLOWANCE)
        holders.append(holder)
        for _ in range(count):
            entity_id = ulid()
            applications[entity_id] = webapp.application(holder)
            attacked[entity_id] = holder.address.lower()
        depeg.t.call(holder, depeg.token, "approve", depeg.treasury, ALLOWANCE)
    wallet_of = {e: f["protectedWallet"].lower() for e, f in applications.items()}
    accomplice = accomplice_of(real_product, mode)

    with real_product.interval_mining(BLOCK_SECONDS):
        start_block = anvil.block_number() + 1
        ports: list[int] = []
        wallets = start_replicas(
            1,
            spawn=spawn,
            redis_server=redis_server,
            redis_client=redis_client,
            real_product=real_product,
            ports=ports,
            CHAIN_MINUMUM_REQUIRED_CONFIRMATIONS=str(CONFIRMATIONS),
            # DP-016 reverts cost over 1 M gas each: the budget (its own test) stays out of it
            MAX_REVERTED_GAS_PER_HOUR=str(50_000_000),
        )
        attacker = attack(holders, allowance=ALLOWANCE, mode=mode, accomplice=accomplice)
        submit_together(redis_client, applications)
        wait_until(
            lambda: settled(redis_client, applications),
            timeout=300,
            what="every application confirmed or set aside",
        )
        anvil.mine(CONFIRMATIONS + 1)  # a resend, if any, would be mined by now

    receipts = real_product.our_receipts(wallets, start_block)
    sent = collections.Counter()  # protected wallet -> our mined transactions for it
    paid = collections.defaultdict(list)  # attacking holder -> gas of each revert it caused
    reasons = {}
    for receipt in receipts:
        tx = anvil.rpc("eth_getTransactionByHash", receipt["transactionHash"])
        wallet = applied_wallet(tx, real_product.address)
        sent[wallet] += 1
        if receipt["status"] != "0x1":
            holder = next((attacked[e] for e, w in wallet_of.items() if w == wallet), "?")
            paid[holder].append(int(receipt["gasUsed"], 16))
            reasons[receipt["transactionHash"]] = revert_reason(anvil, receipt["transactionHash"])
    letters = dead_letters(redis_client)
    policies = real_product.policies_of(
        {f["policyHolder"] for f in applications.values()}, start_block
    )
    by_wallet = collections.defaultdict(list)  # protected wallet -> its policies' senders
    for policy in policies:
        tx = anvil.rpc("eth_getTransactionByHash", policy["transactionHash"])
        by_wallet[policy["protectedWallet"].lower()].append(tx["from"].lower())
    outcome = (
        f"[{mode}] {describe(receipts)}; paid reverts by holder {dict(paid)}; reverts "
        f"{sorted(set(reasons.values()))}; attacker sent {len(attacker.approvals)} front-runs, "
        f"{len(attacker.restores)} restores, errors {attacker.errors}; dead letters "
        f"{dict(collections.Counter(letter['kind'] for letter in letters.values()))}, "
        f"simulated again: {sorted({again(letter) for letter in letters.values()} - {''})}"
    )
    print(f"\n{outcome}")

    assert attacker.approvals and attacker.errors == [], outcome
    check_metrics_show_spend(receipts, ports)
    assert set(paid) <= set(attacked.values()), f"only attackers' reverts; {outcome}"
    assert all(len(gas) <= 1 for gas in paid.values()), f"one revert per holder; {outcome}"
    assert set(reasons.values()) == {EXPECTED[mode][0]}, outcome
    assert all(n == 1 for n in sent.values()), f"no application sent again; {sent}"
    for entity_id in honest:
        assert by_wallet[wallet_of[entity_id]] == [wallets[0].lower()], outcome
    assert set(letters) <= set(attacked), f"only attacked applications set aside; {outcome}"
    assert paid, f"no attack won its race; {outcome}"
    for entity_id, holder in attacked.items():
        wallet = wallet_of[entity_id]
        if entity_id not in letters:  # its attack lost the race: it landed once, sent by us
            assert by_wallet[wallet] == [wallets[0].lower()], (entity_id, by_wallet[wallet])
            continue
        letter = letters[entity_id]
        assert letter["kind"] in ASIDE, (letter["kind"], letter["reason"])
        if letter["kind"] == "holder_held":
            assert holder in letter["reason"] and "reverted on chain" in letter["reason"]
            assert sent[wallet] == 0, "a held application is never sent"
        elif letter["kind"] == "reverted_on_chain":
            assert sent[wallet] == 1 and "reverted on chain" in letter["reason"]
            assert any(code in letter["reason"] for code in EXPECTED[mode][1]), letter["reason"]
        # the policy exists once where the attacker sent the call itself, else not at all
        expected = [accomplice.address.lower()] if mode == "signature" and sent[wallet] else []
        assert by_wallet[wallet] == expected, (entity_id, by_wallet[wallet], outcome)
