"""The mnemonic's keys without eth-account: held to eth-account's own results and to the
published BIP-39 (the reference vectors, passphrase "TREZOR") and BIP-32 (test vector 1) vectors."""

from __future__ import annotations

import hashlib

import pytest
from eth_account import Account
from eth_utils import ValidationError

from depeg_processor import hdkeys
from depeg_processor.config import check_mnemonic
from depeg_processor.wallet.pool import derivation_path, derive_accounts
from devnet.nodes import TEST_MNEMONIC

# (entropy, mnemonic, seed with the passphrase "TREZOR"): trezor/python-mnemonic vectors.json
BIP39 = [
    (
        "00000000000000000000000000000000",
        "abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon"
        " about",
        "c55257c360c07c72029aebc1b53c05ed0362ada38ead3e3e9efa3708e53495531f09a6987599d18264c1e1c9"
        "2f2cf141630c7a3c4ab7c81b2f001698e7463b04",
    ),
]
BIP39_WORDS = [
    "legal winner thank year wave sausage worth useful legal winner thank yellow",
    "letter advice cage absurd amount doctor acoustic avoid letter advice cage above",
    "zoo zoo zoo zoo zoo zoo zoo zoo zoo zoo zoo wrong",
    "abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon"
    " abandon abandon abandon abandon abandon abandon agent",
    "legal winner thank year wave sausage worth useful legal winner thank year wave sausage"
    " worth useful legal will",
    "zoo zoo zoo zoo zoo zoo zoo zoo zoo zoo zoo zoo zoo zoo zoo zoo zoo zoo zoo zoo zoo zoo"
    " zoo vote",
    "lava include region explain simple omit dog slot melt reflect copy reward",
    "artefact card motor cluster foster spray type meadow genius mosquito pond tree sword borrow"
    " grocery orange business burger",
    "absent gorilla van acoustic humor firm title dolphin bulk barely citizen recall crane"
    " moment aspect appear track phrase actual enforce steel spoon afraid benefit",
]
BIP39_SEEDS = {  # mnemonic -> seed with the passphrase "TREZOR" (BIP-39's reference vectors)
    BIP39_WORDS[0]: "2e8905819b8723fe2c1d161860e5ee1830318dbf49a83bd451cfb8440c28bd6fa457fe12961"
    "06559a3c80937a1c1069be3a3a5bd381ee6260e8d9739fce1f607",
    BIP39_WORDS[2]: "ac27495480225222079d7be181583751e86f571027b0497b5b5d11218e0a8a13332572917f0f8"
    "e5a589620c6f15b11c61dee327651a14c34e18231052e48c069",
}

# BIP-32 test vector 1: seed 000102030405060708090a0b0c0d0e0f, extended private keys
BIP32_SEED = bytes.fromhex("000102030405060708090a0b0c0d0e0f")
BIP32 = {
    "m": "xprv9s21ZrQH143K3QTDL4LXw2F7HEK3wJUD2nW2nRk4stbPy6cq3jPPqjiChkVvvNKmPGJxWUtg6LnF5kejMR"
    "NNU3TGtRBeJgk33yuGBxrMPHi",
    "m/0'": "xprv9uHRZZhk6KAJC1avXpDAp4MDc3sQKNxDiPvvkX8Br5ngLNv1TxvUxt4cV1rGL5hj6KCesnDYUhd7oW"
    "gT11eZG7XnxHrnYeSvkzY7d2bhkJ7",
    "m/0'/1": "xprv9wTYmMFdV23N2TdNG573QoEsfRrWKQgWeibmLntzniatZvR9BmLnvSxqu53Kw1UmYPxLgboyZQaX"
    "wTCg8MSY3H2EU4pWcQDnRnrVA1xe8fs",
    "m/0'/1/2'": "xprv9z4pot5VBttmtdRTWfWQmoH1taj2axGVzFqSb8C9xaxKymcFzXBDptWmT7FwuEzG3ryjH4ktyp"
    "QSAewRiNMjANTtpgP4mLTj34bhnZX7UiM",
    "m/0'/1/2'/2": "xprvA2JDeKCSNNZky6uBCviVfJSKyQ1mDYahRjijr5idH2WwLsEd4Hsb2Tyh8RfQMuPh7f7RtyzTt"
    "drbdqqsunu5Mm3wDvUAKRHSC34sJ7in334",
    "m/0'/1/2'/2/1000000000": "xprvA41z7zogVVwxVSgdKUHDy1SKmdb533PjDz7J6N6mV6uS3ze1ai8FHa8km"
    "HScGpWmj4WggLyQjgPie1rFSruoUihUZREPSL39UNdE3BBDu76",
}
BASE58 = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"


