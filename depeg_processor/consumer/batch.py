"""One batch of stream entries, as named steps: triage → load → validate → submit → settle.

- triage: an entry that is not an application's is set aside; the same application twice in a
  batch waits for the first;
- load: each application's record, hash (size-guarded), done marker and owner, one round trip;
- validate: an application with a record is resumed, one owned by another wallet or already
  confirmed is acknowledged, a malformed one or one with a bad signature is set aside;
- copies: the signatures' marks in one round trip; a copy of an application sent already
  (its signature marked by another entity id) is set aside as `duplicate`, a second one with
  a signature of this batch waits for the next (see duplicates);
- submit: the rest go to the wallet together (a copy another replica recorded meanwhile is
  refused by the write-ahead and set aside the same way);
- settle: each outcome decides its entry: sent, set aside, or kept for a retry.
"""

from __future__ import annotations

import dataclasses
import logging

from .. import errors
from ..inbound.application import Application, check_entry, parse_application
from ..inbound.stream import Entry
from ..inbound.untrusted import HashContent, HashGuard, shown
from ..keys import application_key
from ..wallet.records import TxRecord
from ..wallet.wallet import Wallet
from .config import ConsumerConfig
from .duplicates import Sorted, sort_out, taken_by_others
from .in_hand import InHand

log = logging.getLogger(__name__)

NOT_ITS_OWN = (errors.ProductInactive, errors.NodeUnavailable, errors.WaitingForRoom)

ToSend = tuple[Entry, Application, HashContent]  # an application ready for the wallet


@dataclasses.dataclass
class Loaded:
    """What Redis holds of one application, read in one round trip with the others."""

    entry: Entry
    entity_id: str
    record: TxRecord | None
    content: HashContent
    done: str | None
    owner: str | None


@dataclasses.dataclass
class BatchResult:
    retry: list[Entry]  # the entries kept for a retry, in stream order
    problem: Exception | None  # the transient failure that kept them
    sent: list[TxRecord]  # the transactions recorded for this batch


