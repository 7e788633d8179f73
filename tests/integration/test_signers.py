"""The signers against real parts: keys generated inside a SoftHSM2 token (never extractable)
or held in v3 keystores, two replicas of the processor over real Redis and anvil, one of them
SIGKILLed and restarted; a wrong PIN, password or label refused at start with exit code 2; the
secrets read at start gone from the process's environment, and no core dumps."""

from __future__ import annotations

import os
import signal
import types
from pathlib import Path

import pytest
from eth_account import Account

from depeg_processor.wallet.pool import pool
from devnet.nodes import TEST_KEYSTORE_PASSWORD
from devnet.softhsm import Token
from tests.conftest import wait_until
from tests.integration.conftest import (
    application,
    cli,
    dead_letters,
    holder_pid,
    service_env,
    wallet_nonce,
)

STREAM = "application:signatures"
CONSUMER = "depeg-backend-processor-consumer"
PASSWORD = TEST_KEYSTORE_PASSWORD
LABELS = ["wallet-a", "wallet-b"]


@pytest.fixture
def token(tmp_path) -> Token:
    token = Token(tmp_path / "token")
    for label in LABELS:
        token.generate(label)
    token.generate("p256", key_type="EC:prime256v1")
    return token


def keystore(folder: Path, count: int) -> list[str]:
    """`count` v3 keystore files in `folder` (names sorting in pool order); their addresses."""
    folder.mkdir()
    addresses = []
    for i in range(count):
        account = Account.create()
        document = Account.encrypt(account.key, PASSWORD, kdf="scrypt", iterations=2**12)
        (folder / f"UTC--2026-01-0{i + 1}--{account.address[2:].lower()}").write_text(
            __import__("json").dumps(document)
        )
        addresses.append(account.address)
    (folder / ".hidden").write_text("not a wallet")
    return addresses


def signer_env(redis_server, anvil, product, **settings: str) -> dict:
    env = service_env(redis_server.url, anvil.url, product.address, LOG_LEVEL="WARNING", **settings)
    del env["PROCESSOR_MNEMONIC"]
    return env


def purged(redis_client, entity_ids) -> bool:
    return not any(application(redis_client, e) for e in entity_ids)


def landed(redis_client, entity_ids) -> int:
    return sum(
        1 for e in entity_ids if not (a := application(redis_client, e)) or a.get("transactionHash")
    )


def sixty_over_two_replicas_with_a_kill(
    addresses, envs, anvil, product, webapp, redis_client, spawn
):
    """60 applications over two replicas (each started with `envs()`, its own port) on the
    pool of `addresses`; A is SIGKILLed after
    some are sent and started again; every application lands once, nothing reverts."""
    for address in addresses:
        anvil.set_balance(address, 10**21)
    wallets = pool([types.SimpleNamespace(address=a) for a in addresses], stream=STREAM,
                   consumer=CONSUMER)  # fmt: skip
    a = spawn(envs())
    wait_until(lambda: holder_pid(redis_client, wallets[0].lease_key) == a.pid, what="A on 0")
    b = spawn(envs())
    wait_until(lambda: holder_pid(redis_client, wallets[1].lease_key) == b.pid, what="B on 1")
    entity_ids = [webapp.apply() for _ in range(30)]
    wait_until(lambda: landed(redis_client, entity_ids) >= 10, what="A and B sending")
    os.kill(a.pid, signal.SIGKILL)
    a.wait(10)
    restarted = spawn(envs())
    entity_ids += [webapp.apply() for _ in range(30)]
    wait_until(lambda: purged(redis_client, entity_ids), timeout=120, what="all 60 purged")
    wait_until(  # B may have moved to A's wallet meanwhile: then the restarted one takes B's
        lambda: {holder_pid(redis_client, w.lease_key) for w in wallets} == {b.pid, restarted.pid},
        what="the restarted replica and B on the two wallets",
    )
    assert product.application_count() == 60
    sent = [wallet_nonce(anvil, address) for address in addresses]
    assert sum(sent) == 60, f"one transaction per application, none reverted: {sent}"
    assert all(n > 0 for n in sent), f"both keys signed: {sent}"
    assert dead_letters(redis_client) == {}


