"""Deploy a GIF 2.0 instance (Etherisc's insurance platform the depeg product runs on) from the
brownie artifacts that the pinned `@etherisc/gif-contracts` npm package ships.

Nothing is compiled here and no contract code lives in this repository: each contract's ABI and
creation bytecode are read from node_modules when a deployment runs. The order follows the
package's own deploy scripts: the registry behind a `CoreProxy`, the two instance tokens, the
modules and services (each controller behind its own `CoreProxy`, registered under its name and
`<name>Controller`), and the `InstanceOperatorService` last, because registering it replaces the
deployer as the only account the registry takes registrations from.
"""

from __future__ import annotations

import dataclasses
import json
import re
import time
from functools import cache
from pathlib import Path
from typing import Any

from eth_abi import encode as abi_encode
from eth_account.signers.local import LocalAccount
from web3 import HTTPProvider, Web3
from web3.contract import Contract

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ROOT / "node_modules" / "@etherisc"
GIF_RELEASE = "2.0.0"
# modules and services behind a proxy, in the order their initialisers need each other
PROXIED_MODULES = (
    ("Access", "AccessController"),
    ("Component", "ComponentController"),
    ("Query", "QueryModule"),
    ("License", "LicenseController"),
    ("Policy", "PolicyController"),
    ("Bundle", "BundleController"),
    ("Pool", "PoolController"),
    ("Treasury", "TreasuryModule"),
)
PROXIED_SERVICES = (
    ("InstanceService", "InstanceService"),
    ("ComponentOwnerService", "ComponentOwnerService"),
    ("OracleService", "OracleService"),
    ("RiskpoolService", "RiskpoolService"),
)
LIBRARY_PLACEHOLDER = re.compile(r"__([A-Za-z0-9_$]+?)_*(?=[0-9a-fA-F]|$)")


def b32(text: str) -> bytes:
    """A registry name: ASCII, right-padded with zero bytes to 32 (brownie's `s2b32`)."""
    raw = text.encode("ascii")[:32]
    return raw.ljust(32, b"\0")


@cache
def artifact(package: str, name: str) -> dict:
    """ABI and creation bytecode of `name` from `node_modules/@etherisc/<package>`."""
    path = PACKAGES / package / "build" / "contracts" / f"{name}.json"
    if not path.is_file():
        raise RuntimeError(f"{path} missing: run `make install` (npm ci) first")
    built = json.loads(path.read_text())
    return {"abi": built["abi"], "bytecode": built["bytecode"]}


def link(bytecode: str, libraries: dict[str, str]) -> str:
    """Substitute deployed library addresses for solc's 40-character `__Name___…` placeholders;
    an unlinked placeholder left over is an error, not something to deploy."""
    code = bytecode.removeprefix("0x")
    for name, address in libraries.items():
        placeholder = f"__{name}".ljust(40, "_")[:40]
        code = code.replace(placeholder, address.removeprefix("0x").lower())
    if "__" in code:
        missing = sorted(set(LIBRARY_PLACEHOLDER.findall(code)))
        raise RuntimeError(f"bytecode needs libraries {missing}: deploy and link them first")
    return "0x" + code


def _bytes_if_hex(abi_type: str, value: Any) -> Any:
    """web3 hands calldata out as 0x-hex; the ABI encoder wants bytes for `bytes` values."""
    if abi_type.startswith("bytes") and isinstance(value, str):
        return bytes.fromhex(value.removeprefix("0x"))
    return value


@dataclasses.dataclass
class Transactor:
    """Sends signed transactions one at a time and waits for each receipt, counting what they
    cost: a deployment is a chain of steps where each depends on the one before."""

    w3: Web3
    max_fee_per_gas: int = 100 * 10**9
    priority_fee_per_gas: int = 10**9
    transactions: int = 0
    gas_used: int = 0
    _nonces: dict[str, int] = dataclasses.field(default_factory=dict)

    @classmethod
    def connect(cls, rpc_url: str) -> Transactor:
        return cls(Web3(HTTPProvider(rpc_url, request_kwargs={"timeout": 60})))

    def forget_nonces(self) -> None:
        """The chain went back (a snapshot restored): read each sender's nonce again."""
        self._nonces.clear()

    def _next_nonce(self, address: str) -> int:
        if address not in self._nonces:
            self._nonces[address] = self.w3.eth.get_transaction_count(address, "pending")
        nonce = self._nonces[address]
        self._nonces[address] += 1
        return nonce

    def send(self, sender: LocalAccount, tx: dict) -> dict:
        """Sign `tx` (to/data/value) as `sender`, send it, return its receipt; raise on revert."""
        tx = {
            "from": sender.address,
            "chainId": self.w3.eth.chain_id,
            "maxFeePerGas": self.max_fee_per_gas,
            "maxPriorityFeePerGas": self.priority_fee_per_gas,
            **tx,
        }
        if "gas" not in tx:
            tx["gas"] = int(self.w3.eth.estimate_gas(tx) * 1.2) + 10_000
        tx["nonce"] = self._next_nonce(sender.address)
        tx.pop("from")
        raw = sender.sign_transaction(tx).raw_transaction
        tx_hash = self.w3.eth.send_raw_transaction(raw)
        receipt = self.w3.eth.wait_for_transaction_receipt(tx_hash, timeout=120, poll_latency=0.02)
        self.transactions += 1
        self.gas_used += receipt["gasUsed"]
        if receipt["status"] != 1:
            raise RuntimeError(f"transaction {tx_hash.hex()} reverted")
        return receipt

    def call(self, sender: LocalAccount, contract: Contract, function: str, *args: Any) -> dict:
        """Send `contract.function(*args)` as `sender`; returns the receipt."""
        data = contract.encode_abi(function, args=list(args))
        return self.send(sender, {"to": contract.address, "data": data})

    def deploy(
        self,
        sender: LocalAccount,
        package: str,
        name: str,
        *args: Any,
        libraries: dict[str, str] | None = None,
    ) -> Contract:
        built = artifact(package, name)
        inputs = next((e["inputs"] for e in built["abi"] if e["type"] == "constructor"), [])
        types = [i["type"] for i in inputs]
        values = [_bytes_if_hex(k, v) for k, v in zip(types, args)]
        encoded = abi_encode(types, values).hex()
        data = link(built["bytecode"], libraries or {}) + encoded
        receipt = self.send(sender, {"data": data})
        return self.at(package, name, receipt["contractAddress"])

    def at(self, package: str, name: str, address: str) -> Contract:
        return self.w3.eth.contract(address=address, abi=artifact(package, name)["abi"])