class BatchHandler:
    """Settles batches of one wallet's entries."""

    def __init__(self, wallet: Wallet, *, config: ConsumerConfig, in_hand: InHand) -> None:
        self._wallet = wallet
        self._config = config
        self._in_hand = in_hand
        self._dead = wallet.ctx.dead_letters

    def handle(self, entries: list[Entry]) -> BatchResult:
        retry: list[Entry] = []
        candidates = self._triage(entries, retry)
        parsed, unforeseen = self._validate(self._load(candidates), retry)
        to_send = self._without_copies(parsed, retry)
        result = BatchResult(retry, None, [])
        if to_send:
            self._submit(to_send, result)
        retry.sort(key=lambda e: entries.index(e))
        result.problem = result.problem or unforeseen
        return result

    def _triage(self, entries: list[Entry], retry: list[Entry]) -> list[tuple[Entry, str]]:
        candidates, seen = [], set()
        for entry in entries:
            log.debug("stream entry %s: application %s", entry.entry_id, shown(entry.entity_id))
            try:
                entity_id = check_entry(entry.fields)
            except errors.PermanentError as error:
                self._set_aside_entry(entry, error)
                self._in_hand.settled(entry)
                continue
            if entity_id in seen:  # the same application twice: after the first is recorded
                retry.append(entry)
            else:
                seen.add(entity_id)
                candidates.append((entry, entity_id))
        return candidates

    def _load(self, candidates: list[tuple[Entry, str]]) -> list[Loaded]:
        if not candidates:
            return []
        ctx = self._wallet.ctx
        hashes: HashGuard = ctx.queue.hashes
        records = ctx.records

        def read() -> list:
            pipe = ctx.shared.redis.pipeline(transaction=False)
            for _entry, entity_id in candidates:
                pipe.hgetall(records.key(entity_id))
                hashes.stage(pipe, application_key(entity_id))
                pipe.get(records.done_key(entity_id))
                pipe.get(records.owner_key(entity_id))
            return pipe.execute()

        replies = hashes.run(read)
        return [
            Loaded(
                entry=entry,
                entity_id=entity_id,
                record=TxRecord.from_fields(replies[4 * n]) if replies[4 * n] else None,
                content=HashGuard.parse(replies[4 * n + 1]),
                done=replies[4 * n + 2],
                owner=replies[4 * n + 3],
            )
            for n, (entry, entity_id) in enumerate(candidates)
        ]

    def _validate(
        self, loaded: list[Loaded], retry: list[Entry]
    ) -> tuple[list[ToSend], Exception | None]:
        parsed, unforeseen = [], None
        for item in loaded:
            if self._needs_no_send(item):
                self._in_hand.settled(item.entry)
                continue
            try:
                app = self._parse(item)
            except errors.PermanentError as error:
                self._set_aside(item.entry, item.entity_id, item.content, error)
                self._in_hand.settled(item.entry)
                continue
            except Exception as error:  # unforeseen, with this application alone
                log.exception("application %s: unexpected error", item.entity_id)
                if not self.unforeseen(item.entry, error):
                    retry.append(item.entry)
                    unforeseen = unforeseen or errors.TransientError(
                        f"application {item.entity_id}: unexpected {type(error).__name__}"
                    )
                continue
            parsed.append((item.entry, app, item.content))
        return parsed, unforeseen

    def _without_copies(self, parsed: list[ToSend], retry: list[Entry]) -> list[ToSend]:
        """The applications to submit: copies of one sent already are set aside (no chain
        call), a second with a signature of this batch is kept for the next one."""
        if not parsed:
            return []
        apps = [app for _entry, app, _content in parsed]
        marks = self._wallet.records.marks.get_many([app.signature for app in apps])
        return self._settle_copies(sort_out(parsed, apps, marks), retry)

    def _settle_copies(self, found: Sorted[ToSend], retry: list[Entry]) -> list[ToSend]:
        for (entry, app, content), error in found.copies:
            self._set_aside(entry, app.entity_id, content, error)
            self._in_hand.settled(entry)
        retry.extend(entry for entry, _app, _content in found.waiting)
        return found.to_send

    def _needs_no_send(self, item: Loaded) -> bool:
        """Resumed, another wallet's, or confirmed already: the entry is settled as it is."""
        queue, entry, entity_id = self._wallet.queue, item.entry, item.entity_id
        if item.record is None and item.owner is not None and item.owner != self._wallet.address:
            # Another wallet recorded a transaction for it (a requeue or a claim brought the
            # application here as well): its watcher completes it.
            log.info(
                "application %s belongs to wallet %s; entry %s acknowledged",
                entity_id,
                item.owner,
                entry.entry_id,
            )
            queue.ack(entry.entry_id)
        elif item.record is not None:  # already signed: resume it instead of signing again
            log.info(
                "application %s already has tx %s (nonce %s); resuming",
                entity_id,
                item.record.tx_hash,
                item.record.nonce,
            )
            queue.set_transaction_hashes([(entity_id, item.record.tx_hash)], ack=entry.entry_id)
        elif not item.content.fields and item.content.sizes is None and item.done:
            log.info(
                "application %s was already confirmed as tx %s; entry %s acknowledged",
                entity_id,
                item.done,
                entry.entry_id,
            )
            queue.ack(entry.entry_id)
        else:
            return False
        return True

    def _parse(self, item: Loaded) -> Application:
        item.content.check(application_key(item.entity_id))
        app = parse_application(item.entity_id, item.content.fields)
        app.check_signature(
            chain_id=self._config.chain_id, verifying_contract=self._config.message_helper
        )
        return app

    def _submit(self, to_send: list[ToSend], result: BatchResult) -> None:
        try:
            outcomes = self._wallet.submit(
                [app for _e, app, _c in to_send],
                entry_ids=[entry.entry_id for entry, _a, _c in to_send],
            )
        except errors.SignatureTaken as error:  # nothing written: the copies set aside
            apps = [app for _entry, app, _content in to_send]
            self._settle_copies(taken_by_others(to_send, apps, error.taken), result.retry)
            return
        metrics, now = self._wallet.ctx.shared.metrics, self._wallet.ctx.shared.clock.now()
        for (entry, app, content), outcome in zip(to_send, outcomes):
            if isinstance(outcome, TxRecord):
                metrics.submitted.inc()
                if app.timestamp is not None:
                    metrics.submit_latency.observe(max(0.0, now - app.timestamp))
                result.sent.append(outcome)
            elif isinstance(outcome, errors.PermanentError):
                self._set_aside(entry, app.entity_id, content, outcome)
            elif self._too_many_attempts(entry, outcome):
                error = errors.PermanentError(
                    f"simulation failed {self._config.max_deliveries} times in a row: {outcome}",
                    kind="too_many_deliveries",
                )
                self._set_aside(entry, app.entity_id, content, error)
            else:
                result.retry.append(entry)
                result.problem = result.problem or outcome

    def _too_many_attempts(self, entry: Entry, error: Exception) -> bool:
        """An error of this application's own simulation (not the node's, not a paused
        product, not a wait for what is in flight) that keeps coming back would block the
        queue: after REDIS_QUEUE_MAX_DELIVERIES attempts in a row it is set aside with it."""
        if isinstance(error, NOT_ITS_OWN):
            return False
        return self._in_hand.attempt(entry) >= self._config.max_deliveries

    def unforeseen(self, entry: Entry, error: Exception) -> bool:
        """An unforeseen error with `entry`: after REDIS_QUEUE_MAX_DELIVERIES in a row it is
        set aside (True), or only acknowledged if its transaction is already recorded (the
        receipt watcher owns it then)."""
        attempts = self._in_hand.attempt(entry)
        if attempts < self._config.max_deliveries:
            return False
        entity_id, records = entry.entity_id, self._wallet.records
        if entity_id and (records.get(entity_id) is not None or records.owned_elsewhere(entity_id)):
            log.warning(
                "application %s: entry %s failed %s times but its transaction is "
                "recorded; acknowledged",
                shown(entity_id),
                entry.entry_id,
                attempts,
            )
            self._wallet.queue.ack(entry.entry_id)
        else:
            self._dead.set_aside(
                entity_id=entity_id,
                kind="other",
                entry_id=entry.entry_id,
                entry_fields=entry.fields,
                reason=f"unexpected error {attempts} times in a row: {type(error).__name__}: "
                f"{shown(str(error))}",
                application=self._wallet.queue.load_application(entity_id) if entity_id else {},
            )
        self._in_hand.settled(entry)
        return True

    def _set_aside_entry(self, entry: Entry, error: errors.PermanentError) -> None:
        if not entry.fields:  # deleted from the stream while pending: nothing to keep
            log.info("stream entry %s no longer exists; acknowledged", entry.entry_id)
            self._wallet.queue.ack(entry.entry_id)
            return
        # Whatever the id, a hash under it goes into the letter (by size) before it is removed.
        queue = self._wallet.queue
        application = (
            queue.load_application(entry.entity_id) if entry.entity_id else HashContent({})
        )
        self._set_aside(entry, entry.entity_id, application, error)

    def _set_aside(
        self,
        entry: Entry,
        entity_id: str | None,
        content: HashContent,
        error: errors.PermanentError,
    ) -> None:
        self._dead.set_aside(
            entity_id=entity_id,
            reason=error.reason,
            kind=error.kind,
            application=content,
            entry_id=entry.entry_id,
            entry_fields=entry.fields,
        )
