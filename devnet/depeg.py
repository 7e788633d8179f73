"""Deploy the real depeg product (`@etherisc/depeg-contracts`, from its shipped artifacts) on a
GIF instance: the two test tokens, the USDC price data provider, the riskpool, the message
helper and the product, then funded bundles.

The steps and their order are those of the package's own deploy scripts: each component is
deployed by an account that holds the instance's role for it, proposed through the component
owner service and approved by the instance operator; fees are set by the instance operator.
The price data provider only deploys on chain ids it treats as test chains (1337 on anvil).
"""

from __future__ import annotations

import dataclasses
import time

from eth_account import Account
from eth_account.signers.local import LocalAccount
from web3.contract import Contract
from web3.logs import DISCARD

from devnet.gif import GifInstance, Transactor, b32, deploy_instance
from devnet.nodes import TEST_MNEMONIC

Account.enable_unaudited_hdwallet_features()
DAY = 24 * 3600
USD = 10**6  # both test tokens have 6 decimals
ONE_DOLLAR = 10**8  # the price feed's 8 decimals
APR_FULL = 10**6  # DepegRiskpool's APR_100_PERCENTAGE
SUM_INSURED_PERCENTAGE = 100  # a policy's sum insured is its whole protected balance
POOL_CAPITAL_CAP = 10_000_000 * USD  # the riskpool's sum-insured cap; a bundle gets a tenth
MAX_ACTIVE_BUNDLES = 50  # a bundle per test that wants its own capacity
PREMIUM_FIXED_FEE = 3  # token units, as the package's scripts set them
PREMIUM_FRACTION = 10  # percent


def _account(index: int) -> LocalAccount:
    return Account.from_mnemonic(TEST_MNEMONIC, account_path=f"m/44'/60'/0'/0/{index}")


@dataclasses.dataclass(frozen=True)
class Actors:
    """The deployment's parties, clear of the first ten accounts that tests give to
    processors and the test double's owner."""

    operator: LocalAccount = dataclasses.field(default_factory=lambda: _account(20))
    instance_wallet: LocalAccount = dataclasses.field(default_factory=lambda: _account(21))
    riskpool_keeper: LocalAccount = dataclasses.field(default_factory=lambda: _account(22))
    riskpool_wallet: LocalAccount = dataclasses.field(default_factory=lambda: _account(23))
    investor: LocalAccount = dataclasses.field(default_factory=lambda: _account(24))
    product_owner: LocalAccount = dataclasses.field(default_factory=lambda: _account(25))

    def all(self) -> list[LocalAccount]:
        return [getattr(self, f.name) for f in dataclasses.fields(self)]


@dataclasses.dataclass
class Depeg:
    """A deployed depeg product with everything around it; the token owner is the operator."""

    instance: GifInstance
    actors: Actors
    protected_token: Contract  # "USDC"
    token: Contract  # "USDT": premiums and capital
    price_data_provider: Contract
    riskpool: Contract
    message_helper: Contract
    product: Contract
    bundle_ids: list[int] = dataclasses.field(default_factory=list)
    seconds: float = 0.0

    @property
    def t(self) -> Transactor:
        return self.instance.transactor

    @property
    def treasury(self) -> str:
        """Where policy holders and investors give their allowance."""
        return self.instance.instance_service.functions.getTreasuryAddress().call()

    def premium(self, protected_balance: int, duration: int, bundle_id: int) -> int:
        """The premium the product charges (and checks balance and allowance for):
        the bundle's net premium for the sum insured, plus the product's premium fees."""
        sum_insured = self.riskpool.functions.calculateSumInsured(protected_balance).call()
        net = self.product.functions.calculateNetPremium(sum_insured, duration, bundle_id).call()
        return self.product.functions.calculatePremium(net).call()

    def create_bundle(
        self,
        capital: int,
        *,
        riskpool: Contract | None = None,
        name: str | None = None,
        min_protected: int = 2_000 * USD,
        max_protected: int = 100_000 * USD,
        min_duration: int = 14 * DAY,
        max_duration: int = 120 * DAY,
        apr_percent: float = 5.0,
        lifetime: int = 180 * DAY,
    ) -> int:
        """A bundle funded with `capital` premium tokens by the investor; returns its id.
        Capital fees are zero, so the bundle's capital is exactly `capital`."""
        investor = self.actors.investor
        self.t.call(self.actors.operator, self.token, "transfer", investor.address, capital)
        self.t.call(investor, self.token, "approve", self.treasury, capital)
        apr = int(APR_FULL * apr_percent / 100)
        riskpool = riskpool or self.riskpool
        receipt = self.t.call(
            investor,
            riskpool,
            "createBundle",
            name or f"bundle-{len(self.bundle_ids) + 1}",
            lifetime,
            min_protected,
            max_protected,
            min_duration,
            max_duration,
            apr,
            capital,
        )
        event = riskpool.events.LogRiskpoolBundleCreated()
        events = event.process_receipt(receipt, errors=DISCARD)  # other contracts' logs too
        bundle_id = events[0]["args"]["bundleId"]
        self.bundle_ids.append(bundle_id)
        return bundle_id

    def add_riskpool(self, name: str) -> Contract:
        """Another riskpool on the instance, set up as the product's own, with a product of
        its own (`<name>Product`: without one the treasury knows no token for the riskpool
        and refuses its bundles' capital). Its bundles are ones this product must refuse
        (DP-013)."""
        riskpool = _riskpool(self.instance, self.actors, self.token, name)
        riskpool_id = riskpool.functions.getId().call()
        provider, token = self.price_data_provider, self.token
        _product(self.instance, self.actors, provider, token, riskpool_id, f"{name}Product")
        return riskpool

    def applications_created(self, from_block: int = 0) -> list[dict]:
        """The product's LogDepegApplicationCreated events, oldest first, with their
        transaction hash."""
        return [
            {**dict(e["args"]), "transactionHash": e["transactionHash"].to_0x_hex()}
            for e in self.product.events.LogDepegApplicationCreated().get_logs(
                from_block=from_block
            )
        ]


