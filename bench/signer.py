"""What signing costs with each signer: a batch of 16 of the processor's transactions (real
application calldata, 1.7 M gas) signed by a key in the process and by a secp256k1 key inside a
SoftHSM2 token (the token signs the keccak digest, the processor makes s low and recovers v),
each through the signing policy as the wallets sign (and the key in the process without it,
to show the policy's own cost); beside it what opening the token costs in
time and memory, and what importing the PKCS#11 binding adds to a start.

    python -m bench.signer [BATCHES]

Needs SoftHSM2 and OpenSC (`make softhsm`). Each measurement runs in a fresh child process so
the memory figures are that process's own (VmRSS from /proc/self/status).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from devnet.softhsm import MODULE, Token

CHILD = r"""
import json, os, statistics, sys, time
def rss():
    for line in open("/proc/self/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
started_rss = rss()
t = time.perf_counter()
from depeg_processor.chain.signing import LocalKey, TransactionSigner
from depeg_processor.chain.product import ProductCalls
from depeg_processor.inbound.application import parse_application
from depeg_processor.signer.policy import SigningPolicy
from tests.unit.helpers import CHAIN_ID, ENTITY_ID, MESSAGE_HELPER, signed_fields
PRODUCT = "0x5FbDB2315678afecb367f032d93F642f64180aa3"
data = ProductCalls().apply(parse_application(ENTITY_ID, signed_fields()).contract_args())
policy = SigningPolicy(chain_id=CHAIN_ID, product=PRODUCT, verifying_contract=MESSAGE_HELPER,
                       max_gas=3_000_000, max_fee_per_gas=10**11)
base_rss = rss()
t = time.perf_counter()
if sys.argv[1] == "pkcs11":
    from depeg_processor.signer.hsm import open_token
    imported = time.perf_counter() - t
    [key] = open_token(module=sys.argv[2], token_label=sys.argv[3], pin=sys.argv[4],
                       key_labels=(sys.argv[5],))
else:
    imported = 0.0
    key = LocalKey(bytes.fromhex("c3" * 32))
opened = time.perf_counter() - t
signer = TransactionSigner(key, policy=None if sys.argv[1] == "local-no-policy" else policy)
batches = []
for b in range(int(sys.argv[6])):
    t = time.perf_counter()
    for nonce in range(16):
        signer.sign(chain_id=CHAIN_ID, nonce=b * 16 + nonce, to=PRODUCT, data=data,
                    gas=1_700_000, max_fee_per_gas=3 * 10**10, max_priority_fee_per_gas=10**9)
    batches.append((time.perf_counter() - t) * 1000)
print(json.dumps({
    "batch_of_16_ms_median": round(statistics.median(batches), 2),
    "batch_of_16_ms_max": round(max(batches), 2),
    "open_ms": round(opened * 1000, 1),
    "import_binding_ms": round(imported * 1000, 1),
    "rss_mib_before_keys": round(base_rss, 1),
    "rss_mib_after_signing": round(rss(), 1),
}))
"""


def measure(kind: str, token: Token, batches: int) -> dict:
    args = [kind, MODULE, token.label, token.pin, "bench-key", str(batches)]
    out = subprocess.run(
        [sys.executable, "-c", CHILD, *args],
        env=os.environ | token.env | {"PYTHONPATH": str(Path.cwd())},
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(out.stdout)


def main() -> int:
    batches = int(sys.argv[1]) if len(sys.argv) > 1 else 200
    with tempfile.TemporaryDirectory() as folder:
        token = Token(Path(folder))
        token.generate("bench-key")
        results = {
            kind: measure(kind, token, batches) for kind in ("local-no-policy", "local", "pkcs11")
        }
    results["batches"] = batches
    results["load_average"] = [round(x, 2) for x in os.getloadavg()]
    print(json.dumps(results, indent=2))
    Path("bench/signer-last-run.json").write_text(json.dumps(results, indent=2) + "\n")
    print("per transaction:", {k: round(v["batch_of_16_ms_median"] / 16, 3)
                               for k, v in results.items() if isinstance(v, dict)})  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
