"""A batch's applications sorted by their policy holders' state (see wallet.holders).

A holder held to account (a transaction of its application reverted on chain, the hold not
yet expired or lifted) has its applications set aside as `holder_held`, naming the holder,
the reverted transaction and its application, and until when: none is sent, so none can be
made to revert on the pool's gas. A holder with another application in flight (its busy
mark names a record that exists), or met a second time in this batch, waits: the application
stays pending and is tried again with the next batch, after the first one's transaction
settles. Nothing here does I/O.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Generic, TypeVar

from ..errors import PermanentError
from ..inbound.application import Application
from ..wallet.holders import Hold, HolderState

T = TypeVar("T")  # what the caller keeps with each application


@dataclasses.dataclass
class HolderCheck(Generic[T]):
    """A batch's applications sorted by their holders' state."""

    to_send: list[T] = dataclasses.field(default_factory=list)
    held: list[tuple[T, PermanentError]] = dataclasses.field(default_factory=list)
    waiting: list[T] = dataclasses.field(default_factory=list)


def held(hold: Hold) -> PermanentError:
    """The dead letter's reason for an application of a held holder."""
    return PermanentError(hold.describe(), kind="holder_held")


def check_holders(
    items: Sequence[T], apps: Sequence[Application], states: Sequence[HolderState]
) -> HolderCheck[T]:
    """Each item (with its application and its holder's state, in order) to send, set aside
    for its held holder, or kept waiting for the holder's application in flight."""
    result: HolderCheck[T] = HolderCheck()
    seen: set[str] = set()
    for item, app, state in zip(items, apps, states):
        holder = app.policy_holder.lower()
        if state.hold is not None:
            result.held.append((item, held(state.hold)))
        elif state.busy is not None or holder in seen:
            result.waiting.append(item)
        else:
            seen.add(holder)
            result.to_send.append(item)
    return result


def busy_in_write(items: Sequence[T], apps: Sequence[Application], busy: Sequence[str]) -> list[T]:
    """After a write-ahead refused for `busy` (entity ids whose holder another replica made
    busy or held meanwhile): those items, which wait for the next batch's check."""
    refused = set(busy)
    return [item for item, app in zip(items, apps) if app.entity_id in refused]
