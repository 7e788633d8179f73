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

from tests.conftest import wait_until
from tests.integration.conftest import (
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