def xprv_key(text: str) -> bytes:
    """The private key of a base58check extended private key (its checksum checked)."""
    number = 0
    for char in text:
        number = number * 58 + BASE58.index(char)
    raw = number.to_bytes(82, "big")
    payload, checksum = raw[:-4], raw[-4:]
    assert hashlib.sha256(hashlib.sha256(payload).digest()).digest()[:4] == checksum
    assert payload[45] == 0
    return payload[46:78]


def eth_account_key(mnemonic: str, path: str) -> bytes:
    Account.enable_unaudited_hdwallet_features()
    return bytes(Account.from_mnemonic(mnemonic, account_path=path).key)


@pytest.mark.parametrize("path", list(BIP32))
def test_bip32_vector_one(path):
    assert hdkeys.derive(BIP32_SEED, path) == xprv_key(BIP32[path])


@pytest.mark.parametrize("entropy, words, expected", BIP39)
def test_bip39_seed_of_the_reference_vector(entropy, words, expected):
    assert hdkeys.check(words) == words
    assert hdkeys.seed(words, "TREZOR").hex() == expected


@pytest.mark.parametrize("words", list(BIP39_SEEDS))
def test_bip39_seeds_with_a_passphrase(words):
    assert hdkeys.seed(words, "TREZOR").hex() == BIP39_SEEDS[words]


@pytest.mark.parametrize("words", BIP39_WORDS)
def test_reference_mnemonics_derive_the_keys_eth_account_derives(words):
    assert hdkeys.check(words) == words
    for index in (0, 7):
        expected = eth_account_key(words, derivation_path(index))
        assert hdkeys.wallet_keys(words, index + 1)[index] == expected


def test_the_pool_wallets_are_eth_accounts_first_forty():
    Account.enable_unaudited_hdwallet_features()
    ours = derive_accounts(TEST_MNEMONIC, 40)
    for index, key in enumerate(ours):
        theirs = Account.from_mnemonic(TEST_MNEMONIC, account_path=derivation_path(index))
        assert key.address == theirs.address
        assert key.private_hex() == bytes(theirs.key).hex()


@pytest.mark.parametrize(
    "words",
    [
        "test test test test test test test test test test test test",  # bad checksum
        "abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon",
        "abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon"
        " notaword",
        "aban abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon"
        " about",
        "",
    ],
)
def test_what_eth_account_refuses_is_refused_without_the_words(words):
    Account.enable_unaudited_hdwallet_features()
    with pytest.raises(ValidationError):
        Account.from_mnemonic(words)
    with pytest.raises(ValueError) as refused:
        hdkeys.check(words)
    assert "abandon" not in str(refused.value) and "test" not in str(refused.value)
    with pytest.raises(ValueError):
        check_mnemonic(words)


def test_spanish_zero_entropy_derives_eth_accounts_key():
    from eth_account.hdaccount import Language, Mnemonic

    words = Mnemonic(Language.SPANISH).to_mnemonic(bytes(16))
    assert hdkeys.wallet_keys(words, 2) == [
        eth_account_key(words, derivation_path(i)) for i in range(2)
    ]


def test_the_word_lists_are_read_without_importing_eth_account(tmp_path):
    import subprocess
    import sys

    code = (
        "import sys; from depeg_processor import hdkeys; hdkeys.wordlists();"
        "print(any(m.startswith(('eth_account', 'py_ecc', 'eth_keyfile')) for m in sys.modules))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.stdout.strip() == "False", result.stderr
    assert len(hdkeys.wordlists()["english"]) == 2048


def test_the_word_lists_are_eth_accounts_word_for_word():
    from eth_account.hdaccount.mnemonic import Mnemonic, get_wordlist

    languages = Mnemonic.list_languages()
    assert sorted(hdkeys.wordlists()) == sorted(languages) and len(languages) == 9
    for language in languages:
        assert list(hdkeys.wordlists()[language]) == get_wordlist(language), language
