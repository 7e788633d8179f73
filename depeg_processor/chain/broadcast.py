"""Merging the answers of several providers to one `eth_sendRawTransaction` batch.

A raw transaction goes to every healthy provider; what the publisher reads is one answer per
transaction, as if from one node: accepted by any is accepted (the hash), "already known"
where none accepted is known, and a refusal counts only when no provider accepted it: then
the first refusal in the order of preference stands. A transaction no provider answered for
is unanswered (NodeUnavailable), as with one node that does not answer.
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
        known = [v for v in values if isinstance(v, errors.AlreadyKnown)]
        refused = [v for v in values if not isinstance(v, errors.NodeUnavailable)]
        if accepted:
            merged.append(accepted[0])
        elif known or refused:
            merged.append((known or refused)[0])
        elif values:
            merged.append(values[0])
        else:
            merged.append(errors.NodeUnavailable("no provider was asked"))
    return merged
