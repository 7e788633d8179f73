"""Merging the answers of several providers to one `eth_sendRawTransaction` batch.

A raw transaction goes to every healthy provider; what the publisher reads is one answer per
transaction, as if from one node. "Nonce too low" from any provider comes first: only a node
that has seen the nonce used says so (a lagging one accepts), and the publisher then decides
on receipts read from a provider that is up to date (ours mined: wait; another's: back on the
queue). Else accepted by any is accepted (the hash); then a fee under the base fee (to be
re-priced, not hidden by an older copy another provider knows); then "already known"; and a
refusal counts only when no provider accepted it: the first in the order of preference. A
transaction no provider answered for is unanswered (NodeUnavailable), as with one node that
does not answer.
"""

from __future__ import annotations

from collections.abc import Sequence

from .. import errors

Answers = list | errors.NodeUnavailable  # one provider's results, or why it gave none


def unanswered(error: Exception) -> errors.NodeUnavailable:
    """A provider's failure to answer, as the error of each of its transactions."""
    if isinstance(error, errors.NodeUnavailable):
        return error
    return errors.NodeUnavailable(str(error))


def merge(answers: Sequence[Answers], count: int) -> list:
    """One result per call of the `count`, from the providers' `answers` in preference order."""
    merged = []
    for i in range(count):
        values = [a[i] if isinstance(a, list) else a for a in answers]
        accepted = [v for v in values if not isinstance(v, Exception)]
        first = [
            [v for v in values if isinstance(v, kind)]
            for kind in (errors.FeeTooLow, errors.AlreadyKnown)
        ]
        conflict = [v for v in values if isinstance(v, errors.NonceConflict)]
        refused = [v for v in values if not isinstance(v, errors.NodeUnavailable)]
        if conflict:
            merged.append(conflict[0])
        elif accepted:
            merged.append(accepted[0])
        elif first[0] or first[1] or refused:
            merged.append((first[0] or first[1] or refused)[0])
        elif values:
            merged.append(values[0])
        else:
            merged.append(errors.NodeUnavailable("no provider was asked"))
    return merged
