"""signer: the pool's keys from a keystore (v3 files, file-name order), the settings each
signer requires, the secrets leaving the environment, no core dumps, and the PKCS#11 binding
imported only by the pkcs11 signer."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from decouple import Config, RepositoryEmpty
from eth_account import Account

from depeg_processor.config import load_settings
from depeg_processor.errors import ConfigError
from depeg_processor.signer import open_keys
from depeg_processor.signer.hardening import forget_secrets
from depeg_processor.signer.keystore import open_keystore

PASSWORD = "hunter2 but longer"
REQUIRED = {
    "CHAIN_RPC_URL": "http://localhost:8545",
    "DEPEG_PRODUCT_ADDRESS": "0x8464135c8F25Da09e49BC8782676a84730C318bC",
}


class Values(RepositoryEmpty):
    def __init__(self, values: dict[str, str]) -> None:
        self.values = values

    def __contains__(self, key: str) -> bool:
        return key in self.values

    def __getitem__(self, key: str) -> str:
        return self.values[key]


def settings(**values: str):
    return load_settings(Config(Values(REQUIRED | values)))


def write_keystore(folder, names: list[str]) -> dict[str, str]:
    folder.mkdir(exist_ok=True)
    addresses = {}
    for name in names:
        account = Account.create()
        document = Account.encrypt(account.key, PASSWORD, kdf="pbkdf2", iterations=2)
        (folder / name).write_text(json.dumps(document))
        addresses[name] = account.address
    return addresses


def test_a_keystore_folder_is_the_pool_in_file_name_order(tmp_path) -> None:
    addresses = write_keystore(tmp_path / "ks", ["UTC--2", "UTC--1", "UTC--3"])
    (tmp_path / "ks" / ".DS_Store").write_text("not a key")
    keys = open_keystore(str(tmp_path / "ks"), PASSWORD)
    assert [k.address for k in keys] == [addresses[n] for n in ("UTC--1", "UTC--2", "UTC--3")]


def test_one_keystore_file_is_one_wallet(tmp_path) -> None:
    addresses = write_keystore(tmp_path / "ks", ["only"])
    [key] = open_keystore(str(tmp_path / "ks" / "only"), PASSWORD)
    assert key.address == addresses["only"]


def test_a_wrong_password_names_the_file_not_the_password(tmp_path) -> None:
    write_keystore(tmp_path / "ks", ["UTC--1"])
    with pytest.raises(ConfigError) as refused:
        open_keystore(str(tmp_path / "ks"), "wrong password")
    assert str(refused.value) == "PROCESSOR_KEYSTORE_PASSWORD: does not open UTC--1"


@pytest.mark.parametrize(
    "content, problem",
    [
        ("not json", "UTC--1 is not a readable JSON keystore"),
        ('{"version": 1}', "UTC--1 is not a version 3 keystore"),
        ('{"version": 3, "crypto": {}}', "UTC--1 is not a keystore this processor reads"),
    ],
)
def test_a_file_that_is_no_keystore_is_named(tmp_path, content, problem) -> None:
    (tmp_path / "UTC--1").write_text(content)
    with pytest.raises(ConfigError) as refused:
        open_keystore(str(tmp_path), PASSWORD)
    assert str(refused.value) == f"PROCESSOR_KEYSTORE: {problem}"


def test_the_same_key_twice_is_refused(tmp_path) -> None:
    write_keystore(tmp_path / "ks", ["UTC--1"])
    (tmp_path / "ks" / "UTC--2").write_text((tmp_path / "ks" / "UTC--1").read_text())
    with pytest.raises(ConfigError, match="UTC--2 holds a key another file holds too"):
        open_keystore(str(tmp_path / "ks"), PASSWORD)


def test_open_keys_reads_the_keystore_the_settings_name(tmp_path) -> None:
    addresses = write_keystore(tmp_path / "ks", ["a", "b"])
    (tmp_path / "password").write_text(PASSWORD + "\nsecond line ignored\n")
    keys = open_keys(
        settings(
            PROCESSOR_SIGNER="keystore",
            PROCESSOR_KEYSTORE=str(tmp_path / "ks"),
            PROCESSOR_KEYSTORE_PASSWORD_FILE=str(tmp_path / "password"),
        )
    )
    assert [k.address for k in keys] == [addresses["a"], addresses["b"]]


def test_each_signer_requires_its_own_settings_and_no_mnemonic() -> None:
    with pytest.raises(ConfigError) as refused:
        settings(PROCESSOR_SIGNER="pkcs11")
    assert refused.value.lines() == [
        f"{name}: is required with PROCESSOR_SIGNER=pkcs11 but not set"
        for name in (
            "PROCESSOR_PKCS11_MODULE",
            "PROCESSOR_PKCS11_TOKEN_LABEL",
            "PROCESSOR_PKCS11_PIN",
            "PROCESSOR_PKCS11_KEY_LABELS",
        )
    ]
    with pytest.raises(ConfigError) as refused:
        settings(PROCESSOR_SIGNER="keystore")
    assert [line.split(":")[0] for line in refused.value.lines()] == [
        "PROCESSOR_KEYSTORE",
        "PROCESSOR_KEYSTORE_PASSWORD",
    ]
    with pytest.raises(ConfigError, match="^PROCESSOR_SIGNER: 'kms' is not valid: must be one"):
        settings(PROCESSOR_SIGNER="kms")


def test_key_labels_are_a_list_in_order() -> None:
    pkcs11 = settings(
        PROCESSOR_SIGNER="pkcs11",
        PROCESSOR_PKCS11_MODULE="/lib.so",
        PROCESSOR_PKCS11_TOKEN_LABEL="t",
        PROCESSOR_PKCS11_PIN="1234",
        PROCESSOR_PKCS11_KEY_LABELS=" b , a ",
    )
    assert pkcs11.pkcs11_key_labels == ("b", "a") and "1234" not in repr(pkcs11)
    for labels in ("a,,b", "a,a"):
        with pytest.raises(ConfigError, match="^PROCESSOR_PKCS11_KEY_LABELS: "):
            settings(
                PROCESSOR_SIGNER="pkcs11",
                PROCESSOR_PKCS11_MODULE="/lib.so",
                PROCESSOR_PKCS11_TOKEN_LABEL="t",
                PROCESSOR_PKCS11_PIN="1234",
                PROCESSOR_PKCS11_KEY_LABELS=labels,
            )


def test_secrets_leave_a_mapping() -> None:
    environ = {"PROCESSOR_PKCS11_PIN": "1234", "PROCESSOR_MNEMONIC": "words", "HOME": "/root"}
    assert forget_secrets(environ) == ["PROCESSOR_MNEMONIC", "PROCESSOR_PKCS11_PIN"]
    assert environ == {"HOME": "/root"}


CHILD = """
import ctypes, os, resource, subprocess, sys
from depeg_processor.signer.hardening import forget_secrets, no_core_dumps
no_core_dumps()
print(forget_secrets())
print(resource.getrlimit(resource.RLIMIT_CORE))
print(ctypes.CDLL(None).prctl(3, 0, 0, 0, 0))  # PR_GET_DUMPABLE
print(subprocess.run(["env"], capture_output=True, text=True).stdout.count("PIN"))
print(open(f"/proc/{os.getpid()}/environ", "rb").read().count(b"s3cret-pin"))
print("pkcs11" in sys.modules)
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="/proc and prctl")
def test_a_process_forgets_its_secrets_and_dumps_no_core() -> None:
    result = subprocess.run(
        [sys.executable, "-c", CHILD],
        env=os.environ | {"PROCESSOR_PKCS11_PIN": "s3cret-pin", "PYTHONPATH": os.getcwd()},
        capture_output=True,
        text=True,
        check=True,
    )
    assert result.stdout.splitlines() == [
        "['PROCESSOR_PKCS11_PIN']",
        "(0, 0)",  # no core file
        "0",  # not dumpable
        "0",  # a child sees no PIN
        "0",  # /proc/<pid>/environ holds it no more
        "False",  # the binding is not imported by the mnemonic signer's modules
    ]


def test_the_mnemonic_signer_never_imports_the_pkcs11_binding() -> None:
    script = (
        "import sys\n"
        "from depeg_processor.__main__ import main\n"
        "from depeg_processor.signer import open_keys\n"
        "from depeg_processor.config import Settings\n"
        "keys = open_keys(Settings(chain_rpc_url='http://x', product_address="
        "'0x8464135c8F25Da09e49BC8782676a84730C318bC', mnemonic='test test test test test "
        "test test test test test test junk', wallets=2))\n"
        "print(len(keys), 'pkcs11' in sys.modules, 'asn1crypto' in sys.modules)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script],
        env=os.environ | {"PYTHONPATH": os.getcwd()},
        capture_output=True,
        text=True,
        check=True,
    )
    assert result.stdout.split() == ["2", "False", "False"]
