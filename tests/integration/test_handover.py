"""A deploy's handover: the new process starts beside the old one while applications flow,
reports ready as a hot standby, and takes over when the old one is stopped with SIGTERM.
Every application lands exactly once and sending pauses for less than one lease TTL."""

from __future__ import annotations

import datetime
import re
import signal
import threading
import time
from pathlib import Path

from eth_account import Account

from depeg_processor import keys
from tests.conftest import wait_until
from tests.integration.conftest import (
    LEASE_KEY,
    application,
    dead_letters,
    holder_pid,
    http_json,
    service_env,
    wallet_nonce,
)

LEASE_TTL_MS = 2000
TOTAL, AFTER_STOP = 60, 20  # applications in all, and at least this many after the SIGTERM
SENT = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}) .* sent as tx ", re.MULTILINE)


def send_times(log: Path) -> list[float]:
    """When the process logged each transaction it sent (wall clock, milliseconds)."""
    return [
        datetime.datetime.strptime(stamp, "%Y-%m-%d %H:%M:%S,%f").timestamp()
        for stamp in SENT.findall(log.read_text())
    ]


def test_new_process_takes_over_on_sigterm_while_applications_flow(
    redis_server, anvil, product, webapp, redis_client, spawn, tmp_path
):
    old_log, new_log = tmp_path / "old.log", tmp_path / "new.log"
    old_env = service_env(
        redis_server.url, anvil.url, product.address, PROCESSOR_LEASE_TTL=str(LEASE_TTL_MS)
    )
    new_env = service_env(
        redis_server.url, anvil.url, product.address, PROCESSOR_LEASE_TTL=str(LEASE_TTL_MS)
    )
    old = spawn(old_env, old_log)
    wait_until(lambda: holder_pid(redis_client) == old.pid, what="the old process sending")

    entity_ids: list[str] = []
    terminated, quit_early = threading.Event(), threading.Event()

    def enqueue() -> None:  # the web app: one application every 50 ms until enough are in
        after_stop = 0
        while not quit_early.is_set():
            entity_ids.append(webapp.apply())
            after_stop += terminated.is_set()
            if len(entity_ids) >= TOTAL and after_stop >= AFTER_STOP:
                return
            quit_early.wait(0.05)

    def settled() -> int:
        return sum(
            1
            for e in list(entity_ids)
            if application(redis_client, e).get("transactionHash")
            or not application(redis_client, e)
        )

    web = threading.Thread(target=enqueue, name="webapp", daemon=True)
    web.start()
    try:
        new = spawn(new_env, new_log)
        status, body = wait_until(
            lambda: (
                (r := http_json(int(new_env["PORT"]), "/api/monitor/readiness"))
                and r[0] == 200
                and r[1].get("role", "").startswith("standby")
                and r
            ),
            what="the new process ready as a standby",
        )
        assert "sending" not in body
        wait_until(lambda: settled() >= 10, what="the old process sending")

        old.send_signal(signal.SIGTERM)
        terminated.set()
        signalled = time.monotonic()
        assert old.wait(15) == 0, "the old process stops cleanly on SIGTERM"
        stopping = time.monotonic() - signalled
        wait_until(lambda: holder_pid(redis_client) == new.pid, what="the new process sending")
        web.join(60)
        assert not web.is_alive()
    finally:
        quit_early.set()

    count = len(entity_ids)
    wait_until(
        lambda: not any(application(redis_client, e) for e in entity_ids),
        timeout=120,
        what="every application confirmed and purged",
    )
    assert product.application_count() == count
    assert wallet_nonce(anvil) == count, "every application paid for exactly once"
    assert dead_letters(redis_client) == {}
    assert new.poll() is None, "the new process keeps running"

    old_sent, new_sent = send_times(old_log), send_times(new_log)
    assert old_sent and new_sent
    gap = min(new_sent) - max(old_sent)
    print(
        f"\nhandover: the old process sent {len(old_sent)}, the new one {len(new_sent)} of "
        f"{count}; sending paused for {gap * 1000:.0f} ms (lease TTL {LEASE_TTL_MS} ms); "
        f"the old one exited {stopping:.1f} s after SIGTERM"
    )
    assert 0 < gap <= LEASE_TTL_MS / 1000, "no overlap, and a pause of at most one lease TTL"


