"""The stream entries the consumer holds (read and not yet settled, so kept for a retry), and
their failed attempts in a row.

Entries that fail for a transient reason stay in memory and are retried in order after a
pause, without being read again: a stream entry's delivery count then grows only when a
process restarts or takes over. Attempts are counted per entry and forgotten once the entry is
no longer held, so the count never outgrows the batch. Entries that only wait for their policy
holder's application in flight (`waiting`) failed nothing: while they are all that is held,
new entries are read beside them, so one holder's wait holds up nobody else.
"""

from __future__ import annotations

from ..inbound.stream import Entry


class HeldEntries:
    """Entries held (in stream order) and the failed attempts of each."""

    def __init__(self) -> None:
        self.entries: list[Entry] = []
        self._attempts: dict[str, int] = {}
        self._waiting: set[str] = set()  # entry ids that wait for their holder

    @property
    def idle(self) -> bool:
        """Nothing held: between batches, no entry waiting for a retry."""
        return not self.entries

    @property
    def only_waiting(self) -> bool:
        """Entries are held, and each only waits for its policy holder: read more beside."""
        return bool(self.entries) and all(e.entry_id in self._waiting for e in self.entries)

    def settled(self, entry: Entry) -> None:
        """`entry` needs no retry, whatever happens to the rest of its batch."""
        self.entries = [e for e in self.entries if e is not entry]
        self._attempts.pop(entry.entry_id, None)
        self._waiting.discard(entry.entry_id)

    def keep(self, retry: list[Entry], waiting: list[Entry] = ()) -> None:
        """After a batch: these entries are retried (`waiting`, of them, for their holder);
        the others' attempts are forgotten."""
        self.entries = retry
        ids = {entry.entry_id for entry in retry}
        self._attempts = {i: n for i, n in self._attempts.items() if i in ids}
        self._waiting = {entry.entry_id for entry in waiting} & ids

    def add(self, entries: list[Entry]) -> None:
        """Entries read beside those held (one delivered again is not taken twice)."""
        ids = {entry.entry_id for entry in self.entries}
        self.entries = self.entries + [e for e in entries if e.entry_id not in ids]

    def attempt(self, entry: Entry) -> int:
        """Count one more failed attempt at `entry`; how many in a row so far."""
        attempts = self._attempts.get(entry.entry_id, 0) + 1
        self._attempts[entry.entry_id] = attempts
        return attempts

    def attempts(self) -> dict[str, int]:
        """Entry id -> failed attempts in a row, of the entries that have any."""
        return dict(self._attempts)
