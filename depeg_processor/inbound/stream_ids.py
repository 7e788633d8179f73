"""Redis stream ids (`<milliseconds>-<sequence>`) as numbers, for comparing and stepping.

Ids compare as the pair of integers, never as text ("10-0" is above "9-0"). A bare `<millis>`
counts as sequence 0, as Redis reads it.
"""

from __future__ import annotations

MAX_SEQUENCE = 2**64 - 1


def id_key(entry_id: str) -> tuple[int, int]:
    """The id as (milliseconds, sequence): a sort key."""
    millis, _, sequence = entry_id.partition("-")
    return int(millis), int(sequence or 0)


def id_after(entry_id: str) -> str:
    """The smallest stream id above `entry_id`."""
    millis, sequence = id_key(entry_id)
    return f"{millis}-{sequence + 1}" if sequence < MAX_SEQUENCE else f"{millis + 1}-0"
