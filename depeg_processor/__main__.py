"""Entry point: `python -m depeg_processor [run|check-config|status|dead-letters|requeue|
release-holder]`.

The only place with side effects at start: it reads the environment (then `.env` in the working
directory), configures logging, builds the Redis and node clients (`startup`), installs the
signal handlers and starts the threads. The operator commands are in `cli` and `status`.
"""

from __future__ import annotations

import gc

# No cyclic garbage collection while the modules load: they make objects by the hundred
# thousand and free almost none, so each collection would be wasted work. After them what
# they made is frozen (kept out of every later collection: it lives as long as the process)
# and collection is on again. About an eighth of the import's time (docs/performance.md).
gc.disable()

import logging
import os
import signal
import sys
import threading
from collections.abc import Sequence

from decouple import AutoConfig

from . import cli, errors, redaction
from .chain.signing import LocalKey
from .config import Settings, load_settings
from .faults import Faults
from .logs import configure_logging
from .service import Service
from .signer import open_keys
from .signer.hardening import forget_secrets, no_core_dumps
from .startup import build_runtime
from .systemd import Notifier

gc.freeze()
gc.enable()

log = logging.getLogger("depeg_processor")

EXIT_OK, EXIT_FAILURE, EXIT_CONFIG, EXIT_STARTUP = 0, 1, 2, 3


def install_signal_handlers(stop: threading.Event) -> None:
    """First SIGTERM/SIGINT: set the stop flag. Second: exit at once."""

    def handle(signum: int, _frame: object) -> None:
        if stop.is_set():
            os._exit(128 + signum)
        stop.set()

    signal.signal(signal.SIGTERM, handle)
    signal.signal(signal.SIGINT, handle)


def guard_secrets(settings: Settings, keys: Sequence[str] = ()) -> None:
    """No provider or relay URL's key, Redis password, mnemonic, wallet key, keystore password
    or token PIN in any log line, whichever library writes it (`redaction`)."""
    urls = (*settings.chain_rpc_urls, settings.redis_url)
    if settings.chain_send_url:
        urls += (settings.chain_send_url,)
    passwords = (settings.keystore_password, settings.pkcs11_pin)
    redaction.install(
        redaction.Redactor(urls=urls, mnemonic=settings.mnemonic, keys=keys, passwords=passwords)
    )


def command_run(settings: Settings, keys: list) -> int:
    stop = threading.Event()
    install_signal_handlers(stop)
    # the keys held in the process (mnemonic, keystore); a token's never are
    guard_secrets(settings, keys=[k.private_hex() for k in keys if isinstance(k, LocalKey)])
    runtime = build_runtime(
        settings,
        accounts=keys,
        stop=stop,
        notifier=Notifier.from_environ(os.environ),
        faults=Faults(os.environ.get("DEPEG_PROCESSOR_FAULT") or None),
    )
    try:  # providers on different chains, before anything else is said: the one line
        runtime.chain.agree_on_chain_id()
    except errors.ConfigError as error:
        print(f"configuration error: {error}", file=sys.stderr)
        return EXIT_CONFIG
    service = Service(runtime)
    try:
        service.serve_monitor()
        if service.prepare():
            service.run()
    except errors.ConfigError as error:  # a provider on another chain, first seen now
        log.critical("configuration error: %s", error)
        return EXIT_CONFIG
    except errors.StartupError as error:
        log.critical("cannot start: %s", error)
        return EXIT_STARTUP
    finally:
        service.shutdown()
    log.info("stopped")
    return EXIT_OK


def main(argv: Sequence[str] | None = None) -> int:
    args = cli.parse_args(sys.argv[1:] if argv is None else argv)
    no_core_dumps()  # before any secret is read
    try:
        settings = load_settings(AutoConfig(search_path=os.getcwd()))
    except errors.ConfigError as error:  # every bad variable, each on its own line
        for line in error.lines():
            print(f"configuration error: {line}", file=sys.stderr)
        return EXIT_CONFIG
    finally:
        forget_secrets()
    configure_logging(level=settings.log_level, production=settings.production)
    guard_secrets(settings)
    command = args.command or "run"
    try:  # a wrong password, PIN or label: one line
        keys = open_keys(settings) if command in ("run", "check-config", "status") else []
    except errors.ConfigError as error:
        print(f"configuration error: {error}", file=sys.stderr)
        return EXIT_CONFIG
    if command == "run":
        return command_run(settings, keys)
    if command == "check-config":
        return cli.command_check_config(settings, keys)
    if command == "status":
        from . import status  # an operator's command: not imported by a start

        return status.command_status(settings, as_json=args.json, keys=keys)
    if command == "dead-letters":
        return cli.command_dead_letters(settings, count=args.count, as_json=args.json)
    if command == "requeue":
        if not args.ids and not args.all_:
            print("requeue: name dead-letter ids or use --all", file=sys.stderr)
            return EXIT_CONFIG
        return cli.command_requeue(settings, ids=args.ids, all_=args.all_)
    if command == "release-holder":
        return cli.command_release_holder(settings, holder=args.holder)
    raise AssertionError(command)


if __name__ == "__main__":
    sys.exit(main())
