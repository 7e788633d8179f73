"""What importing the entry point costs a start: the packages nothing before the first send
runs stay out, and the garbage collector, off while the modules load, is on again after, with
what they made frozen."""

from __future__ import annotations

import json
import subprocess
import sys

# eth-account brings eth-keyfile and py_ecc's BLS code (a quarter of a second); eth-keyfile is
# the keystore signer's, pkcs11 the token signer's, each imported only when chosen; web3 is the
# devnet's. eth-abi (with its grammar, parsimonious), eth-utils (with pydantic), eth-typing,
# eth-keys and rlp did small fixed jobs that chain.abi, chain.hexaddr, chain.secp256k1 and
# chain.rlp_encode do now (about 130 ms of a start).
NOT_AT_START = {"eth_account", "eth_keyfile", "py_ecc", "pkcs11", "web3"}
NOT_AT_START |= {"eth_abi", "parsimonious", "eth_utils", "pydantic", "pydantic_core"}
NOT_AT_START |= {"eth_typing", "eth_keys", "rlp", "eth_rlp", "hexbytes"}

# The standard library's too: argparse is built for an operator's command only (a plain start
# parses nothing), statistics (with fractions) took a millisecond for one median.
NOT_AT_START_STDLIB = {"argparse", "statistics", "fractions"}

PROBE = """
import gc, json, sys
import depeg_processor.__main__
print(json.dumps({
    "loaded": sorted({name.split(".")[0] for name in sys.modules}),
    "stdlib": sorted(name for name in %(stdlib)r if name in sys.modules),
    "gc": gc.isenabled(),
    "frozen": gc.get_freeze_count(),
    "modules": sorted(name for name in sys.modules if name.startswith("depeg_processor")),
}))
"""


def probe() -> dict:
    script = PROBE % {"stdlib": sorted(NOT_AT_START_STDLIB)}
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_the_entry_point_imports_nothing_the_start_does_not_run() -> None:
    found = probe()
    assert "redis" in found["loaded"]  # the probe sees what was imported
    assert sorted(NOT_AT_START & set(found["loaded"])) == []
    assert found["stdlib"] == []
    # the keystore and token signers are imported only when chosen, the operator's commands'
    # own modules only by those commands, the set of several providers only for a list of them
    lazy = ("signer.keystore", "signer.hsm", "status", "chain.each_provider")
    lazy += ("chain.providers", "chain.health", "chain.broadcast", "chain.freshness")
    for module in lazy:
        assert f"depeg_processor.{module}" not in found["modules"]


def test_the_garbage_collector_is_on_once_the_entry_point_is_imported() -> None:
    found = probe()
    assert found["gc"] is True
    assert found["frozen"] > 10_000  # the modules' objects, left out of every collection


WORK = """
import json, sys
from depeg_processor.chain.classify import revert_reason
from depeg_processor.chain.product import ProductCalls, holder_in_call
from depeg_processor.config import Settings
from depeg_processor.inbound.application import parse_application
from depeg_processor.signer import open_keys
from depeg_processor.signer.policy import SigningPolicy
from depeg_processor.chain.signing import TransactionSigner

HELPER = "0x5FbDB2315678afecb367f032d93F642f64180aa3"
settings = Settings(chain_rpc_url="http://x", product_address=%(product)r, mnemonic=%(words)r)
policy = SigningPolicy.for_node(settings, 31337, HELPER, on_refused=lambda: None)
key = open_keys(settings)[0]
app = parse_application("e1", %(fields)r)
app.check_signature(chain_id=31337, verifying_contract=HELPER)
data = ProductCalls().apply(app.contract_args())
signer = TransactionSigner(key, policy=policy)
signer.sign(chain_id=31337, nonce=0, to=%(product)r, data=data, gas=500_000,
            max_fee_per_gas=10**9, max_priority_fee_per_gas=1)
assert holder_in_call(data) == app.policy_holder.lower()
revert_reason("0x08c379a0" + "00" * 31 + "20" + "00" * 31 + "01" + "41" + "00" * 31, "")
print(json.dumps(sorted({name.split(".")[0] for name in sys.modules})))
"""


def test_the_send_path_itself_loads_none_of_them_either() -> None:
    """Keys opened, an application checked, its call encoded and signed under the policy, a
    revert decoded: the work before the first send imports nothing lazily from that list."""
    from eth_account import Account
    from eth_account.messages import encode_typed_data

    from depeg_processor.inbound.eip712 import DOMAIN_NAME, DOMAIN_VERSION, POLICY_TYPES

    product, helper = (
        "0x8464135c8F25Da09e49BC8782676a84730C318bC",
        ("0x5FbDB2315678afecb367f032d93F642f64180aa3"),
    )
    holder = Account.create()
    message = {
        "wallet": holder.address,
        "protectedBalance": 10**9,
        "duration": 86_400,
        "bundleId": 1,
        "signatureId": b"sig-1".ljust(32, b"\0"),
    }
    signable = encode_typed_data(
        domain_data={
            "name": DOMAIN_NAME,
            "version": DOMAIN_VERSION,
            "chainId": 31337,
            "verifyingContract": helper,
        },
        message_types=POLICY_TYPES,
        message_data=message,
    )
    signature = holder.sign_message(signable).signature
    fields = {
        "policyHolder": holder.address,
        "protectedWallet": holder.address,
        "protectedBalance": str(10**9),
        "duration": "86400",
        "bundleId": "1",
        "signatureId": "sig-1",
        "signature": "0x" + bytes(signature).hex(),
    }
    words = "test test test test test test test test test test test junk"
    script = WORK % {"product": product, "words": words, "fields": fields}
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    loaded = set(json.loads(result.stdout))
    assert "coincurve" in loaded  # the probe saw the signature made
    assert sorted(NOT_AT_START & loaded) == []
