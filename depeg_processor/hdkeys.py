"""The mnemonic's wallets: BIP-39 words to a seed, BIP-32 down m/44'/60'/0'/0/i to a key.

eth-account does the same, but importing it brings eth-keyfile and py_ecc's BLS pairing code
along (about a quarter of a second of the start, for nothing the processor does), so the
derivation is done here with what the send path loads anyway: hashlib's PBKDF2 and HMAC-SHA512
and libsecp256k1 through coincurve. A unit test holds it to eth-account's keys and to the
published BIP-39 and BIP-32 vectors.

The word lists are eth-account's own data files, read where the package is installed without
importing it; a mnemonic is checked as eth-account checks it (every word in exactly one
language's list, 12 to 24 words, the checksum), so what it accepted is accepted here.
Errors never quote the words.
"""

from __future__ import annotations

import hashlib
import hmac
import importlib.util
import secrets
import unicodedata
from functools import cache
from pathlib import Path

from coincurve import PublicKey

WALLET_PATH = "m/44'/60'/0'/0"  # the pool's wallet i is this path's child i
HARDENED = 0x80000000
CURVE_ORDER = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141
WORD_COUNTS = (12, 15, 18, 21, 24)


@cache
def _texts() -> dict[str, str]:
    """Every BIP-39 word list eth-account ships, as its file reads (one word a line, no word
    holds a space), by language (`english`, ...)."""
    spec = importlib.util.find_spec("eth_account")  # finds the package; does not import it
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("eth-account's BIP-39 word lists are not installed")
    folder = Path(spec.submodule_search_locations[0]) / "hdaccount" / "wordlist"
    return {file.stem: file.read_text(encoding="utf-8") for file in sorted(folder.glob("*.txt"))}


@cache
def _words(language: str) -> tuple[str, ...]:
    """One language's word list, in its order (a word's index is its 11 bits)."""
    return tuple(_texts()[language].split())


@cache
def _word_set(language: str) -> frozenset[str]:
    """One language's words, to tell quickly whether a mnemonic's words are all in it."""
    return frozenset(_words(language))


def wordlists() -> dict[str, tuple[str, ...]]:
    """Every BIP-39 word list eth-account ships, by language (`english`, ...)."""
    return {language: _words(language) for language in _texts()}


def _language(words: list[str]) -> tuple[str, ...]:
    """The one word list holding every word (the two Chinese lists overlap: simplified). A
    list whose text does not even contain each word is passed over before it is split into
    a set: splitting all nine took most of a start's check, for the one or two lists a
    mnemonic's words can be in."""
    wanted = set(words)
    matching = [
        language
        for language, text in _texts().items()
        if all(word in text for word in wanted) and wanted <= _word_set(language)
    ]
    if len(matching) == 2 and all("chinese" in name for name in matching):
        matching = ["chinese_simplified"]
    if len(matching) != 1:
        raise ValueError("is not a valid BIP-39 mnemonic")
    return _words(matching[0])


def check(mnemonic: str) -> str:
    """The mnemonic's words (NFKD, one space apart) if they are a valid BIP-39 mnemonic;
    ValueError without the words otherwise."""
    words = unicodedata.normalize("NFKD", mnemonic).split(" ")
    if len(words) not in WORD_COUNTS:
        raise ValueError("is not a valid BIP-39 mnemonic")
    wordlist = _language(words)
    bits = 0
    for word in words:
        bits = (bits << 11) | wordlist.index(word)
    checksum_bits = len(words) * 11 // 33
    entropy = (bits >> checksum_bits).to_bytes(len(words) * 4 // 3, "big")
    expected = hashlib.sha256(entropy).digest()[0] >> (8 - checksum_bits)
    if not secrets.compare_digest(bytes([bits & ((1 << checksum_bits) - 1)]), bytes([expected])):
        raise ValueError("is not a valid BIP-39 mnemonic")
    return " ".join(words)


def seed(mnemonic: str, passphrase: str = "") -> bytes:
    """BIP-39: the 64-byte seed of a checked mnemonic."""
    salt = "mnemonic" + unicodedata.normalize("NFKD", passphrase)
    return hashlib.pbkdf2_hmac("sha512", check(mnemonic).encode(), salt.encode(), 2048)


def _child(key: bytes, chain_code: bytes, index: int) -> tuple[bytes, bytes]:
    """BIP-32 CKDpriv; an invalid child (odds 2^-127) moves to the next index, as BIP-32 and
    eth-account do."""
    if index >= HARDENED:
        data = b"\x00" + key + index.to_bytes(4, "big")
    else:
        data = PublicKey.from_secret(key).format(compressed=True) + index.to_bytes(4, "big")
    digest = hmac.digest(chain_code, data, hashlib.sha512)
    tweak = int.from_bytes(digest[:32], "big")
    child = (tweak + int.from_bytes(key, "big")) % CURVE_ORDER
    if tweak >= CURVE_ORDER or child == 0:
        return _child(key, chain_code, index + 1)
    return child.to_bytes(32, "big"), digest[32:]


def parse_path(path: str) -> list[int]:
    """ "m/44'/60'/0'/0/3" as child indexes (hardened ones with the 2^31 bit)."""
    first, *nodes = path.split("/")
    if first not in ("m", "M"):
        raise ValueError(f"derivation path {path!r} does not start at m")
    indexes = []
    for node in nodes:
        hard = node[-1:] in ("'", "H", "h")
        number = int(node[:-1] if hard else node)
        if not 0 <= number < HARDENED:
            raise ValueError(f"derivation path {path!r} has an index out of range")
        indexes.append(number + HARDENED if hard else number)
    return indexes


def derive(seed_bytes: bytes, path: str) -> bytes:
    """BIP-32: the private key at `path` below the seed's master key."""
    digest = hmac.digest(b"Bitcoin seed", seed_bytes, hashlib.sha512)
    key, chain_code = digest[:32], digest[32:]
    for index in parse_path(path):
        key, chain_code = _child(key, chain_code, index)
    return key


def wallet_keys(mnemonic: str, count: int) -> list[bytes]:
    """The private keys of m/44'/60'/0'/0/0 .. count-1: the pool's wallets in order. The
    parent is derived once."""
    digest = hmac.digest(b"Bitcoin seed", seed(mnemonic), hashlib.sha512)
    key, chain_code = digest[:32], digest[32:]
    for index in parse_path(WALLET_PATH):
        key, chain_code = _child(key, chain_code, index)
    return [_child(key, chain_code, i)[0] for i in range(count)]
