"""untrusted: escaping what users sent, and loading application hashes guarded by size."""

from __future__ import annotations

import pytest

from depeg_processor.errors import PermanentError
from depeg_processor.inbound.untrusted import (
    MAX_FIELDS,
    MAX_HASH_BYTES,
    MAX_VALUE_BYTES,
    HashGuard,
    escaped,
    shown,
)

from .helpers import signed_fields

KEY = "PendingApplication:X"


@pytest.fixture
def guard(fake_redis) -> HashGuard:
    return HashGuard(fake_redis)


def test_bytes_that_are_not_utf8_round_trip_through_the_client(fake_redis, raw_redis) -> None:
    raw_redis.hset(KEY, b"na\xffme", b"va\xfe\n")
    [(name, value)] = fake_redis.hgetall(KEY).items()
    assert (name, value) == ("na\udcffme", "va\udcfe\n")
    fake_redis.hset("copy", name, value)  # written back as the very same bytes
    assert raw_redis.hgetall("copy") == {b"na\xffme": b"va\xfe\n"}


def test_escaped_shows_odd_bytes_on_one_line_and_states_the_size_of_what_it_cuts() -> None:
    assert escaped("ab\udcffc\u00e9\nX") == "ab\\udcffc\u00e9\\nX"
    assert escaped("x" * 5000, 10) == "xxxxxxxxxx…[5000 bytes]"
    assert escaped("\udcff" * 20, 12) == "\\udcff\\udcff…[20 bytes]"


def test_shown_quotes_so_a_value_cannot_forge_a_log_line() -> None:
    assert shown("A\n2026-01-01 INFO forged") == "'A\\n2026-01-01 INFO forged'"
    assert shown("\udcff") == "'\\udcff'"
    assert shown("y" * 1000, 5) == "'yyyyy'…[1000 bytes]"
    assert shown(None) == "None"


def test_a_hash_the_web_app_writes_is_loaded_whole(fake_redis, guard) -> None:
    fake_redis.hset(KEY, mapping=signed_fields())
    content = guard.load(KEY)
    assert content.fields == signed_fields() and content.sizes is None
    content.check(KEY)
    assert guard.load("PendingApplication:missing").fields == {}


def test_a_field_over_the_limit_is_refused_with_its_sizes_only(
    fake_redis, raw_redis, guard
) -> None:
    fake_redis.hset(KEY, mapping=signed_fields(duration="9" * (MAX_VALUE_BYTES + 1)))
    raw_redis.hset(KEY, b"n\xff" * 40_000, b"v")
    content = guard.load(KEY)
    assert content.fields == {}
    oversized = sorted(content.sizes["oversized"], key=lambda item: item["nameBytes"])
    assert oversized == [
        {"name": "duration", "nameBytes": 8, "valueBytes": MAX_VALUE_BYTES + 1},
        {"name": "n\\udcff" * 32, "nameBytes": 80_000, "valueBytes": 1},
    ]
    assert content.sizes["fields"] == len(signed_fields()) + 1
    with pytest.raises(PermanentError) as refused:
        content.check(KEY)
    assert refused.value.kind == "too_large" and "65537" in refused.value.reason


def test_too_many_fields_are_refused_by_their_count(fake_redis, guard) -> None:
    fake_redis.hset(KEY, mapping={f"f{i}": "v" for i in range(MAX_FIELDS + 1)})
    content = guard.load(KEY)
    assert content.fields == {} and content.sizes["fields"] == MAX_FIELDS + 1
    with pytest.raises(PermanentError, match=f"{MAX_FIELDS + 1} fields") as refused:
        content.check(KEY)
    assert refused.value.kind == "too_large"


def test_a_hash_too_large_in_all_is_refused(fake_redis, guard) -> None:
    size = MAX_VALUE_BYTES - 10
    fake_redis.hset(KEY, mapping={f"f{i}": "v" * size for i in range(MAX_HASH_BYTES // size + 1)})
    content = guard.load(KEY)
    assert content.fields == {} and content.sizes["bytes"] > MAX_HASH_BYTES
    assert content.sizes["oversized"] == []
    with pytest.raises(PermanentError, match="bytes in all"):
        content.check(KEY)


def test_a_key_that_is_not_a_hash_is_refused_not_retried(fake_redis, guard) -> None:
    fake_redis.set(KEY, "a string")
    content = guard.load(KEY)
    with pytest.raises(PermanentError) as refused:
        content.check(KEY)
    assert refused.value.kind == "invalid_entry"


def test_a_pipeline_reloads_the_script_when_redis_forgot_it(fake_redis, guard) -> None:
    fake_redis.hset(KEY, mapping={"a": "1"})
    calls = []

    def execute() -> list:
        calls.append(1)
        pipe = fake_redis.pipeline(transaction=False)
        guard.stage(pipe, KEY)
        pipe.get("other")
        return pipe.execute()

    fake_redis.script_flush()
    [reply, other] = guard.run(execute)
    assert HashGuard.parse(reply).fields == {"a": "1"} and other is None
    assert len(calls) == 2
    guard.run(execute)
    assert len(calls) == 3, "once loaded, one round trip"


@pytest.mark.parametrize("production", [False, True])
def test_a_value_with_newlines_stays_on_its_log_line(production) -> None:
    import io
    import json
    import logging

    from depeg_processor.logs import configure_logging

    stream, root = io.StringIO(), logging.getLogger()
    saved = root.handlers[:], root.level
    configure_logging(level="INFO", production=production, stream=stream)
    try:
        value = "X\n2026-11-28 INFO [main] forged: all good\udcff"
        logging.getLogger("depeg_processor.test").info("application %s", shown(value))
    finally:
        root.handlers[:] = saved[0]
        root.setLevel(saved[1])
    [line] = stream.getvalue().splitlines()
    if production:
        assert json.loads(line)["message"] == f"application {value!r}"
    assert "forged" in line