def bundle_capital_for(policies: int, protected_balance: int) -> int:
    """Capital that collateralises exactly `policies` policies of `protected_balance` each:
    the riskpool underwrites only while its capital stays strictly above what is locked plus
    the new policy's collateral, so half a policy more leaves room for `policies` and no more."""
    sum_insured = protected_balance * SUM_INSURED_PERCENTAGE // 100
    return policies * sum_insured + sum_insured // 2


def _fees(inst: GifInstance, component_id: int, fixed: int, percent: int):
    full = inst.instance_service.functions.getFeeFractionFullUnit().call()
    ios = inst.instance_operator_service
    return ios.functions.createFeeSpecification(
        component_id, fixed, full * percent // 100, b""
    ).call({"from": inst.operator.address})


def _riskpool(inst: GifInstance, a: Actors, token: Contract, name: str) -> Contract:
    """A DepegRiskpool named `name` by the riskpool keeper (who holds the keeper role),
    approved, with its wallet and zero capital fees set."""
    t, ios = inst.transactor, inst.instance_operator_service
    riskpool = t.deploy(
        a.riskpool_keeper,
        "depeg-contracts",
        "DepegRiskpool",
        b32(name),
        POOL_CAPITAL_CAP,
        SUM_INSURED_PERCENTAGE,
        token.address,
        a.riskpool_wallet.address,
        inst.registry.address,
    )
    t.call(a.riskpool_keeper, inst.component_owner_service, "propose", riskpool.address)
    riskpool_id = riskpool.functions.getId().call()
    t.call(a.operator, ios, "approve", riskpool_id)
    t.call(a.riskpool_keeper, riskpool, "setMaximumNumberOfActiveBundles", MAX_ACTIVE_BUNDLES)
    t.call(a.operator, ios, "setRiskpoolWallet", riskpool_id, a.riskpool_wallet.address)
    t.call(a.operator, ios, "setCapitalFees", _fees(inst, riskpool_id, 0, 0))
    return riskpool


def _product(
    inst: GifInstance,
    a: Actors,
    provider: Contract,
    token: Contract,
    riskpool_id: int,
    name: str,
) -> tuple[Contract, Contract]:
    """A DepegProduct named `name` on riskpool `riskpool_id` with a message helper of its own,
    by the product owner, approved, its token set (which also sets the riskpool's: the
    treasury learns a riskpool's token from its product). Returns (product, helper)."""
    t, ios = inst.transactor, inst.instance_operator_service
    helper = t.deploy(a.product_owner, "depeg-contracts", "DepegMessageHelper")
    product = t.deploy(
        a.product_owner,
        "depeg-contracts",
        "DepegProduct",
        b32(name),
        provider.address,
        token.address,
        inst.registry.address,
        riskpool_id,
        helper.address,
    )
    t.call(a.product_owner, inst.component_owner_service, "propose", product.address)
    product_id = product.functions.getId().call()
    t.call(a.operator, ios, "approve", product_id)
    t.call(a.operator, ios, "setProductToken", product_id, token.address)
    return product, helper


def deploy_depeg(
    rpc_url: str, actors: Actors | None = None, *, bundles: tuple[int, ...] = ()
) -> Depeg:
    """Deploy an instance and the depeg product on it, then one bundle per capital amount in
    `bundles`. Every actor needs ETH first (on anvil: `anvil_setBalance`)."""
    started = time.monotonic()
    a = actors or Actors()
    inst = deploy_instance(rpc_url, a.operator, a.instance_wallet.address)
    t, ios, service = inst.transactor, inst.instance_operator_service, inst.instance_service

    usdc = t.deploy(a.operator, "depeg-contracts", "USD1")
    usdt = t.deploy(a.operator, "depeg-contracts", "USD2")
    provider = t.deploy(a.product_owner, "depeg-contracts", "UsdcPriceDataProvider", usdc.address)
    now = t.w3.eth.get_block("latest")["timestamp"]
    t.call(a.product_owner, provider, "addRoundData", ONE_DOLLAR, now)

    keeper_role = service.functions.getRiskpoolKeeperRole().call()
    t.call(a.operator, ios, "grantRole", keeper_role, a.riskpool_keeper.address)
    riskpool = _riskpool(inst, a, usdt, "DepegRiskpool")
    riskpool_id = riskpool.functions.getId().call()

    owner_role = service.functions.getProductOwnerRole().call()
    t.call(a.operator, ios, "grantRole", owner_role, a.product_owner.address)
    product, helper = _product(inst, a, provider, usdt, riskpool_id, "DepegProduct")
    premium_fees = _fees(
        inst, product.functions.getId().call(), PREMIUM_FIXED_FEE, PREMIUM_FRACTION
    )
    t.call(a.operator, ios, "setPremiumFees", premium_fees)
    t.call(a.product_owner, product, "processLatestPriceInfo")  # the 1.00 round: stays active

    # the riskpool wallet's allowance is what payouts and withdrawals are taken from
    t.call(a.riskpool_wallet, usdt, "approve", inst.treasury.address, 2**256 - 1)
    depeg = Depeg(inst, a, usdc, usdt, provider, riskpool, helper, product)
    for capital in bundles:
        depeg.create_bundle(capital)
    depeg.seconds = time.monotonic() - started
    return depeg
