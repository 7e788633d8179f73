"""Deploy the product test double for docker-compose.yml's local chain (idempotent).

python -m devnet.deploy --rpc http://anvil:8545
"""

from __future__ import annotations

import argparse
import sys
import time

import rlp
from eth_account import Account
from eth_utils import keccak, to_checksum_address
from web3 import HTTPProvider, Web3

from devnet.nodes import TEST_MNEMONIC
from devnet.product import Product

Account.enable_unaudited_hdwallet_features()
DEPLOYER = Account.from_mnemonic(TEST_MNEMONIC, account_path="m/44'/60'/0'/0/1")


def first_contract_address(deployer: str) -> str:
    """Where the deployer's first transaction (nonce 0) creates its contract."""
    return to_checksum_address(keccak(rlp.encode([bytes.fromhex(deployer[2:]), 0]))[12:])


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rpc", default="http://127.0.0.1:8545", help="the node's JSON-RPC URL")
    args = parser.parse_args(argv)
    w3 = Web3(HTTPProvider(args.rpc))
    for _ in range(60):
        if w3.is_connected():
            break
        time.sleep(1)
    address = first_contract_address(DEPLOYER.address)
    if w3.eth.get_code(address):
        print(f"product already deployed at {address}")
        return 0
    product = Product.deploy(args.rpc, DEPLOYER)
    print(f"product deployed at {product.address}, message helper {product.message_helper()}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
