"""A session's anvil (chain id 1337) with the real depeg product on a GIF instance, deployed
once: about 90 transactions that take a few seconds, so no state snapshot is kept.

Tests that use it share the chain: each takes a bundle of its own (`new_bundle`) so the
capacity it counts on is not used up by another test, and reads the product's logs from the
block it started at.
"""

from __future__ import annotations

import contextlib
import dataclasses
import time
from collections.abc import Iterator

import pytest
import redis

from devnet.depeg import DAY, USD, Actors, Depeg, bundle_capital_for, deploy_depeg
from devnet.nodes import Anvil
from devnet.webapp import ProductWebApp, WebApp

CHAIN_ID = 1337  # the price data provider reverts its constructor on anvil's own 31337
ACTOR_ETH = 10**24
PROTECTED_BALANCE = 5_000 * USD  # inside the product's 2,000 to 1,000,000 tokens
DURATION = 30 * DAY


@dataclasses.dataclass
class RealProduct:
    """What a test needs of the real deployment."""

    anvil: Anvil
    depeg: Depeg

    @property
    def address(self) -> str:
        """The product's address (DEPEG_PRODUCT_ADDRESS)."""
        return self.depeg.product.address

    def message_helper(self) -> str:
        return self.depeg.product.functions.getMessageHelperAddress().call()

    def new_bundle(self, policies: int, protected_balance: int = PROTECTED_BALANCE) -> int:
        """A bundle whose capital underwrites exactly `policies` such policies."""
        return self.depeg.create_bundle(bundle_capital_for(policies, protected_balance))

    def webapp(
        self,
        client: redis.Redis,
        bundle_id: int,
        protected_balance: int = PROTECTED_BALANCE,
        duration: int = DURATION,
    ) -> ProductWebApp:
        """The web app, writing to `client`, for applications to `bundle_id`."""
        return ProductWebApp(
            WebApp(client, CHAIN_ID, self.message_helper()),
            self.depeg,
            bundle_id,
            protected_balance=protected_balance,
            duration=duration,
        )

    @contextlib.contextmanager
    def interval_mining(self, seconds: int | None) -> Iterator[None]:
        """A block every `seconds` (None: no blocks at all until `resume`), then automine
        again: what is sent in between stays in flight together."""
        self.anvil.rpc("anvil_setIntervalMining", seconds or 0)
        try:
            yield
        finally:
            self.anvil.rpc("anvil_setIntervalMining", 0)
            self.anvil.set_automine(True)

    def our_receipts(self, addresses: list[str], from_block: int) -> list[dict]:
        """The receipt of every transaction sent from `addresses` in the blocks from
        `from_block` on: what those wallets spent, reverted or not."""
        ours = {a.lower() for a in addresses}
        receipts = []
        for number in range(from_block, self.anvil.block_number() + 1):
            block = self.anvil.rpc("eth_getBlockByNumber", hex(number), True)
            for tx in block["transactions"]:
                if tx["from"].lower() in ours:
                    receipts.append(self.anvil.rpc("eth_getTransactionReceipt", tx["hash"]))
        return receipts

    def policies_of(self, holders: set[str], from_block: int) -> list[dict]:
        """The product's LogDepegApplicationCreated events for these policy holders."""
        return [e for e in self.applications_created(from_block) if e["policyHolder"] in holders]

    def applications_created(self, from_block: int = 0) -> list[dict]:
        return self.depeg.applications_created(from_block)

    def gas_used(self, tx_hash: str) -> int:
        return int(self.anvil.rpc("eth_getTransactionReceipt", tx_hash)["gasUsed"], 16)


@pytest.fixture(scope="session")
def real_product() -> Iterator[RealProduct]:
    actors = Actors()
    with Anvil(chain_id=CHAIN_ID) as node:
        for account in actors.all():
            node.set_balance(account.address, ACTOR_ETH)
        started = time.monotonic()
        depeg = deploy_depeg(node.url, actors)
        print(
            f"\nreal depeg product deployed: {depeg.t.transactions} transactions, "
            f"{depeg.t.gas_used:,} gas, {time.monotonic() - started:.1f} s "
            f"(GIF instance {depeg.instance.seconds:.1f} s)"
        )
        yield RealProduct(node, depeg)