LONG_TTL_MS = 600_000  # ten minutes: nothing in this test can wait for the lease to run out


def release_notice(pubsub) -> str | None:
    message = pubsub.get_message(timeout=0.1)
    return message["data"] if message and message["type"] == "message" else None


def test_a_clean_stop_hands_the_wallet_and_its_entries_over_without_waiting_for_the_ttl(
    redis_server, anvil, product, webapp, redis_client, spawn, tmp_path
):
    """The old process releases its lease on SIGTERM and says so; the standby takes the wallet
    at once, and the entries the old consumer (another consumer name) left unacknowledged are
    its own at once. With a lease of ten minutes, neither could happen by expiry: the lease
    would still be the old one's, and those entries would be claimable only after ten minutes
    idle. The entry left is a holder's second application, held back while the holder's first
    is in flight (the old process waits for 50 confirmations, which never come)."""
    common = {"PROCESSOR_LEASE_TTL": str(LONG_TTL_MS)}
    old_env = service_env(
        redis_server.url,
        anvil.url,
        product.address,
        **common,
        REDIS_QUEUE_CONSUMER_ID="old-replica",
        CHAIN_MINUMUM_REQUIRED_CONFIRMATIONS="50",
    )
    new_env = service_env(
        redis_server.url,
        anvil.url,
        product.address,
        **common,
        REDIS_QUEUE_CONSUMER_ID="new-replica",
    )
    releases = redis_client.pubsub()
    releases.subscribe(keys.lease_released_channel("application:signatures"))
    old = spawn(old_env, tmp_path / "old.log")
    wait_until(lambda: holder_pid(redis_client) == old.pid, what="the old process sending")
    old_owner = redis_client.get(LEASE_KEY)

    holder = Account.create()
    first = webapp.apply(holder)
    wait_until(lambda: application(redis_client, first).get("transactionHash"), what="sent")
    second = webapp.apply(holder)  # waits, in the old consumer's hand, for the first
    wait_until(
        lambda: redis_client.xpending_range(
            "application:signatures",
            "depeg-backend-processor",
            min="-",
            max="+",
            count=10,
            consumername="old-replica",
        ),
        what="the second application in the old consumer's hand",
    )
    new = spawn(new_env, tmp_path / "new.log")
    wait_until(
        lambda: (
            (r := http_json(int(new_env["PORT"]), "/api/monitor/readiness"))
            and r[1].get("role", "").startswith("standby")
        ),
        what="the new process ready as a standby",
    )
    assert not application(redis_client, second).get("transactionHash")

    old.send_signal(signal.SIGTERM)
    assert old.wait(15) == 0, "the old process stops cleanly on SIGTERM"
    notice = wait_until(lambda: release_notice(releases), what="the release notice")
    assert notice == f"{LEASE_KEY} {old_owner}", "released by its owner, not expired"
    wait_until(lambda: holder_pid(redis_client) == new.pid, what="the new process holding it")
    assert redis_client.pttl(LEASE_KEY) > LONG_TTL_MS / 2, "a fresh lease of the new process"

    later = webapp.apply()
    everything = [first, second, later]
    wait_until(
        lambda: not any(application(redis_client, e) for e in everything),
        timeout=60,
        what="every application confirmed and purged, the one left behind too",
    )
    assert product.application_count() == len(everything)
    assert wallet_nonce(anvil) == len(everything), "every application paid for exactly once"
    assert dead_letters(redis_client) == {}
    assert not redis_client.xpending_range(
        "application:signatures", "depeg-backend-processor", min="-", max="+", count=10
    ), "nothing left unacknowledged"
    releases.close()
