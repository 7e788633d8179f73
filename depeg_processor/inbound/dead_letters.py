"""The dead-letter stream: applications set aside for good, kept for an operator.

An application that can never succeed as it stands (invalid, refused by the product, delivered
too often) is appended here with its reason, and only then acknowledged and removed from the
web app's keys: MULTI does not roll back, so nothing is dropped before its letter is stored.
After fixing the cause an operator puts letters back with `python -m depeg_processor requeue`
(`restore`). The stream is bounded: letters older than REDIS_DEAD_LETTER_RETENTION are
trimmed by the housekeeping thread (see retention), and each append keeps at most
REDIS_DEAD_LETTER_MAX_COUNT letters (XADD MAXLEN), so a flood of invalid applications cannot
fill Redis.

A letter holds what users sent, so it is escaped (see untrusted): it can neither carry bytes
that are not UTF-8 nor copy megabytes: a letter over LETTER_MAX_BYTES drops what users sent
(the stream entry's values, then the application) and records its original size instead, and
`restore` turns a kept application back into the very same hash.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Mapping

import redis

from ..errors import PermanentError
from ..keys import application_key, owner_key
from .application import check_entity_id
from .untrusted import KEPT_CHARS, HashContent, escaped, shown

log = logging.getLogger(__name__)

LETTER_MAX_BYTES = 64 * 1024  # one letter at most; a real application's letter is about 2 KB
DROPPED_FIRST = ("streamEntry", "application")  # what users sent, least useful first

# Commands staged on a pipeline inside MULTI.
Staged = Callable[[redis.client.Pipeline], None]


class DeadLetters:
    """The dead letters of one applications stream (`key`), and that stream's entries they
    settle for the consumer `group`."""

    def __init__(
        self,
        client: redis.Redis,
        *,
        stream: str,
        group: str,
        key: str,
        clock: Callable[[], float] = time.time,
        on_dead_letter: Callable[[str], None] = lambda kind: None,
        max_letters: int | None = None,
    ) -> None:
        self._redis = client
        self.stream = stream
        self.group = group
        self.key = key
        self._clock = clock
        self._on_dead_letter = on_dead_letter
        self._max_letters = max_letters or None

    def set_aside(
        self,
        *,
        entity_id: str | None,
        reason: str,
        application: HashContent | Mapping[str, str],
        kind: str = "other",
        entry_id: str | None = None,
        entry_fields: Mapping[str, str] | None = None,
        commit: Callable[[Staged], None] | None = None,
    ) -> str:
        """Set an application aside for good: append it with its reason to the dead-letter
        stream, then acknowledge its entry and remove the pending hash together; returns the
        letter's id. `kind` is what the metrics count it by (a fixed set, never user text).
        `commit`, if given, runs that removal inside a transaction of its own that drops more
        (a wallet's record of the application) at once, so no crash leaves one without the
        other."""
        letter = self._letter(
            entity_id=entity_id,
            reason=reason,
            application=application,
            kind=kind,
            entry_id=entry_id,
            entry_fields=entry_fields,
        )
        # The dead letter is written first and on its own: MULTI does not roll back, so the
        # entry is acknowledged and the hash removed only once the letter is safely stored.
        if self._max_letters is None:
            dead_id = self._redis.xadd(self.key, letter)
        else:
            dead_id = self._redis.xadd(
                self.key, letter, maxlen=self._max_letters, approximate=False
            )

        def remove(pipe: redis.client.Pipeline) -> None:
            if entry_id is not None:
                pipe.xack(self.stream, self.group, entry_id)
            if entity_id:
                pipe.delete(application_key(entity_id))
                pipe.delete(owner_key(self.stream, entity_id))

        if commit is None:
            pipe = self._redis.pipeline(transaction=True)
            remove(pipe)
            pipe.execute()
        else:
            commit(remove)
        self._on_dead_letter(kind)
        log.warning(
            "dead-lettered application %s (entry %s) as %s (%s): %r",
            shown(entity_id),
            entry_id,
            dead_id,
            kind,
            reason,
        )
        return dead_id

    def _letter(
        self,
        *,
        entity_id: str | None,
        reason: str,
        application: HashContent | Mapping[str, str],
        kind: str,
        entry_id: str | None,
        entry_fields: Mapping[str, str] | None,
    ) -> dict[str, str]:
        """The letter's fields. What users sent is kept escaped: `application` as JSON (bytes
        that are not UTF-8 as \\udcNN escapes, which `restore` turns back into the same bytes),
        or only its `sizes` when it was too large to load; an entity id that is not a valid id,
        and the stream entry's values, as text cut to KEPT_CHARS with their original size."""
        if not isinstance(application, HashContent):
            application = HashContent(dict(application))
        valid_id = _valid_entity_id(entity_id)
        letter = {
            "entityId": entity_id if valid_id else escaped(entity_id or ""),
            "reason": escaped(reason, 4 * KEPT_CHARS),
            "kind": kind,
            "streamEntryId": entry_id or "",
            "application": json.dumps(application.fields, sort_keys=True),
            "failedAt": f"{self._clock():.3f}",
        }
        if application.sizes is not None:
            letter["sizes"] = json.dumps(application.sizes, sort_keys=True)
        if entry_fields is not None and (entry_fields.keys() != {"entityId"} or not valid_id):
            letter["streamEntry"] = json.dumps(
                {escaped(name): escaped(value) for name, value in entry_fields.items()},
                sort_keys=True,
            )
        return _capped(letter)

    def trim(self, older_than: float) -> int:
        """Remove the letters appended more than `older_than` seconds ago; returns how many
        went. Letters are ids by time of writing, so this is one exact XTRIM MINID."""
        cutoff_ms = int((self._clock() - older_than) * 1000)
        if older_than <= 0 or cutoff_ms <= 0:
            return 0
        return int(self._redis.xtrim(self.key, minid=f"{cutoff_ms}-0", approximate=False))

    def list(self, count: int = 100) -> list[tuple[str, dict]]:
        """The oldest `count` letters: (letter id, fields)."""
        return [
            (entry_id, dict(fields))
            for entry_id, fields in self._redis.xrange(self.key, count=count)
        ]

    def restore(self, dead_id: str) -> str:
        """Put a dead-lettered application back: restore its hash, enqueue its id again as the
        web app does, and remove the dead letter, in one transaction; returns the new stream
        entry's id. KeyError for an unknown letter, ValueError for one with no application
        (an invalid id, a hash too large to have been kept); neither changes anything."""
        found = self._redis.xrange(self.key, min=dead_id, max=dead_id)
        if not found:
            raise KeyError(f"no dead letter {dead_id} in {self.key}")
        fields = found[0][1]
        entity_id = fields.get("entityId")
        try:
            application = json.loads(fields.get("application") or "{}")
        except ValueError:
            application = None
        if (
            not _valid_entity_id(entity_id)
            or not isinstance(application, dict)
            or not application
            or not all(isinstance(v, str) for v in application.values())
        ):
            raise ValueError(f"dead letter {dead_id} has no application to requeue")
        application.pop("transactionHash", None)
        key = application_key(entity_id)
        pipe = self._redis.pipeline(transaction=True)
        pipe.delete(key)
        pipe.hset(key, mapping=application)
        pipe.xadd(self.stream, {"entityId": entity_id})
        pipe.xdel(self.key, dead_id)
        return pipe.execute()[2]


def _size(letter: Mapping[str, str]) -> int:
    return sum(len(name.encode()) + len(value.encode()) for name, value in letter.items())


def _capped(letter: dict[str, str]) -> dict[str, str]:
    """The letter within LETTER_MAX_BYTES: what users sent is dropped, largest part last,
    until it fits, and the letter says how large it was (`originalBytes`). The reason, kind
    and ids are already bounded and always kept."""
    size = _size(letter)
    if size <= LETTER_MAX_BYTES:
        return letter
    letter["originalBytes"] = str(size)
    for name in DROPPED_FIRST:
        if name in letter and _size(letter) > LETTER_MAX_BYTES:
            letter[name] = "{}"
    return letter


def _valid_entity_id(entity_id: str | None) -> bool:
    try:
        check_entity_id(entity_id)
    except PermanentError:
        return False
    return True
