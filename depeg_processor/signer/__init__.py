"""Where the wallets' keys come from, and what they may sign.

- `open_keys`: the pool's keys, in order, from the signer PROCESSOR_SIGNER names: `mnemonic`
  (the first PROCESSOR_WALLETS accounts), `keystore` (v3 files, `keystore`) or `pkcs11` (keys
  that never leave a token, `hsm`). A wrong password, PIN or label, or a key not on
  secp256k1, is a ConfigError: one line, exit code 2. Only the chosen backend is imported (the
  PKCS#11 binding weighs on the start).
- `policy`: the one check every transaction passes before a key signs it; `wallet_signers`
  binds every key of the pool to it.
- `hardening`: the secrets read at start leave the environment; no core dumps.
"""

from __future__ import annotations

from ..chain.signing import DigestSigner, TransactionSigner
from ..config import Settings
from ..metrics import Metrics
from .policy import SigningPolicy


def open_keys(settings: Settings) -> list[DigestSigner]:
    """The pool's keys in pool order: each is one wallet."""
    if settings.signer == "keystore":
        from .keystore import open_keystore

        return open_keystore(settings.keystore, settings.keystore_password)
    if settings.signer == "pkcs11":
        from .hsm import open_token

        return open_token(
            module=settings.pkcs11_module,
            token_label=settings.pkcs11_token_label,
            pin=settings.pkcs11_pin,
            key_labels=settings.pkcs11_key_labels,
        )
    from ..wallet.pool import derive_accounts

    return derive_accounts(settings.mnemonic, settings.wallets)


def wallet_signers(
    keys: list, settings: Settings, node: object, metrics: Metrics
) -> list[TransactionSigner]:
    """One transaction signer per key, each bound to the signing policy for the chain and
    message helper the node named (`node`: `node_facts.NodeFacts`). An eth-account account (the
    tests hand those in) is signed for by its key."""
    policy = SigningPolicy.for_node(
        settings, node.chain_id, node.message_helper, on_refused=metrics.signing_refused.inc
    )
    return [TransactionSigner(getattr(key, "key", None) or key, policy=policy) for key in keys]
