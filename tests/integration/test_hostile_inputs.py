"""The web app writes what its users send: stream entries and hashes may hold bytes that are not
UTF-8, huge values, odd ids or text shaped like the product's error codes. Each kind is written
here as raw bytes ahead of 20 good applications; the good ones must land, and every bad one
must be in the dead-letter stream, its content escaped (or only its sizes), with the loop alive
and /metrics bounded."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
import redis

from depeg_processor.inbound.untrusted import escaped
from tests.conftest import wait_until
from tests.integration.conftest import application

STREAM, DEAD = "application:signatures", "application:signatures:dead"
GOOD = 20


@pytest.fixture
def raw(redis_server, redis_client) -> Iterator[redis.Redis]:
    """A client without decoding, as careless as the web app may be: bytes in, bytes out."""
    client = redis.Redis.from_url(redis_server.url)
    yield client
    client.close()


def put(raw: redis.Redis, entity_id: bytes, fields: dict | None) -> str:
    """HSET (if `fields`) and XADD as the web app does, from raw bytes; the stream entry id."""
    if fields:
        raw.hset(
            b"PendingApplication:" + entity_id,
            mapping={_bytes(name): _bytes(value) for name, value in fields.items()},
        )
    return raw.xadd(STREAM, {b"entityId": entity_id}).decode()


def _bytes(value: object) -> bytes:
    return value if isinstance(value, bytes) else str(value).encode()


def letters(redis_client: redis.Redis) -> dict[str, dict]:
    """Dead letters by stream entry id."""
    return {fields["streamEntryId"]: fields for _id, fields in redis_client.xrange(DEAD)}


def settle(
    start_service, webapp, redis_client, raw, bad_entries: list[str]
) -> tuple[dict[str, dict], int]:
    """Enqueue the good applications behind the bad ones, run the service, wait until the good
    ones are confirmed and every bad one is dead-lettered. Returns the bad ones' letters and
    the bytes Redis sent meanwhile (the waits poll with replies of a few bytes)."""
    goods = [f"PendingApplication:{webapp.apply()}" for _ in range(GOOD)]
    sent_before = redis_client.info("stats")["total_net_output_bytes"]
    running = start_service()
    wait_until(
        lambda: redis_client.xlen(DEAD) >= len(bad_entries),
        timeout=60,
        what="every bad entry dead-lettered",
    )
    wait_until(
        lambda: redis_client.exists(*goods) == 0,
        timeout=60,
        what="the good applications confirmed and purged",
    )
    sent = redis_client.info("stats")["total_net_output_bytes"] - sent_before
    assert running.thread.is_alive()
    assert redis_client.xpending(STREAM, "depeg-backend-processor")["pending"] == 0
    for _id, fields in raw.xrange(DEAD):  # what a letter holds is text: escaped, not raw
        for value in fields.values():
            value.decode("utf-8")
    found = letters(redis_client)
    return {entry_id: found[entry_id] for entry_id in bad_entries}, sent


@pytest.mark.parametrize("where", ["entityId", "field name", "field value"])
def test_bytes_that_are_not_utf8(start_service, webapp, redis_client, raw, where):
    bad, expected = [], []
    for n in range(5):
        fields = webapp.application()
        entity_id = f"01HOSTILE{n:017d}".encode()
        if where == "entityId":
            entity_id = b"01HOST\xff\xfe" + str(n).encode()
        elif where == "field name":
            fields[b"note\xc3\x28"] = b"x"
        else:
            fields["duration"] = b"2592\xff000"
        bad.append(put(raw, entity_id, fields))
        expected.append((entity_id, fields))
    found, _sent = settle(start_service, webapp, redis_client, raw, bad)
    for entry_id, (entity_id, fields) in zip(bad, expected):
        letter = found[entry_id]
        assert letter["kind"] == "not_utf8", letter["reason"]
        decoded = entity_id.decode("utf-8", "surrogateescape")
        assert letter["entityId"] == (escaped(decoded) if where == "entityId" else decoded)
        kept = json.loads(letter["application"])  # its \udcNN escapes decode to the bytes
        assert {
            _bytes(k.encode("utf-8", "surrogateescape")): v.encode("utf-8", "surrogateescape")
            for k, v in kept.items()
        } == {_bytes(k): _bytes(v) for k, v in fields.items()}
        assert not raw.exists(b"PendingApplication:" + entity_id)


def huge_field(webapp) -> dict:
    return webapp.application(signature="0x" + "ab" * 50 * 1024)  # 100 KiB


def many_fields(webapp) -> dict:
    return {**webapp.application(), **{f"f{i}": "v" for i in range(20_000)}}


def twenty_megabytes(webapp) -> dict:
    return webapp.application(signature=b"\xab" * 20_000_000)


@pytest.mark.parametrize("make, count", [(huge_field, 10), (many_fields, 3), (twenty_megabytes, 2)])
def test_hashes_too_large_are_set_aside_by_their_sizes(
    start_service, webapp, redis_client, raw, make, count
):
    bad = [
        put(raw, f"01HUGE{make.__name__[:4].upper()}{n:016d}".encode(), make(webapp))
        for n in range(count)
    ]
    found, sent = settle(start_service, webapp, redis_client, raw, bad)
    for letter in found.values():
        assert letter["kind"] == "too_large", letter["reason"]
        assert json.loads(letter["application"]) == {}
        sizes = json.loads(letter["sizes"])
        assert sizes["fields"] >= 8 and len(json.dumps(letter)) < 10_000
    # The hashes never crossed the wire: all Redis sent while they were handled (with the 20
    # good applications) is far less than they hold (10 x 100 KiB, 3 x 20,000 fields, 2 x 20 MB).
    print(f"{make.__name__}: Redis sent {sent} bytes")
    assert sent < 300_000, sent


INVALID_IDS = [
    b"01HZX:K8Q4M7N2P5R8T1V4W7Y0",
    b"01HZX K8Q4M7N2P5R8T1V4W7Y0",
    b"01HZX3K8Q4M7N2P5R8T1V4W7Y0\n",
    b"x" * 10_000,
    b"y" * 2_000_000,
]


def test_invalid_entity_ids_whose_hash_exists(start_service, webapp, redis_client, raw):
    expected = {put(raw, entity_id, webapp.application()): entity_id for entity_id in INVALID_IDS}
    kept = {
        entry_id: application(redis_client, entity_id.decode())
        for entry_id, entity_id in expected.items()
    }
    found, _sent = settle(start_service, webapp, redis_client, raw, list(expected))
    for entry_id, entity_id in expected.items():
        letter = found[entry_id]
        assert letter["kind"] == "invalid_entry"
        assert json.loads(letter["application"]) == kept[entry_id], "the hash is kept"
        assert "\n" not in letter["entityId"] + letter["reason"]
        assert len(letter["entityId"]) < 1100 and len(letter["reason"]) < 1000
        assert len(letter["streamEntry"]) < 1200, "megabytes are cut, not copied"
        assert not raw.exists(b"PendingApplication:" + entity_id)


def test_error_codes_in_a_field_make_no_metric_series(start_service, webapp, redis_client, raw):
    bad = [
        put(raw, f"01HCODE{n:019d}".encode(), webapp.application(timestamp=f"ERROR:AB-{n}"))
        for n in range(300)
    ]
    settle(start_service, webapp, redis_client, raw, bad)
    assert {letter["kind"] for letter in letters(redis_client).values()} == {"invalid_field"}


def test_a_thousand_hostile_applications_leave_metrics_bounded(
    start_service, webapp, redis_client, raw
):
    bad = []
    for n in range(1000):
        kind = n % 5
        entity_id = f"01HMANY{n:019d}".encode()
        fields = webapp.application()
        if kind == 0:
            fields["timestamp"] = f"ERROR:AB-{n}"
        elif kind == 1:
            fields["bundleId"] = f"ERROR:DP-{n}:X"
        elif kind == 2:
            fields[f"ERROR:ZZ-{n}".encode() + b"\xff"] = b"1"
        elif kind == 3:
            entity_id = f"ERROR:DMH-{n}:{n}".encode()
        else:
            fields["policyHolder"] = f"ERROR:SMH-{n}\n# HELP forged"
        bad.append(put(raw, entity_id, fields))
    running = start_service()
    goods = [webapp.apply() for _ in range(GOOD)]
    wait_until(
        lambda: redis_client.xlen(DEAD) == len(bad),
        timeout=60,
        what="every hostile application dead-lettered",
    )
    wait_until(
        lambda: not any(application(redis_client, e) for e in goods),
        timeout=60,
        what="the good applications confirmed and purged",
    )
    scrape = running.metrics()
    kinds = {
        dict(labels)["reason"]: value
        for (name, labels), value in scrape.items()
        if name == "depeg_processor_applications_dead_lettered_total"
    }
    assert kinds == {"invalid_field": 600, "not_utf8": 200, "invalid_entry": 200}
    print(f"{len(scrape)} series on /metrics after {len(bad)} hostile applications")
    assert len(scrape) < 200, f"{len(scrape)} series on /metrics"
