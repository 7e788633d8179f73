"""inbound.read_batch: a batch of stream entries read in one call, with a load of the test's own
(no Redis): each entry ends in exactly one list of the Batch, in stream order."""

from __future__ import annotations

import pytest

from depeg_processor.inbound.batch import read_batch, unexpected
from depeg_processor.inbound.stream import Entry
from depeg_processor.inbound.untrusted import HashContent

from .helpers import CHAIN_ID, MESSAGE_HELPER, OTHER, signed_fields

A, B, C = "01HZX3K8Q4M7N2P5R8T1V4W7YA", "01HZX3K8Q4M7N2P5R8T1V4W7YB", "01HZX3K8Q4M7N2P5R8T1V4W7YC"


class Store:
    """The application hashes by entity id; `settled` ones the wallet knows already. Every
    load is kept, so a test sees what was read."""

    def __init__(self, hashes: dict[str, dict], settled: frozenset[str] = frozenset()) -> None:
        self.hashes = hashes
        self.settled = settled
        self.loads: list[list[str]] = []

    def load(self, candidates):
        self.loads.append([entity_id for _entry, entity_id in candidates])
        return [
            None if entity_id in self.settled else HashContent(self.hashes.get(entity_id, {}))
            for _entry, entity_id in candidates
        ]


def entry(n: int, **fields: str) -> Entry:
    return Entry(f"{n}-0", fields)


def read(entries, store):
    return read_batch(
        entries, load=store.load, chain_id=CHAIN_ID, verifying_contract=MESSAGE_HELPER
    )


def test_valid_applications_are_read_with_one_load() -> None:
    store = Store({A: signed_fields(), B: signed_fields(signature_id="other-id")})
    batch = read([entry(1, entityId=A), entry(2, entityId=B)], store)
    assert [r.application.entity_id for r in batch.applications] == [A, B]
    assert [r.entry.entry_id for r in batch.applications] == ["1-0", "2-0"]
    assert batch.rejections == [] and batch.waiting == [] and batch.failures == []
    assert store.loads == [[A, B]]


def test_a_bad_entry_and_a_bad_application_are_rejected_with_their_reasons() -> None:
    store = Store({A: signed_fields(signer=OTHER)})
    batch = read([entry(1, entityId="not an id"), entry(2, entityId=A)], store)
    assert batch.applications == []
    first, second = batch.rejections
    assert (first.entry.entry_id, first.content, first.error.kind) == (
        "1-0",
        None,
        "invalid_entry",
    )
    assert (second.entity_id, second.error.kind) == (A, "signature_invalid")
    assert second.content is not None and second.content.fields == store.hashes[A]
    assert store.loads == [[A]], "the bad entry's id is never used as a key"


def test_the_same_application_twice_waits_for_the_first() -> None:
    store = Store({A: signed_fields()})
    batch = read([entry(1, entityId=A), entry(2, entityId=A)], store)
    assert [r.entry.entry_id for r in batch.applications] == ["1-0"]
    assert [e.entry_id for e in batch.waiting] == ["2-0"]
    assert store.loads == [[A]]


@pytest.mark.parametrize("refused_first", [True, False])
def test_an_application_a_refused_entry_names_waits_for_that_letter(refused_first) -> None:
    """The refused entry's letter removes the hash: its application is read in the next batch,
    never before the letter is written."""
    refused, valid = entry(1, entityId=A, extra="\udcff"), entry(2, entityId=A)
    entries = [refused, valid] if refused_first else [valid, refused]
    store = Store({A: signed_fields()})
    batch = read(entries, store)
    assert [r.entry for r in batch.rejections] == [refused]
    assert batch.rejections[0].error.kind == "not_utf8"
    assert batch.waiting == [valid] and batch.applications == []
    assert store.loads == []


def test_settled_gone_and_unforeseen_entries_are_told_apart(monkeypatch) -> None:
    from depeg_processor.inbound import batch as batch_module

    real = batch_module.parse_application

    def parse(entity_id, fields):
        if entity_id == C:
            raise RuntimeError("a bug")
        return real(entity_id, fields)

    monkeypatch.setattr(batch_module, "parse_application", parse)
    store = Store({B: signed_fields(), C: signed_fields()}, settled=frozenset({A}))
    gone = entry(4)
    batch = read([entry(1, entityId=A), entry(2, entityId=B), entry(3, entityId=C), gone], store)
    assert [e.entry_id for e in batch.settled] == ["1-0"]
    assert [r.entry.entry_id for r in batch.applications] == ["2-0"]
    [(failed, entity_id, error)] = batch.failures
    assert (failed.entry_id, entity_id, str(error)) == ("3-0", C, "a bug")
    assert batch.gone == [gone] and batch.rejections == []


def test_an_unforeseen_error_becomes_a_quoted_reason() -> None:
    error = unexpected(ValueError("line\nbreak"), 3)
    assert error.kind == "other"
    assert error.reason == "unexpected error 3 times in a row: ValueError: 'line\\nbreak'"
