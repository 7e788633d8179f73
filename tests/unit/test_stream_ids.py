"""inbound.stream_ids: stream ids compared and stepped as numbers."""

from __future__ import annotations

from depeg_processor.inbound.stream_ids import MAX_SEQUENCE, id_after, id_key


def test_ids_compare_as_numbers_not_text() -> None:
    assert sorted(["10-0", "9-5", "9-10"], key=id_key) == ["9-5", "9-10", "10-0"]
    assert id_key("1700000000000") == (1700000000000, 0)


def test_the_next_id_above() -> None:
    assert id_after("5-0") == "5-1"
    assert id_after("5-41") == "5-42"
    assert id_after(f"5-{MAX_SEQUENCE}") == "6-0"
