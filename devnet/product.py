"""Deploy and steer the product test double (contracts/DepegProductDouble.sol) on anvil."""

from __future__ import annotations

import json
from pathlib import Path

from eth_account import Account
from eth_account.signers.local import LocalAccount
from web3 import HTTPProvider, Web3

BUILD = Path(__file__).resolve().parent.parent / "contracts" / "build"
Account.enable_unaudited_hdwallet_features()


def artifact(name: str) -> dict:
    return json.loads((BUILD / f"{name}.json").read_text())


class Product:
    """The deployed test double, driven by its owner."""

    def __init__(self, w3: Web3, address: str, owner: LocalAccount) -> None:
        self.w3 = w3
        self.address = address
        self.owner = owner
        self.contract = w3.eth.contract(address=address, abi=artifact("DepegProductDouble")["abi"])

    @classmethod
    def deploy(cls, rpc_url: str, owner: LocalAccount) -> Product:
        w3 = Web3(HTTPProvider(rpc_url))
        built = artifact("DepegProductDouble")
        factory = w3.eth.contract(abi=built["abi"], bytecode=built["bytecode"])
        tx = factory.constructor().build_transaction(
            {
                "from": owner.address,
                "nonce": w3.eth.get_transaction_count(owner.address, "pending"),
                "chainId": w3.eth.chain_id,
            }
        )
        receipt = cls._send(w3, owner, tx)
        return cls(w3, receipt["contractAddress"], owner)

    @staticmethod
    def _send(w3: Web3, owner: LocalAccount, tx: dict) -> dict:
        signed = owner.sign_transaction(tx)
        tx_hash = w3.eth.send_raw_transaction(signed.raw_transaction)
        receipt = w3.eth.wait_for_transaction_receipt(tx_hash, timeout=60, poll_latency=0.05)
        if receipt["status"] != 1:
            raise RuntimeError(f"transaction {tx_hash.hex()} reverted")
        return receipt

    def _owner_tx(self, fn, **fees: int) -> dict:
        return fn.build_transaction(
            {
                "from": self.owner.address,
                "chainId": self.w3.eth.chain_id,
                "nonce": self.w3.eth.get_transaction_count(self.owner.address, "pending"),
                **fees,
            }
        )

    def _owner_call(self, fn) -> dict:
        return self._send(self.w3, self.owner, self._owner_tx(fn))

    def send_first(self, fn) -> str:
        """Send an owner transaction without waiting, with a tip high enough to be ordered
        before the processor's transactions in the next block; returns its hash."""
        tx = self._owner_tx(fn, maxPriorityFeePerGas=100 * 10**9, maxFeePerGas=200 * 10**9)
        return self.w3.eth.send_raw_transaction(
            self.owner.sign_transaction(tx).raw_transaction
        ).to_0x_hex()

    def set_active(self, active: bool) -> None:
        self._owner_call(self.contract.functions.setActive(active))

    def close_bundle(self, bundle_id: int) -> None:
        self._owner_call(self.contract.functions.closeBundle(bundle_id))

    def open_bundle(self, bundle_id: int) -> None:
        self._owner_call(self.contract.functions.openBundle(bundle_id))

    def message_helper(self) -> str:
        return self.contract.functions.getMessageHelperAddress().call()

    def application_count(self) -> int:
        return self.contract.functions.applicationCount().call()

    def applications_created(self, from_block: int = 0) -> list[dict]:
        """The LogDepegApplicationCreated events, oldest first."""
        return [
            dict(e["args"])
            for e in self.contract.events.LogDepegApplicationCreated().get_logs(
                from_block=from_block
            )
        ]
