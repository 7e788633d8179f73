"""The status of a transaction in flight, and the one table of the moves allowed between them.

The watcher alone moves a transaction, and only through `move`: a move the table does not
list is a bug (two steps of a round disagree on where a transaction is), raised at once as
`IllegalMove` rather than left to surface later as a purge of something unmined or a
replacement of something mined. The statuses live in memory only, beside the stored record:
nothing of them is written to Redis, so a process that starts, or takes a wallet over from
another, sees each record it had not seen as SENT and learns the rest from the node.

The real paths, as the tests follow them:
- sent → mined → confirmed (purged), or → reverted (settled as a revert);
- sent → mined → sent: its block was reorganised away, it waits again;
- sent → stuck: due for re-pricing, but MAX_FEE_PER_GAS leaves no room (or the node still
  refused the last bump); then → stuck at each later look while that lasts, → sent once a
  replacement is taken, or → mined once the base fee falls under what it pays;
- sent → refused → sent: the node refused its first send below the base fee, and the next
  round looked after it at once (resent, or replaced: → stuck when the cap is reached);
- sent → sent: replaced below the cap; a transaction the node dropped and that was resent
  with its stored bytes stays where it was, so no status says "dropped".
"""

from __future__ import annotations

import enum

from .. import errors


class Status(enum.Enum):
    """Where one transaction in flight is, as the watcher knows it."""

    SENT = "sent"  # signed and sent (or adopted); not seen in a block yet
    REFUSED = "refused"  # the node refused its first send below the base fee: look now
    STUCK = "stuck"  # due for re-pricing, and MAX_FEE_PER_GAS leaves no room
    MINED = "mined"  # a receipt says where; waits for its confirmations
    CONFIRMED = "confirmed"  # confirmed with status 1: purged
    REVERTED = "reverted"  # confirmed with status 0: settled as a revert


# (from, to) → what happened. Every move of a transaction in flight is one of these.
MOVES: dict[tuple[Status, Status], str] = {
    (Status.SENT, Status.SENT): "replaced below the fee cap",
    (Status.SENT, Status.REFUSED): "the node refused its first send below the base fee",
    (Status.SENT, Status.STUCK): "due for re-pricing, and the fee cap leaves no room",
    (Status.SENT, Status.MINED): "a receipt was found",
    (Status.REFUSED, Status.SENT): "looked after at once",
    (Status.REFUSED, Status.MINED): "a receipt was found before the look",
    (Status.STUCK, Status.STUCK): "still at the fee cap",
    (Status.STUCK, Status.SENT): "a replacement was taken at last",
    (Status.STUCK, Status.MINED): "a receipt was found",
    (Status.MINED, Status.SENT): "its block was reorganised away",
    (Status.MINED, Status.CONFIRMED): "confirmed with status 1: purged",
    (Status.MINED, Status.REVERTED): "confirmed with status 0: settled",
}


def allowed(current: Status, to: Status) -> bool:
    return (current, to) in MOVES


def move(current: Status, to: Status) -> Status:
    """`to`, if the table allows the move from `current`; else `IllegalMove`."""
    if not allowed(current, to):
        raise errors.IllegalMove(
            f"a transaction in flight cannot move from {current.value} to {to.value}"
        )
    return to
