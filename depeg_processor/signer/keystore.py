"""Keys from Web3 Secret Storage (v3) files, as geth, clef and `cast wallet` write them.

PROCESSOR_KEYSTORE names one file or a folder of them: every file of the folder not starting
with a dot is a wallet, in file-name order (geth's `UTC--<time>--<address>` names sort by
age). Each is decrypted once at start with the one password; the keys then live in the process
like the mnemonic's, so the keystore protects them at rest, not from the running process (for
that: `pkcs11`). Errors name the file, never the password. Imported only when
PROCESSOR_SIGNER=keystore: eth-keyfile brings py_ecc's BLS code, a quarter of a second.
"""

from __future__ import annotations

import json
from pathlib import Path

from eth_keyfile import decode_keyfile_json

from ..chain.signing import LocalKey
from ..errors import ConfigError

NAME, PASSWORD = "PROCESSOR_KEYSTORE", "PROCESSOR_KEYSTORE_PASSWORD"


def keystore_files(path: str) -> list[Path]:
    """The files of the keystore in pool order."""
    where = Path(path)
    if where.is_file():
        return [where]
    if not where.is_dir():
        raise ConfigError(NAME, "is neither a file nor a folder")
    files = sorted(p for p in where.iterdir() if p.is_file() and not p.name.startswith("."))
    if not files:
        raise ConfigError(NAME, "is a folder without keystore files")
    return files


def open_keystore(path: str, password: str) -> list[LocalKey]:
    """One key per file, in order; ConfigError for a file that is not a v3 keystore, that the
    password does not open, or a key named twice."""
    keys, seen = [], set()
    for file in keystore_files(path):
        key = LocalKey(decrypt(file, password))
        if key.address in seen:
            raise ConfigError(NAME, f"{file.name} holds a key another file holds too")
        seen.add(key.address)
        keys.append(key)
    return keys


def decrypt(file: Path, password: str) -> bytes:
    try:
        document = json.loads(file.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError):
        raise ConfigError(NAME, f"{file.name} is not a readable JSON keystore") from None
    if not isinstance(document, dict) or document.get("version") != 3:
        raise ConfigError(NAME, f"{file.name} is not a version 3 keystore")
    try:
        return bytes(decode_keyfile_json(document, password.encode()))
    except ValueError as error:
        if "MAC mismatch" in str(error):
            raise ConfigError(PASSWORD, f"does not open {file.name}") from None
        raise ConfigError(NAME, f"{file.name} is not a keystore this processor reads") from None
    except Exception:  # a malformed crypto section: never quote the library's text
        raise ConfigError(NAME, f"{file.name} is not a keystore this processor reads") from None
