"""Fail if a log holds the test wallet's mnemonic or private key (run by `make test`)."""

from __future__ import annotations

import sys
from pathlib import Path

from eth_account import Account

from depeg_processor.config import DERIVATION_PATH
from devnet.nodes import TEST_MNEMONIC


def secrets() -> list[str]:
    Account.enable_unaudited_hdwallet_features()
    key = Account.from_mnemonic(TEST_MNEMONIC, account_path=DERIVATION_PATH).key.hex()
    return [TEST_MNEMONIC, " ".join(TEST_MNEMONIC.split()[:4]), key.removeprefix("0x")]


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
            f"secrets check: no mnemonic or private key in {', '.join(paths)} "
            f"({sum(len(Path(p).read_text(errors='replace').splitlines()) for p in paths)} lines)"
        )
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
