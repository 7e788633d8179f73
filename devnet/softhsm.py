"""SoftHSM2 tokens for the tests of the pkcs11 signer: `make test` installs SoftHSM2 and
OpenSC when missing (`python -m devnet.softhsm`), and `Token` makes a token of its own in a
temporary folder (SOFTHSM2_CONF), with secp256k1 key pairs generated inside it by OpenSC's
`pkcs11-tool`: sensitive and never extractable, so no test ever sees a private key.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

MODULE = "/usr/lib/softhsm/libsofthsm2.so"
PACKAGES = {"softhsm2-util": "softhsm2", "pkcs11-tool": "opensc"}
USER_PIN, SO_PIN = "pin-4e1d7a0c", "so-pin-b38f2e61"  # distinct: the secrets check looks for them


def install() -> list[str]:
    """apt-get install SoftHSM2 and OpenSC when missing (as root); the packages installed."""
    packages = sorted({PACKAGES[tool] for tool in PACKAGES if not shutil.which(tool)})
    if not Path(MODULE).exists():
        packages = sorted({*packages, "softhsm2"})
    if not packages:
        return []
    if os.geteuid() != 0:
        raise SystemExit(f"softhsm: missing {packages}: apt-get install -y {' '.join(packages)}")
    env = os.environ | {"DEBIAN_FRONTEND": "noninteractive"}
    subprocess.run(["apt-get", "update", "-qq"], check=True, env=env)
    subprocess.run(["apt-get", "install", "-y", "-qq", *packages], check=True, env=env)
    return packages


class Token:
    """A SoftHSM2 token in `folder`, its keys made inside it."""

    def __init__(self, folder: Path, *, label: str = "depeg-test", pin: str = USER_PIN) -> None:
        self.folder, self.label, self.pin = folder, label, pin
        (folder / "tokens").mkdir(parents=True, exist_ok=True)
        self.conf = folder / "softhsm2.conf"
        self.conf.write_text(
            f"directories.tokendir = {folder / 'tokens'}\nobjectstore.backend = file\n"
            "log.level = ERROR\nslots.removable = false\n"
        )
        self.env = {"SOFTHSM2_CONF": str(self.conf)}
        self._run("softhsm2-util", "--init-token", "--free", "--label", label,
                  "--pin", pin, "--so-pin", SO_PIN)  # fmt: skip
        self.pin_file = folder / "pin"
        self.pin_file.write_text(pin + "\n")
        self.pin_file.chmod(0o400)

    def _run(self, *args: str) -> str:
        result = subprocess.run(
            args, env=os.environ | self.env, capture_output=True, text=True, timeout=60
        )
        if result.returncode != 0:
            raise RuntimeError(f"{args[0]} exited {result.returncode}: {result.stderr.strip()}")
        return result.stdout

    def tool(self, *args: str) -> str:
        """pkcs11-tool on this token, logged in."""
        return self._run("pkcs11-tool", "--module", MODULE, "--token-label", self.label,
                         "--login", "--pin", self.pin, *args)  # fmt: skip

    def generate(self, label: str, key_type: str = "EC:secp256k1") -> None:
        """A key pair made inside the token: --sensitive and no --extractable, so
        CKA_SENSITIVE is true and CKA_EXTRACTABLE false (and CKA_NEVER_EXTRACTABLE true)."""
        self.tool("--keypairgen", "--key-type", key_type, "--label", label,
                  "--usage-sign", "--sensitive", "--private")  # fmt: skip

    def private_key_attributes(self, label: str) -> dict[str, bool]:
        """CKA_SENSITIVE, CKA_EXTRACTABLE and CKA_NEVER_EXTRACTABLE of a private key, read
        through the binding (in a child process: SOFTHSM2_CONF is read once per process)."""
        script = (
            "import pkcs11, sys\n"
            "from pkcs11 import Attribute as A, ObjectClass\n"
            f"s = pkcs11.lib({MODULE!r}).get_token(token_label={self.label!r})"
            f".open(user_pin={self.pin!r})\n"
            f"k = s.get_key(object_class=ObjectClass.PRIVATE_KEY, label={label!r})\n"
            "print(int(k[A.SENSITIVE]), int(k[A.EXTRACTABLE]), int(k[A.NEVER_EXTRACTABLE]))\n"
        )
        out = subprocess.run([sys.executable, "-c", script], env=os.environ | self.env,
                             capture_output=True, text=True, check=True, timeout=60)  # fmt: skip
        sensitive, extractable, never = (bool(int(x)) for x in out.stdout.split())
        return {"sensitive": sensitive, "extractable": extractable, "never_extractable": never}

    def addresses(self, labels: list[str]) -> list[str]:
        """The addresses of the key pairs, read from their public keys (in a child process, as
        the processor would read them)."""
        script = (
            "import sys\n"
            "from depeg_processor.signer.hsm import open_token\n"
            f"keys = open_token(module={MODULE!r}, token_label={self.label!r}, "
            f"pin={self.pin!r}, key_labels={tuple(labels)!r})\n"
            "print(' '.join(k.address for k in keys))\n"
        )
        out = subprocess.run([sys.executable, "-c", script], env=os.environ | self.env,
                             capture_output=True, text=True, check=True, timeout=60)  # fmt: skip
        return out.stdout.split()

    def settings(self, labels: list[str]) -> dict[str, str]:
        """The processor's environment for this token's keys."""
        return self.env | {
            "PROCESSOR_SIGNER": "pkcs11",
            "PROCESSOR_PKCS11_MODULE": MODULE,
            "PROCESSOR_PKCS11_TOKEN_LABEL": self.label,
            "PROCESSOR_PKCS11_PIN_FILE": str(self.pin_file),
            "PROCESSOR_PKCS11_KEY_LABELS": ",".join(labels),
        }


if __name__ == "__main__":
    installed = install()
    print(f"softhsm: installed {', '.join(installed)}" if installed else "softhsm: present")
