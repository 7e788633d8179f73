"""Copies: the same signature stored again under another entity id.

The product takes a signature once, so of two applications with one signature only the first
can succeed; the other's transaction would revert on gas this service pays. A copy is known by
the signature's mark (wallet.signatures): a mark of another entity id means that application's
transaction is in flight or confirmed, and the copy is set aside as `duplicate` naming it,
before any simulation. The same entity id coming back (a redelivery, a claim, a requeue, a
reissue) is not a copy. Two copies in one batch have no mark yet: the second waits for the next
batch, where the first's mark (written with its record) decides. Nothing here does I/O.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Generic, TypeVar

from ..errors import PermanentError
from ..inbound.application import Application
from ..wallet.signatures import SignatureMark

T = TypeVar("T")  # what the caller keeps with each application


@dataclasses.dataclass
class CopyCheck(Generic[T]):
    """A batch's applications sorted by their signatures' marks."""

    to_send: list[T] = dataclasses.field(default_factory=list)
    copies: list[tuple[T, PermanentError]] = dataclasses.field(default_factory=list)
    waiting: list[T] = dataclasses.field(default_factory=list)  # a copy within this batch


def duplicate(original: str) -> PermanentError:
    """The dead letter's reason for a copy of `original` (an application described)."""
    return PermanentError(
        f"duplicate of {original}: the same signature, which the product accepts only once",
        kind="duplicate",
    )


def check_copies(
    items: Sequence[T], apps: Sequence[Application], marks: Sequence[SignatureMark | None]
) -> CopyCheck[T]:
    """Each item (with its application and its signature's mark, in order) to send, set aside
    as a copy, or kept waiting for the next batch."""
    result: CopyCheck[T] = CopyCheck()
    seen: set[bytes] = set()
    for item, app, mark in zip(items, apps, marks):
        if mark is not None and mark.entity_id != app.entity_id:
            result.copies.append((item, duplicate(mark.describe())))
        elif app.signature in seen:
            result.waiting.append(item)
        else:
            seen.add(app.signature)
            result.to_send.append(item)
    return result


def taken_by_others(
    items: Sequence[T], apps: Sequence[Application], taken: Sequence[tuple[str, str]]
) -> CopyCheck[T]:
    """After a write-ahead refused for `taken` (entity id, the original described): those
    are copies, the others wait for the next batch (nothing of theirs was written)."""
    originals = dict(taken)
    result: CopyCheck[T] = CopyCheck()
    for item, app in zip(items, apps):
        if app.entity_id in originals:
            result.copies.append((item, duplicate(originals[app.entity_id])))
        else:
            result.waiting.append(item)
    return result