@dataclasses.dataclass
class GifInstance:
    """A deployed instance: the registry and the services the depeg product set-up talks to,
    each bound to its proxy's address with its controller's ABI."""

    transactor: Transactor
    operator: LocalAccount
    registry: Contract
    instance_service: Contract
    instance_operator_service: Contract
    component_owner_service: Contract
    riskpool_service: Contract
    treasury: Contract
    seconds: float = 0.0

    def contract(self, name: str) -> str:
        return self.registry.functions.getContract(b32(name)).call()


def _proxied(t: Transactor, operator: LocalAccount, registry: str, name: str, controller: str):
    """A controller behind a `CoreProxy` whose constructor runs `initialize(registry)`,
    registered as `<name>Controller` (cut to 32 bytes) and `<name>`."""
    logic = t.deploy(operator, "gif-contracts", controller)
    init = logic.encode_abi("initialize", args=[registry])
    proxy = t.deploy(operator, "gif-contracts", "CoreProxy", logic.address, init)
    registry_contract = t.at("gif-contracts", "RegistryController", registry)
    for key, address in ((f"{name}Controller", logic.address), (name, proxy.address)):
        t.call(operator, registry_contract, "register", b32(key), address)
    return t.at("gif-contracts", controller, proxy.address)


def deploy_instance(
    rpc_url: str, operator: LocalAccount, instance_wallet: str, transactor: Transactor | None = None
) -> GifInstance:
    """Deploy a complete GIF instance operated by `operator`, whose fees go to
    `instance_wallet`. About 65 transactions; `operator` needs the ETH for them."""
    started = time.monotonic()
    t = transactor or Transactor.connect(rpc_url)
    controller = t.deploy(operator, "gif-contracts", "RegistryController")
    init = controller.encode_abi("initializeRegistry", args=[b32(GIF_RELEASE)])
    proxy = t.deploy(operator, "gif-contracts", "CoreProxy", controller.address, init)
    registry = t.at("gif-contracts", "RegistryController", proxy.address)
    t.call(operator, registry, "register", b32("Registry"), proxy.address)
    t.call(operator, registry, "register", b32("RegistryController"), controller.address)

    for token in ("BundleToken", "RiskpoolToken"):
        deployed = t.deploy(operator, "gif-contracts", token)
        t.call(operator, registry, "register", b32(token), deployed.address)

    proxied = {}
    for name, logic in PROXIED_MODULES:
        proxied[name] = _proxied(t, operator, registry.address, name, logic)
    # PolicyDefaultFlow and ProductService are plain contracts, registered under their NAME
    flow = t.deploy(operator, "gif-contracts", "PolicyDefaultFlow", registry.address)
    t.call(operator, registry, "register", flow.functions.NAME().call(), flow.address)
    for name, logic in PROXIED_SERVICES:
        proxied[name] = _proxied(t, operator, registry.address, name, logic)
    service = t.deploy(operator, "gif-contracts", "ProductService", registry.address)
    t.call(operator, registry, "register", service.functions.NAME().call(), service.address)
    # last: from here on registrations go through the instance operator service
    operator_service = _proxied(
        t, operator, registry.address, "InstanceOperatorService", "InstanceOperatorService"
    )
    t.call(operator, operator_service, "setInstanceWallet", instance_wallet)
    return GifInstance(
        transactor=t,
        operator=operator,
        registry=registry,
        instance_service=proxied["InstanceService"],
        instance_operator_service=operator_service,
        component_owner_service=proxied["ComponentOwnerService"],
        riskpool_service=proxied["RiskpoolService"],
        treasury=proxied["Treasury"],
        seconds=time.monotonic() - started,
    )
