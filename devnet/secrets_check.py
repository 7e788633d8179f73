"""Fail if a log holds a test secret (run by `make test` on the DEBUG log of the whole run).

The secrets: the test mnemonic (and its first words), the private key of every wallet the tests
derive from it (a pool's wallets and the product owner's, indexes 0 to WALLETS - 1), the API
key the tests put in provider URLs (`TEST_PROVIDER_KEY`), the SoftHSM2 token's PINs and the
keystores' password."""

from __future__ import annotations

import sys
from pathlib import Path

from eth_account import Account

from devnet.nodes import TEST_KEYSTORE_PASSWORD, TEST_MNEMONIC, TEST_PROVIDER_KEY
from devnet.softhsm import SO_PIN, USER_PIN

WALLETS = 20  # more than any test derives


def wallet_keys() -> list[str]:
    """The private keys (hex, no 0x) of the first WALLETS accounts of the test mnemonic."""
    Account.enable_unaudited_hdwallet_features()
    return [
        bytes(Account.from_mnemonic(TEST_MNEMONIC, account_path=f"m/44'/60'/0'/0/{i}").key).hex()
        for i in range(WALLETS)
    ]


def secrets() -> list[str]:
    return [
        TEST_MNEMONIC,
        " ".join(TEST_MNEMONIC.split()[:4]),
        TEST_PROVIDER_KEY,
        TEST_KEYSTORE_PASSWORD,
        USER_PIN,
        SO_PIN,
        *wallet_keys(),
    ]


def main(paths: list[str]) -> int:
    found = 0
    for path in paths:
        text = Path(path).read_text(errors="replace")
        if not text.strip():
            print(f"secrets check: {path} is empty; nothing was logged?")
            return 1
        for secret in secrets():
            if secret.lower() in text.lower():
                print(f"secrets check: FAILED: {path} contains a secret ({secret[:6]}...)")
                found += 1
    if not found:
        print(
            "secrets check: no mnemonic, wallet key, provider key, PIN or password in "
            f"{', '.join(paths)} "
            f"({sum(len(Path(p).read_text(errors='replace').splitlines()) for p in paths)} lines)"
        )
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
