"""One batch of stream entries, as named steps: read → copies → holders → submit → settle.

- read (inbound.read_batch, with the wallet's load): the entries checked, each application's
  record, hash (size-guarded), done marker and owner in one round trip, the hashes validated.
  An entry that is not an application's, or a malformed application or one with a bad
  signature, is set aside; one resumed, owned by another wallet or confirmed already is
  settled; the same application twice in a batch waits for the first;
- copies: the signatures' marks in one round trip; a copy of an application sent already
  (its signature marked by another entity id) is set aside as `duplicate`, a second one with
  a signature of this batch waits for the next (see duplicates);
- holders: their state in one round trip (see holders): the applications of a holder held
  to account are set aside as `holder_held`, one whose holder has an application in flight
  (or a first one in this batch) waits, kept without reading being held up by it;
- submit: the rest go to the wallet together (a copy another replica recorded meanwhile is
  refused by the write-ahead and set aside the same way; a holder another replica made busy
  meanwhile waits);
- settle: each outcome decides its entry: sent, set aside, or kept for a retry.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable

from .. import errors
from ..inbound.batch import Batch, Received, Rejection, read_batch, unexpected
from ..inbound.stream import Entry
from ..inbound.untrusted import HashContent
from ..metrics import Metrics
from ..wallet.applied import Applied
from ..wallet.records import TxRecord
from ..wallet.wallet import Wallet
from .config import ConsumerConfig
from .duplicates import CopyCheck, check_copies, taken_by_others
from .held import HeldEntries
from .holders import busy_in_write, check_holders

log = logging.getLogger(__name__)

# Failures that say nothing of the application itself (the node's, a paused product, a wait
# for room in flight): they never count towards setting it aside.
NOT_THE_APPLICATIONS_FAULT = (
    errors.ProductInactive,
    errors.NodeUnavailable,
    errors.WaitingForRoom,
)


@dataclasses.dataclass
class BatchResult:
    retry: list[Entry]  # the entries kept for a retry, in stream order
    problem: Exception | None  # the transient failure that kept them
    sent: list[TxRecord]  # the transactions recorded for this batch
    waiting: list[Entry] = dataclasses.field(default_factory=list)  # in `retry`: for a holder


class BatchHandler:
    """Settles batches of one wallet's entries."""

    def __init__(
        self,
        wallet: Wallet,
        *,
        config: ConsumerConfig,
        held: HeldEntries,
        metrics: Metrics,
        now: Callable[[], float],
    ) -> None:
        self._wallet = wallet
        self._config = config
        self._held = held
        self._metrics = metrics
        self._now = now

    def handle(self, entries: list[Entry]) -> BatchResult:
        batch = read_batch(
            entries,
            load=self._wallet.unsent,
            chain_id=self._config.chain_id,
            verifying_contract=self._config.message_helper,
        )
        retry = list(batch.waiting)
        unforeseen = self._settle_read(batch, retry)
        result = BatchResult(retry, None, [])
        to_send = self._without_held(self._without_copies(batch.applications, retry), result)
        if to_send:
            self._submit(to_send, result)
        retry.sort(key=lambda e: entries.index(e))
        result.problem = result.problem or unforeseen
        return result

    def _settle_read(self, batch: Batch, retry: list[Entry]) -> Exception | None:
        """What reading decided: entries gone or settled already, rejections set aside, and
        the unforeseen failures counted (kept for a retry until they are too many)."""
        for entry in batch.settled:
            self._held.settled(entry)
        for entry in batch.gone:  # deleted from the stream while pending: nothing to keep
            log.info("stream entry %s no longer exists; acknowledged", entry.entry_id)
            self._wallet.queue.ack(entry.entry_id)
            self._held.settled(entry)
        for rejection in batch.rejections:
            self._set_aside_rejected(rejection)
            self._held.settled(rejection.entry)
        unforeseen = None
        for entry, entity_id, error in batch.failures:
            log.error("application %s: unexpected error", entity_id, exc_info=error)
            if not self.unforeseen(entry, error):
                retry.append(entry)
                unforeseen = unforeseen or errors.TransientError(
                    f"application {entity_id}: unexpected {type(error).__name__}"
                )
        return unforeseen

    def _without_copies(self, received: list[Received], retry: list[Entry]) -> list[Received]:
        """The applications to submit: copies of one sent already are set aside (no chain
        call), a second with a signature of this batch is kept for the next one."""
        if not received:
            return []
        apps = [item.application for item in received]
        marks = self._wallet.signature_marks([app.signature for app in apps])
        return self._settle_copies(check_copies(received, apps, marks), retry)

    def _settle_copies(self, found: CopyCheck[Received], retry: list[Entry]) -> list[Received]:
        for item, error in found.copies:
            self._set_aside(item.entry, item.application.entity_id, item.content, error)
            self._held.settled(item.entry)
        retry.extend(item.entry for item in found.waiting)
        return found.to_send

    def _without_held(self, received: list[Received], result: BatchResult) -> list[Received]:
        """The applications to submit: a held holder's are set aside, a busy holder's wait."""
        if not received:
            return []
        apps = [item.application for item in received]
        states = self._wallet.holders([app.policy_holder for app in apps])
        found = check_holders(received, apps, states)
        for item, error in found.held:
            self._set_aside(item.entry, item.application.entity_id, item.content, error)
            self._held.settled(item.entry)
        self._wait_for_holders(found.waiting, result)
        return found.to_send

    def _wait_for_holders(self, waiting: list[Received], result: BatchResult) -> None:
        for item in waiting:
            log.info(
                "application %s waits: its policy holder %s has another application in flight",
                item.application.entity_id,
                item.application.policy_holder,
            )
        result.retry.extend(item.entry for item in waiting)
        result.waiting.extend(item.entry for item in waiting)

    def _submit(self, to_send: list[Received], result: BatchResult) -> None:
        apps = [item.application for item in to_send]
        try:
            outcomes = self._wallet.submit(
                apps, entry_ids=[item.entry.entry_id for item in to_send]
            )
        except errors.SignatureTaken as error:  # nothing written: the copies set aside
            self._settle_copies(taken_by_others(to_send, apps, error.taken), result.retry)
            return
        except errors.HolderBusy as error:  # nothing written: those wait, the rest go again
            busy = busy_in_write(to_send, apps, error.busy)
            self._wait_for_holders(busy, result)
            result.retry.extend(item.entry for item in to_send if item not in busy)
            return
        now = self._now()
        for item, outcome in zip(to_send, outcomes):
            entry, app = item.entry, item.application
            if isinstance(outcome, TxRecord):
                self._metrics.submitted.inc()
                if app.timestamp is not None:
                    self._metrics.submit_latency.observe(max(0.0, now - app.timestamp))
                result.sent.append(outcome)
            elif isinstance(outcome, Applied):  # the pool's own transaction created it
                self._held.settled(entry)
            elif isinstance(outcome, errors.PermanentError):
                self._set_aside(entry, app.entity_id, item.content, outcome)
            elif self._too_many_attempts(entry, outcome):
                error = errors.PermanentError(
                    f"simulation failed {self._config.max_deliveries} times in a row: {outcome}",
                    kind="too_many_deliveries",
                )
                self._set_aside(entry, app.entity_id, item.content, error)
            else:
                result.retry.append(entry)
                result.problem = result.problem or outcome

    def _too_many_attempts(self, entry: Entry, error: Exception) -> bool:
        """An error of this application's own simulation (not the node's, not a paused
        product, not a wait for what is in flight) that keeps coming back would block the
        queue: after REDIS_QUEUE_MAX_DELIVERIES attempts in a row it is set aside with it."""
        if isinstance(error, NOT_THE_APPLICATIONS_FAULT):
            return False
        return self._held.attempt(entry) >= self._config.max_deliveries

    def unforeseen(self, entry: Entry, error: Exception) -> bool:
        """An unforeseen error with `entry`: after REDIS_QUEUE_MAX_DELIVERIES in a row it is
        set aside (True), or only acknowledged if its transaction is already recorded (the
        receipt watcher owns it then)."""
        attempts = self._held.attempt(entry)
        if attempts < self._config.max_deliveries:
            return False
        entity_id, records = entry.entity_id, self._wallet.records
        if entity_id and (records.get(entity_id) is not None or records.owned_elsewhere(entity_id)):
            # A recorded application's id was checked before it was written: quoted as is.
            log.warning(
                "application %r: entry %s failed %s times but its transaction is "
                "recorded; acknowledged",
                entity_id,
                entry.entry_id,
                attempts,
            )
            self._wallet.queue.ack(entry.entry_id)
        else:
            application = self._wallet.queue.load_application(entity_id) if entity_id else {}
            self._set_aside(entry, entity_id, application, unexpected(error, attempts))
        self._held.settled(entry)
        return True

    def _set_aside_rejected(self, rejection: Rejection) -> None:
        """A rejected entry's letter; whatever the entry's id, a hash under it goes into the
        letter (by size) before it is removed."""
        entry, content = rejection.entry, rejection.content
        if content is None:
            queue = self._wallet.queue
            content = queue.load_application(entry.entity_id) if entry.entity_id else {}
        self._set_aside(entry, rejection.entity_id, content, rejection.error)

    def _set_aside(
        self,
        entry: Entry,
        entity_id: str | None,
        content: HashContent | dict,
        error: errors.PermanentError,
    ) -> None:
        self._wallet.set_aside(
            entry, entity_id=entity_id, reason=error.reason, kind=error.kind, application=content
        )
