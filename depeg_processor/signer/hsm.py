"""Keys that never leave a PKCS#11 token: a hardware HSM, AWS CloudHSM, Google Cloud KMS
(through its PKCS#11 library) or SoftHSM2 in the tests.

The token signs the transaction's keccak digest with CKM_ECDSA on secp256k1 and returns r and
s; Ethereum wants s in the lower half of the curve order (EIP-2) and the recovery id v, which
the token does not give: s is made low here, and v is whichever of 0 and 1 recovers the key's
public key (read once from the token's public key object, CKA_EC_POINT). The private key is
never read: only its handle is held. A session is not safe for concurrent calls, so a lock
orders the wallets' signatures.

At start every key is checked: found once by its label, on secp256k1 (CKA_EC_PARAMS), and able
to sign a digest that recovers to its address. Anything else is a ConfigError naming the
variable, never the PIN.
"""

from __future__ import annotations

import os
import threading

import pkcs11
from pkcs11 import Attribute, KeyType, Mechanism, ObjectClass
from pkcs11 import exceptions as failed

from ..chain import secp256k1
from ..errors import ConfigError

SECP256K1_OID = bytes.fromhex("06052b8104000a")  # DER of 1.3.132.0.10, as CKA_EC_PARAMS holds it
MODULE, TOKEN = "PROCESSOR_PKCS11_MODULE", "PROCESSOR_PKCS11_TOKEN_LABEL"
PIN, LABELS = "PROCESSOR_PKCS11_PIN", "PROCESSOR_PKCS11_KEY_LABELS"


class TokenKey:
    """One key pair of the token: signs digests, holds only the private key's handle."""

    def __init__(self, *, label: str, private: object, public_key: bytes, lock: threading.Lock):
        self.label = label
        self._private = private
        self._public_key = public_key  # 64 bytes, x and y
        self._lock = lock
        self.address = secp256k1.address_of(public_key)

    def __repr__(self) -> str:
        return f"TokenKey({self.label}, {self.address})"

    def sign_digest(self, digest: bytes) -> tuple[int, int, int]:
        with self._lock:
            signature = self._private.sign(digest, mechanism=Mechanism.ECDSA)
        r, s = int.from_bytes(signature[:32], "big"), int.from_bytes(signature[32:], "big")
        if s > secp256k1.HALF_N:
            s = secp256k1.N - s
        for v in (0, 1):
            if secp256k1.recover(digest, v, r, s) == self._public_key:
                return v, r, s
        raise RuntimeError(f"the token's signature does not recover to {self.address}")


def open_token(
    *, module: str, token_label: str, pin: str, key_labels: tuple[str, ...]
) -> list[TokenKey]:
    """The keys of `key_labels`, in that order, in a session logged in with `pin`."""
    session = _session(module, token_label, pin)
    lock = threading.Lock()
    found = [_key(session, label, lock) for label in key_labels]
    for key in found:
        check = os.urandom(32)
        try:
            key.sign_digest(check)
        except (failed.PKCS11Error, RuntimeError):
            raise ConfigError(LABELS, f"key {key.label!r} cannot sign with CKM_ECDSA") from None
    return found


def _session(module: str, token_label: str, pin: str) -> object:
    try:
        library = pkcs11.lib(module)
    except Exception:  # the loader's error quotes only the path: not needed in the line
        raise ConfigError(MODULE, "cannot be loaded as a PKCS#11 library") from None
    try:
        token = library.get_token(token_label=token_label)
    except failed.NoSuchToken:
        raise ConfigError(TOKEN, f"no token labelled {token_label!r}") from None
    except failed.MultipleTokensReturned:
        raise ConfigError(TOKEN, f"more than one token labelled {token_label!r}") from None
    try:
        return token.open(user_pin=pin)
    except (failed.PinIncorrect, failed.PinInvalid, failed.PinLenRange):
        raise ConfigError(PIN, "is refused by the token") from None
    except failed.PinLocked:
        raise ConfigError(PIN, "is locked on the token (too many wrong attempts)") from None
    except failed.PKCS11Error as error:
        raise ConfigError(TOKEN, f"cannot open a session ({type(error).__name__})") from None


def _key(session: object, label: str, lock: threading.Lock) -> TokenKey:
    private = _one(session, ObjectClass.PRIVATE_KEY, label)
    public = _one(session, ObjectClass.PUBLIC_KEY, label)
    if private.key_type != KeyType.EC or public[Attribute.EC_PARAMS] != SECP256K1_OID:
        raise ConfigError(LABELS, f"key {label!r} is not a secp256k1 key")
    return TokenKey(
        label=label, private=private, public_key=_point(public[Attribute.EC_POINT]), lock=lock
    )


def _one(session: object, kind: ObjectClass, label: str) -> object:
    what = "private" if kind == ObjectClass.PRIVATE_KEY else "public"
    try:
        return session.get_key(object_class=kind, label=label)
    except failed.NoSuchKey:
        raise ConfigError(LABELS, f"no {what} key labelled {label!r} on the token") from None
    except failed.MultipleObjectsReturned:
        raise ConfigError(LABELS, f"more than one {what} key labelled {label!r}") from None


def _point(ec_point: bytes) -> bytes:
    """x and y of an uncompressed point: CKA_EC_POINT is DER (04 41 04 x y) on most tokens,
    the bare point (04 x y) on some."""
    if len(ec_point) == 67 and ec_point[:3] == b"\x04\x41\x04":
        return ec_point[3:]
    if len(ec_point) == 65 and ec_point[0] == 4:
        return ec_point[1:]
    raise ConfigError(LABELS, "a key's public point is not an uncompressed secp256k1 point")
