"""Trials of earlier studies that a Bayesian search starts from (`warm_start=`).

Exploitation should reuse the trials exploration already paid for. A trial
of an earlier study is the same experiment only when everything held fixed
agrees, so an earlier study is accepted only when, for every hyperparameter
this study fixes, it fixed the same value; a mismatch is refused with one
sentence naming it. Its trials' values are then data for the model (values
outside this study's space are left out when the proposal encodes them).
"""

import hashlib
import json
import os
import typing

from kplaybook.errors import StudyError
from kplaybook.records import StudyReader
from kplaybook.records.trials import sign


class WarmRecord(typing.NamedTuple):
    """One earlier trial: its values, "completed" or "infeasible", and its loss (lower is better)."""

    values: dict
    status: str
    loss: float | None


def warm_start_records(sources, objective, direction, fixed):
    """The usable trials of `sources` (studies or their directories), checked against this study.

    Args:
        sources: list of `StudyReader` (a `kp.Study`), study directories, or
            `WarmRecord`s (trials chosen by the caller, e.g. `kp.Playbook`,
            which has already checked they are the same experiment).
        objective, direction: this study's objective.
        fixed: dict name -> value this study holds fixed.

    Returns:
        (records, names): the `WarmRecord`s and the sources' directories.

    Raises:
        StudyError: a source that cannot be loaded, optimises another
            objective, or fixed (or tuned) a hyperparameter this study fixes
            differently.
    """
    if sources is None:
        return [], []
    if isinstance(sources, (str, os.PathLike, StudyReader)):
        sources = [sources]
    records, names = [], []
    given = [s for s in sources if isinstance(s, WarmRecord)]
    if given:
        records.extend(given)
        names.append(f"{len(given)} trials given as records ({_digest(given)})")
    for source in sources:
        if isinstance(source, WarmRecord):
            continue
        reader = source if isinstance(source, StudyReader) else StudyReader.load(os.fspath(source))
        if (reader.objective, reader.direction) != (objective, direction):
            raise StudyError(
                f"warm_start study {reader.name!r} optimises {reader.objective} "
                f"({reader.direction}), not {objective} ({direction}); pass studies of the same "
                "objective."
            )
        declared = {hp.name for hp in reader.hyperparameters}
        # Fixed by its roles, or declared as hp.Fixed in its space.
        their_fixed = {hp.name: hp.value for hp in reader.hyperparameters if not hp.tunable}
        their_fixed.update(reader.fixed)
        for name, value in fixed.items():
            theirs = their_fixed.get(name, _MISSING)
            if theirs is _MISSING and name in declared:
                raise StudyError(
                    f"warm_start study {reader.name!r} tuned {name!r}, which is fixed at "
                    f"{value!r} here; pass studies run with {name}={value!r} fixed."
                )
            if theirs is _MISSING:
                raise StudyError(
                    f"warm_start study {reader.name!r} has no {name!r}, which is fixed at "
                    f"{value!r} here; pass studies that declared it."
                )
            if theirs != value:
                raise StudyError(
                    f"warm_start study {reader.name!r} fixed {name}={theirs!r}, not {value!r} as "
                    "here; pass studies run with the same fixed values."
                )
        s = sign(direction)
        for record in reader.trials():
            if record.status == "completed":
                records.append(WarmRecord(dict(record.values), "completed", s * record.objective))
            elif record.status == "infeasible":
                records.append(WarmRecord(dict(record.values), "infeasible", None))
        names.append(os.path.abspath(reader.directory))
    return records, names


_MISSING = object()


def _digest(records):
    """A short fingerprint of `records`, so a resumed study knows they did not change."""
    text = json.dumps([[r.values, r.status, r.loss] for r in records], sort_keys=True, default=str)
    return hashlib.sha1(text.encode()).hexdigest()[:12]
