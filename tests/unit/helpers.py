"""Test data: applications signed exactly as the web app signs them (devnet.webapp.WebApp),
from fixed keys so every run sees the same data."""

from __future__ import annotations

from eth_account import Account
from eth_account.signers.local import LocalAccount
from eth_utils import keccak

from devnet.webapp import WebApp

CHAIN_ID = 31337
MESSAGE_HELPER = "0xe7f1725E7734CE288F8367e1Bb143E90bb3F0512"
HOLDER = Account.from_key("0x" + "a1" * 32)
OTHER = Account.from_key("0x" + "b2" * 32)
WALLET = "0x2f1389578815B162bE85b2b7D88343F9A31a166d"
SIGNATURE_ID = "WD1ww5ymMhuWphJY5HqJ_"
ENTITY_ID = "01HZX3K8Q4M7N2P5R8T1V4W7Y0"


def holder_of_signature_id(signature_id: str) -> LocalAccount:
    """The policy holder of the test application with this signature id: HOLDER for the
    default one, another fixed key per other id (one applicant per application, as the
    processor sends one application per holder at a time)."""
    if signature_id == SIGNATURE_ID:
        return HOLDER
    return Account.from_key(keccak(text=f"holder of {signature_id}"))


def signed_fields(
    holder: LocalAccount | None = None,
    *,
    chain_id: int = CHAIN_ID,
    message_helper: str = MESSAGE_HELPER,
    signer: LocalAccount | None = None,
    signature_id: str = SIGNATURE_ID,
    **overrides: str,
) -> dict[str, str]:
    """A PendingApplication hash as the web app writes it. `signer` signs in place of the
    holder; `overrides` replace fields after signing. Without `holder`, the holder of the
    signature id (`holder_of_signature_id`)."""
    holder = holder or holder_of_signature_id(signature_id)
    webapp = WebApp(redis=None, chain_id=chain_id, message_helper=message_helper)
    fields = {
        "policyHolder": holder.address,
        "protectedWallet": WALLET,
        "protectedBalance": "1199000000",
        "duration": "2592000",
        "bundleId": "2",
        "signatureId": signature_id,
        "timestamp": "1795830693.764",
    }
    fields["signature"] = webapp.sign(
        signer or holder,
        wallet=WALLET,
        protected_balance=1199000000,
        duration=2592000,
        bundle_id=2,
        signature_id=signature_id,
    )
    fields.update(overrides)
    return fields
