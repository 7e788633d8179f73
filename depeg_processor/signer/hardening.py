"""What a process holding keys does at start so that they do not leak from it.

- No core dumps: RLIMIT_CORE 0 (a crash writes no memory image holding the keys) and, on
  Linux, PR_SET_DUMPABLE 0, which also makes /proc/<pid>/{environ,mem,maps} readable by root
  only, no longer by other processes of the same user, and refuses ptrace to them.
- The secrets read from the environment leave it once read: removed from `os.environ` (so
  no library and no child process sees them) and, on glibc, overwritten where the process
  was given them, the block /proc/<pid>/environ shows. What a container runtime keeps of the
  environment it was told (`docker inspect`, the unit's `Environment=`) no process can clear:
  hence the *_FILE variables (docs/operations.md#secrets).
"""

from __future__ import annotations

import ctypes
import os
import resource
import sys
from collections.abc import MutableMapping

SECRET_VARIABLES = ("PROCESSOR_MNEMONIC", "PROCESSOR_KEYSTORE_PASSWORD", "PROCESSOR_PKCS11_PIN")
PR_SET_DUMPABLE = 4


def no_core_dumps() -> None:
    """No core file and, on Linux, not dumpable (see the module's docstring)."""
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) != 0:
            raise OSError(ctypes.get_errno(), "prctl(PR_SET_DUMPABLE, 0) failed")


def forget_secrets(environ: MutableMapping[str, str] = os.environ) -> list[str]:
    """Remove the secret variables from the environment; returns the names removed."""
    present = [name for name in SECRET_VARIABLES if name in environ]
    if environ is os.environ:
        _overwrite_in_place(present)
    for name in present:
        del environ[name]
    return present


def _overwrite_in_place(names: list[str]) -> None:
    """Zero the values of `names` in the C environment's strings (glibc's `environ`), before
    unsetenv drops the pointers to them. Elsewhere nothing is done."""
    if not names or not sys.platform.startswith("linux"):
        return
    try:
        entries = ctypes.POINTER(ctypes.c_void_p).in_dll(ctypes.CDLL(None), "environ")
    except (OSError, ValueError):
        return
    prefixes = [name.encode() + b"=" for name in names]
    index = 0
    while entries[index]:
        address = entries[index]
        text = ctypes.string_at(address)
        for prefix in prefixes:
            if text.startswith(prefix):
                ctypes.memset(address + len(prefix), 0, len(text) - len(prefix))
        index += 1
