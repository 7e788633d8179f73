"""Where the node simulates each call alone (no `eth_simulateV1`): the guarantee kept another way.

Each application is an `eth_call` against "pending", which holds what the node's pending block
holds. So the pool's gas in flight is held within the pending block's gas limit (that block
then holds all of it), and of one batch only the first application of a bundle and of a policy
holder goes out: the others wait for the next batch, which sees it pending.
"""

from __future__ import annotations

from collections.abc import Sequence

from .. import errors
from ..inbound.application import Application


def held_back(apps: Sequence[Application], gas: Sequence[int], room: int | None) -> list[bool]:
    """Which applications wait for the next batch, given their gas limits and the gas left in
    the pending block after what is in flight (None: unknown, no limit by gas)."""
    held, seen = [], set()
    for app, limit in zip(apps, gas):
        keys = {("bundle", app.bundle_id), ("holder", app.policy_holder)}
        wait = bool(keys & seen) or (room is not None and limit > room)
        if not wait:
            seen |= keys
            room = None if room is None else room - limit
        held.append(wait)
    return held


def waiting_for_room(app: Application) -> errors.WaitingForRoom:
    return errors.WaitingForRoom(
        f"application {app.entity_id} waits for room: the node simulates each call alone, so "
        "it goes after what is in flight is pending"
    )
