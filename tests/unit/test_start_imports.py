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

PROBE = """
import gc, json, sys
import depeg_processor.__main__
print(json.dumps({
    "loaded": sorted({name.split(".")[0] for name in sys.modules}),
    "gc": gc.isenabled(),
    "frozen": gc.get_freeze_count(),
    "modules": sorted(name for name in sys.modules if name.startswith("depeg_processor")),
}))
"""


def probe() -> dict:
    result = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_the_entry_point_imports_nothing_the_start_does_not_run() -> None:
    found = probe()
    assert "redis" in found["loaded"]  # the probe sees what was imported
    assert sorted(NOT_AT_START & set(found["loaded"])) == []
    # the keystore and token signers are imported only when chosen, the operator's commands'
    # own modules only by those commands
    for module in ("signer.keystore", "signer.hsm", "status", "chain.each_provider"):
        assert f"depeg_processor.{module}" not in found["modules"]


def test_the_garbage_collector_is_on_once_the_entry_point_is_imported() -> None:
    found = probe()
    assert found["gc"] is True
    assert found["frozen"] > 10_000  # the modules' objects, left out of every collection