def test_sixty_applications_signed_by_two_keys_in_a_token(
    token, redis_server, anvil, product, webapp, redis_client, spawn
):
    addresses = token.addresses(LABELS)
    envs = lambda: signer_env(redis_server, anvil, product, **token.settings(LABELS))  # noqa: E731
    sixty_over_two_replicas_with_a_kill(
        addresses, envs, anvil, product, webapp, redis_client, spawn
    )
    for label in LABELS:
        assert token.private_key_attributes(label) == {
            "sensitive": True,
            "extractable": False,
            "never_extractable": True,
        }, f"{label} is still a key no one can read"


def test_sixty_applications_signed_by_two_keystores(
    tmp_path, redis_server, anvil, product, webapp, redis_client, spawn
):
    folder = tmp_path / "keystore"
    addresses = keystore(folder, 2)
    password = tmp_path / "password"
    password.write_text(PASSWORD + "\n")
    settings = {
        "PROCESSOR_SIGNER": "keystore",
        "PROCESSOR_KEYSTORE": str(folder),
        "PROCESSOR_KEYSTORE_PASSWORD_FILE": str(password),
    }
    envs = lambda: signer_env(redis_server, anvil, product, **settings)  # noqa: E731
    sixty_over_two_replicas_with_a_kill(
        addresses, envs, anvil, product, webapp, redis_client, spawn
    )


def refused(env: dict) -> str:
    """The one line a start refused for its configuration prints, exit code 2."""
    result = cli(env, "run")
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, lines
    return lines[0]


def test_a_wrong_pin_a_wrong_label_or_another_curve_is_refused_with_exit_2(
    token, redis_server, anvil, product
):
    env = signer_env(redis_server, anvil, product, **token.settings(LABELS))
    wrong = token.folder / "wrong-pin"
    wrong.write_text("000000\n")
    line = refused(env | {"PROCESSOR_PKCS11_PIN_FILE": str(wrong)})
    assert line == "configuration error: PROCESSOR_PKCS11_PIN: is refused by the token"
    assert "000000" not in line and token.pin not in line
    line = refused(env | {"PROCESSOR_PKCS11_KEY_LABELS": "wallet-a,nope"})
    assert line == (
        "configuration error: PROCESSOR_PKCS11_KEY_LABELS: no private key labelled 'nope' "
        "on the token"
    )
    line = refused(env | {"PROCESSOR_PKCS11_KEY_LABELS": "p256"})
    assert (
        line
        == "configuration error: PROCESSOR_PKCS11_KEY_LABELS: key 'p256' is not a secp256k1 key"
    )
    line = refused(env | {"PROCESSOR_PKCS11_TOKEN_LABEL": "other"})
    assert line == "configuration error: PROCESSOR_PKCS11_TOKEN_LABEL: no token labelled 'other'"


def test_a_wrong_keystore_password_is_refused_with_exit_2(tmp_path, redis_server, anvil, product):
    folder = tmp_path / "keystore"
    keystore(folder, 2)
    wrong = tmp_path / "password"
    wrong.write_text("not the password\n")
    env = signer_env(
        redis_server,
        anvil,
        product,
        PROCESSOR_SIGNER="keystore",
        PROCESSOR_KEYSTORE=str(folder),
        PROCESSOR_KEYSTORE_PASSWORD_FILE=str(wrong),
    )
    line = refused(env)
    assert line.startswith(
        "configuration error: PROCESSOR_KEYSTORE_PASSWORD: does not open UTC--2026-01-01--"
    )
    assert "not the password" not in line
    assert refused(env | {"PROCESSOR_KEYSTORE": str(tmp_path / "absent")}) == (
        "configuration error: PROCESSOR_KEYSTORE: is neither a file nor a folder"
    )


def test_the_mnemonic_leaves_the_environment_and_no_core_is_dumped(
    redis_server, anvil, product, redis_client, spawn
):
    env = service_env(redis_server.url, anvil.url, product.address)
    mnemonic = env["PROCESSOR_MNEMONIC"]
    process = spawn(env)
    wait_until(lambda: holder_pid(redis_client) == process.pid, what="the processor started")
    environ = Path(f"/proc/{process.pid}/environ").read_bytes()
    assert mnemonic.encode() not in environ, "/proc/<pid>/environ no longer holds it"
    assert b"PROCESSOR_MNEMONIC=" in environ, "what is left of the variable: its name"
    assert env["REDIS_URL"].encode() in environ, "other variables stay"
    limits = Path(f"/proc/{process.pid}/limits").read_text()
    [core] = [line for line in limits.splitlines() if line.startswith("Max core file size")]
    assert core.split()[4:6] == ["0", "0"], core
