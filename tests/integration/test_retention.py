"""Stream retention against a real redis-server: what XTRIM MINID may remove and what it must
keep (pending entries, undelivered entries, other groups' work), and the dead letters' bounds."""

from __future__ import annotations

import threading
import time

import pytest

from depeg_processor.inbound.dead_letters import DeadLetters
from depeg_processor.inbound.retention import StreamRetention
from tests.conftest import wait_until
from tests.integration.conftest import dead_letters

STREAM, GROUP = "application:signatures", "depeg-backend-processor"
NOW = 10_000.0  # seconds; the injected clock
RETENTION = 100.0  # seconds: ids below 9_900_000-0 are old
OLD = [f"{ms}-0" for ms in (9_000_000, 9_100_000, 9_200_000, 9_300_000)]
NEW = [f"{ms}-0" for ms in (9_950_000, 9_960_000)]


def add(client, ids: list[str]) -> None:
    for entry_id in ids:
        client.xadd(STREAM, {"entityId": f"e{entry_id}"}, id=entry_id)


def deliver(client, count: int, *, group: str = GROUP) -> list[str]:
    """Deliver the next `count` entries to `group` (not acknowledged)."""
    reply = client.xreadgroup(group, "reader", {STREAM: ">"}, count=count)
    return [entry_id for _stream, entries in reply for entry_id, _fields in entries]


def ack(client, ids: list[str], *, group: str = GROUP) -> None:
    client.xack(STREAM, group, *ids)


def left(client) -> list[str]:
    return [entry_id for entry_id, _fields in client.xrange(STREAM)]


def retention(client, seconds: float = RETENTION) -> StreamRetention:
    return StreamRetention(client, stream=STREAM, retention=seconds, clock=lambda: NOW)


@pytest.fixture
def stream(redis_client):
    add(redis_client, OLD + NEW)
    redis_client.xgroup_create(STREAM, GROUP, id="0")
    return redis_client


def test_acknowledged_entries_older_than_the_retention_are_trimmed(stream) -> None:
    ack(stream, deliver(stream, 6))
    assert retention(stream).trim() == 4
    assert left(stream) == NEW


def test_nothing_at_or_above_the_oldest_pending_entry_is_trimmed(stream) -> None:
    delivered = deliver(stream, 6)
    ack(stream, [delivered[0], delivered[1], delivered[3], *delivered[4:]])  # OLD[2] pending
    assert retention(stream).trim() == 2
    assert left(stream) == OLD[2:] + NEW


def test_undelivered_entries_are_kept_however_old(stream) -> None:
    ack(stream, deliver(stream, 2))  # OLD[0], OLD[1] done; OLD[2:] never delivered
    assert retention(stream).bound() == "9100000-1"  # just above the last-delivered id
    assert retention(stream).trim() == 2
    assert left(stream) == OLD[2:] + NEW


def test_the_slowest_group_bounds_the_trim(stream) -> None:
    stream.xgroup_create(STREAM, "analytics", id="0")
    ack(stream, deliver(stream, 6))
    ack(stream, deliver(stream, 1, group="analytics"), group="analytics")
    deliver(stream, 1, group="analytics")  # OLD[1] pending in the other group
    assert retention(stream).trim() == 1
    assert left(stream) == OLD[1:] + NEW


def test_a_stream_no_group_reads_is_left_alone(redis_client) -> None:
    add(redis_client, OLD)
    assert retention(redis_client).trim() == 0
    assert left(redis_client) == OLD


def test_zero_retention_turns_trimming_off(stream) -> None:
    ack(stream, deliver(stream, 6))
    assert retention(stream, 0).trim() == 0
    assert left(stream) == OLD + NEW


def test_a_missing_stream_is_not_an_error(redis_client) -> None:
    assert retention(redis_client).trim() == 0
    assert not redis_client.exists(STREAM)


def test_the_service_trims_at_start_and_the_dead_letters_by_their_own_retention(
    redis_client, start_service
) -> None:
    """Old acknowledged entries go after 7 days, dead letters after their 30 days: a letter
    from 1970 goes, one written a day ago stays."""
    add(redis_client, ["1000-0", "2000-0"])  # from 1970: far older than the default 7 days
    redis_client.xgroup_create(STREAM, GROUP, id="0")
    ack(redis_client, deliver(redis_client, 2))
    dead = "application:signatures:dead"
    redis_client.xadd(dead, {"entityId": "x", "reason": "old"}, id="1000-0")
    yesterday = int((time.time() - 86_400) * 1000)
    redis_client.xadd(dead, {"entityId": "y", "reason": "recent"}, id=f"{yesterday}-0")
    start_service()
    wait_until(lambda: redis_client.xlen(STREAM) == 0, what="the old entries trimmed")
    wait_until(lambda: list(dead_letters(redis_client)) == ["y"], what="the old letter trimmed")


def test_dead_letters_keep_their_count_on_a_real_server(redis_client) -> None:
    letters = DeadLetters(redis_client, stream=STREAM, group=GROUP, key="dead", max_letters=3)
    for n in range(10):
        letters.set_aside(entity_id=None, reason=f"bad {n}", application={})
    assert [fields["reason"] for _id, fields in letters.list()] == ["bad 7", "bad 8", "bad 9"]


def test_run_stops_on_the_event(stream) -> None:
    ack(stream, deliver(stream, 6))
    stop = threading.Event()
    worker = retention(stream)
    worker.interval = 3600.0
    thread = threading.Thread(target=worker.run, args=(stop,))
    thread.start()
    wait_until(lambda: left(stream) == NEW, what="the first trim")
    stop.set()
    thread.join(5)
    assert not thread.is_alive()
