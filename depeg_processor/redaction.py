"""Secrets never leave in a log line, whichever library writes it.

The processor names a provider `#index scheme://host` (`chain.urls`), but libraries write their
own lines: urllib3 logs `Failed to parse headers (url=...)` with the whole URL on every answer
of a provider that sends one malformed header line, requests' errors carry the path, and a
traceback carries both. So the entry point installs one log record factory: every record, made
by any logger for any handler, has each known secret (a provider URL's user, path and query,
the mnemonic, a wallet's private key) replaced by `***` in its message (arguments included),
its traceback and its stack, before any handler sees it. Uncaught exceptions are logged too
(not printed), so their tracebacks go through the same door.
"""

from __future__ import annotations

import logging
import re
import sys
import threading
from collections.abc import Callable, Iterable
from urllib.parse import parse_qsl, quote, unquote, urlsplit

MASK = "***"
MIN_LENGTH = 6  # shorter parts (a Redis database "/0", "/v3") are left: no key is that short
_TRACEBACKS = logging.Formatter()

log = logging.getLogger(__name__)


def url_secrets(url: str) -> set[str]:
    """The parts of `url` beyond `scheme://host[:port]`: its user and password, path, query and
    fragment, and each path segment and query value alone, as written and unquoted."""
    try:
        parts = urlsplit(url)
        pieces = [parts.username, parts.password, parts.path, parts.query, parts.fragment]
    except ValueError:  # unparsable: the whole of it is secret
        return {url} if len(url) >= MIN_LENGTH else set()
    pieces += parts.path.split("/")
    pieces += [value for _name, value in parse_qsl(parts.query, keep_blank_values=True)]
    forms = set()
    for piece in filter(None, pieces):
        forms |= {piece, unquote(piece), quote(unquote(piece), safe="")}
    return {form for form in forms if len(form) >= MIN_LENGTH}


class Redactor:
    """Replaces every occurrence of the secrets given, in any letter case, with MASK."""

    def __init__(
        self,
        *,
        urls: Iterable[str] = (),
        mnemonic: str | None = None,
        keys: Iterable[str] = (),
        passwords: Iterable[str] = (),
    ) -> None:
        literal = set().union(*(url_secrets(url) for url in urls if url))
        literal |= {key.removeprefix("0x") for key in keys if key}
        literal |= {word for word in passwords if word}  # a keystore's password, a token's PIN
        patterns = [re.escape(s) for s in sorted(literal, key=len, reverse=True)]
        if mnemonic and mnemonic.split():  # however its words are spaced
            patterns.insert(0, r"\s+".join(re.escape(word) for word in mnemonic.split()))
        self._pattern = re.compile("|".join(patterns), re.IGNORECASE) if patterns else None

    def __call__(self, text: str) -> str:
        return self._pattern.sub(MASK, text) if self._pattern is not None else text

    def scrub(self, record: logging.LogRecord) -> None:
        """Rewrite `record` in place where it holds a secret: its message (then formatted, with
        no arguments left), its traceback (then kept as text only) and its stack."""
        try:
            message = record.getMessage()
        except Exception:  # a bad format string: what logging would print of it, redacted
            message = f"{record.msg!s} (arguments {record.args!r})"
        clean = self(message)
        if clean != message:
            record.msg, record.args = clean, None
        if record.exc_info:
            text = record.exc_text or _TRACEBACKS.formatException(record.exc_info)
            clean = self(text)
            if clean != text:  # formatters use exc_text when exc_info is gone
                record.exc_info, record.exc_text = None, clean
        if record.stack_info:
            record.stack_info = self(record.stack_info)


class _RedactingFactory:
    """A log record factory around another: the record it makes, scrubbed."""

    def __init__(self, base: Callable[..., logging.LogRecord], redactor: Redactor) -> None:
        self.base, self.redactor = base, redactor

    def __call__(self, *args: object, **kwargs: object) -> logging.LogRecord:
        record = self.base(*args, **kwargs)
        self.redactor.scrub(record)
        return record


def install(redactor: Redactor) -> None:
    """From now on every log record of this process is scrubbed by `redactor` (a second call
    replaces the first's secrets), and uncaught exceptions are logged, not printed."""
    base = logging.getLogRecordFactory()
    if isinstance(base, _RedactingFactory):
        base = base.base
    logging.setLogRecordFactory(_RedactingFactory(base, redactor))
    sys.excepthook = _log_uncaught
    threading.excepthook = _log_uncaught_in_thread


def _log_uncaught(kind: type, error: BaseException, traceback: object) -> None:
    log.critical("uncaught exception", exc_info=(kind, error, traceback))


def _log_uncaught_in_thread(hook: threading.ExceptHookArgs) -> None:
    if hook.exc_type is SystemExit:  # as the default hook: a thread's exit is no error
        return
    name = hook.thread.name if hook.thread is not None else "?"
    log.critical(
        "uncaught exception in thread %s",
        name,
        exc_info=(hook.exc_type, hook.exc_value, hook.exc_traceback),
    )
