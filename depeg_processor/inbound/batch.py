"""A batch of stream entries read, in one call: the applications to send, and the rest sorted.

`read_batch` does every step that treats the web app's data as untrusted input, in order:
- each entry is checked (an `entityId`, text throughout); one that fails is rejected, one
  deleted from the stream meanwhile is `gone`;
- the same application twice waits for the next batch (after the first is settled), as does
  one whose id an entry rejected names (that rejection's letter removes the hash);
- `load` (the wallet's) reads the applications' hashes in one round trip, and settles those
  whose fate is known already (None in their place);
- each hash is checked for size and validated field by field, with its signature: a bad one
  is rejected, one that fails in a way nobody foresaw is a failure of that application alone.

Nothing here writes but `load`, which acknowledges the entries it settles: the caller acts on
the `Batch`, which keeps stream order in each list.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable, Sequence

from ..errors import PermanentError
from ..keys import application_key
from .application import Application, check_entry, parse_application
from .stream import Entry
from .untrusted import HashContent, shown

log = logging.getLogger(__name__)

# (stream entry, entity id) -> the application's hash, or None once its entry is settled.
Load = Callable[[Sequence[tuple[Entry, str]]], Sequence[HashContent | None]]


@dataclasses.dataclass(frozen=True)
class Received:
    """An application ready to be sent, with its entry and the hash it was read from."""

    entry: Entry
    application: Application
    content: HashContent


@dataclasses.dataclass(frozen=True)
class Rejection:
    """An entry whose application can never succeed as it stands."""

    entry: Entry
    entity_id: str | None
    error: PermanentError
    content: HashContent | None = None  # None: the entry itself was refused, its hash unread


@dataclasses.dataclass
class Batch:
    """One batch, read: each entry is in exactly one list."""

    applications: list[Received] = dataclasses.field(default_factory=list)
    rejections: list[Rejection] = dataclasses.field(default_factory=list)
    settled: list[Entry] = dataclasses.field(default_factory=list)  # known already (`load`)
    gone: list[Entry] = dataclasses.field(default_factory=list)  # deleted from the stream
    waiting: list[Entry] = dataclasses.field(default_factory=list)  # for the next batch
    failures: list[tuple[Entry, str, Exception]] = dataclasses.field(default_factory=list)


def read_batch(
    entries: Sequence[Entry], *, load: Load, chain_id: int, verifying_contract: str
) -> Batch:
    """The batch's applications and rejections; see the module's docstring for the steps.
    Signatures are checked against the product's message helper (`verifying_contract`) on
    `chain_id`."""
    batch = Batch()
    candidates = _candidates(entries, batch)
    contents = load(candidates) if candidates else []
    for (entry, entity_id), content in zip(candidates, contents):
        if content is None:
            batch.settled.append(entry)
            continue
        try:
            app = _parse(entity_id, content, chain_id, verifying_contract)
        except PermanentError as error:
            batch.rejections.append(Rejection(entry, entity_id, error, content))
        except Exception as error:  # unforeseen, with this application alone
            batch.failures.append((entry, entity_id, error))
        else:
            batch.applications.append(Received(entry, app, content))
    return batch


def unexpected(error: Exception, attempts: int) -> PermanentError:
    """The reason an entry is set aside after failing `attempts` times in a way nobody
    foresaw (the error's text quoted: it may carry what users sent)."""
    return PermanentError(
        f"unexpected error {attempts} times in a row: {type(error).__name__}: {shown(str(error))}",
        kind="other",
    )


def _candidates(entries: Sequence[Entry], batch: Batch) -> list[tuple[Entry, str]]:
    """The entries whose applications are read now, with their entity ids."""
    checked, refused = [], set()
    for entry in entries:
        log.debug("stream entry %s: application %s", entry.entry_id, shown(entry.entity_id))
        if not entry.fields:
            batch.gone.append(entry)
            continue
        try:
            checked.append((entry, check_entry(entry.fields)))
        except PermanentError as error:
            batch.rejections.append(Rejection(entry, entry.entity_id, error))
            if entry.entity_id:
                refused.add(entry.entity_id)
    candidates, seen = [], set(refused)
    for entry, entity_id in checked:
        if entity_id in seen:  # the same application again: after the first is settled
            batch.waiting.append(entry)
        else:
            seen.add(entity_id)
            candidates.append((entry, entity_id))
    return candidates


def _parse(
    entity_id: str, content: HashContent, chain_id: int, verifying_contract: str
) -> Application:
    content.check(application_key(entity_id))
    app = parse_application(entity_id, content.fields)
    app.check_signature(chain_id=chain_id, verifying_contract=verifying_contract)
    return app
