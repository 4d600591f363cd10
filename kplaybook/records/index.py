"""The trial index: every ``trial.json`` of a study, decoded once, kept in one file beside them.

Decoding JSON is what loading a large study costs: a 10,000-trial study
holds about 48 MB of ``trial.json`` (KerasTuner's format: one small dict
per metric per epoch), 1.6 s of ``json.loads`` on 2 cores, plus the
garbage collections that millions of small objects set off. The index
(``kplaybook_index.npz``) holds what a `TrialRecord` needs of each trial:
its status, values, score and best step as a short JSON summary, and its
curves as float arrays, one array per metric for the whole study.

The ``trial.json`` files stay the record (KerasTuner resumes from them, and
they may be rewritten by KerasTuner, by a resumed search or by hand); the
index is a cache of them. Each entry holds the SHA-1 of the ``trial.json``
bytes it was decoded from, and a reader uses an entry only when the file
still has those bytes. Reading and hashing every file costs about 0.2 s
for 10,000 trials; a trial whose file changed, or that the index does not
hold, is decoded from its ``trial.json`` and the index is rewritten
(atomically; a folder that cannot be written just goes without one).
An index from another format version, or a damaged one, is ignored and
rebuilt. Nothing is ever read from the index that its ``trial.json`` does
not say.

Example:

```python
entries = read_index(StudyLayout("saved_studies/depth"))   # {} without one
```
"""

import hashlib
import io
import json
import zipfile

import numpy as np

from kplaybook.records import files

#: Bumped whenever what an entry holds (or how a `TrialRecord` reads it) changes.
FORMAT = 2

# What every summary holds, and the types its values may have.
_SUMMARY_KEYS = ("trial_id", "kt_status", "message", "values", "score", "best_step", "reason")

_META = "meta"
_EPOCHS = "epochs"


def digest(content):
    """The hex SHA-1 of a ``trial.json``'s bytes: what ties an index entry to its file."""
    return hashlib.sha1(content, usedforsecurity=False).hexdigest()


class Entry:
    """One trial as the index holds it: what `TrialRecord.from_entry` needs.

    Attributes:
        folder_id: the id in the name of the trial's folder (``trial_<id>``),
            which the index is keyed by.
        digest: hex SHA-1 of the ``trial.json`` bytes it was decoded from.
        summary: dict with ``trial_id``, ``kt_status``, ``message``,
            ``values``, ``score``, ``best_step``, ``reason`` and ``executions``
            (the largest number of values recorded for one step: above 1 with
            ``executions_per_trial > 1``).
        curves: (epochs int array, {metric: float array}), as
            `TrialRecord.curve_arrays` returns them.
    """

    __slots__ = ("folder_id", "digest", "summary", "curves")

    def __init__(self, folder_id, digest, summary, curves):
        self.folder_id = str(folder_id)
        self.digest = digest
        self.summary = summary
        self.curves = curves


def read_index(study_layout):
    """dict folder id -> `Entry` of the study's index; {} when there is none or it cannot be used.

    A missing, damaged or other-format index is not an error: the reader
    decodes every ``trial.json`` instead, as without an index.
    """
    try:
        with open(study_layout.index_file, "rb") as f:
            content = f.read()
        with np.load(io.BytesIO(content), allow_pickle=False) as arrays:
            columns = {name: arrays[name] for name in arrays.files}
        meta = json.loads(columns[_META].tobytes())
        if meta.get("format") != FORMAT:
            return {}
        return _entries(meta, columns)
    except (
        OSError,
        EOFError,
        ValueError,
        KeyError,
        TypeError,
        IndexError,
        AttributeError,
        zipfile.BadZipFile,
    ):
        return {}


def _entries(meta, columns):
    names = meta["metrics"]
    arrays = [_column(columns, f"metric_{j}", np.float64) for j in range(len(names))]
    used = [0] * len(names)
    epochs_all = _column(columns, _EPOCHS, np.int64)
    start = 0
    entries = {}
    rows = (
        meta["folders"],
        meta["summaries"],
        meta["digests"],
        meta["trial_metrics"],
        meta["epoch_counts"],
    )
    if len({len(row) for row in rows}) != 1:
        raise ValueError("the index's lists have different lengths")
    for folder_id, summary, own_digest, metric_indices, count in zip(*rows):
        if not isinstance(summary, dict) or any(k not in summary for k in _SUMMARY_KEYS):
            raise ValueError("an index summary is incomplete")
        if not isinstance(summary["values"], dict) or not isinstance(
            summary.get("executions"), int
        ):
            raise ValueError("an index summary is malformed")
        end = start + count
        epochs = epochs_all[start:end]
        curves = {}
        for j in metric_indices:
            curves[names[j]] = arrays[j][used[j] : used[j] + count]
            used[j] += count
        start = end
        entries[str(folder_id)] = Entry(folder_id, own_digest, summary, (epochs, curves))
    if start != len(epochs_all) or any(u != len(a) for u, a in zip(used, arrays)):
        raise ValueError("the index's arrays do not match its summaries")
    return entries


def _column(columns, name, dtype):
    array = columns[name]
    if array.ndim != 1 or array.dtype != dtype:
        raise ValueError(f"the index's {name} is not a 1-D {np.dtype(dtype).name} array")
    return array


def write_index(study_layout, entries):
    """Writes `entries` (an iterable of `Entry`) as the study's index, atomically.

    Returns the path, or None when the folder cannot be written (a study
    opened read-only, a full disk): the index is only a cache.
    """
    names, position = [], {}
    folders, summaries, digests, trial_metrics, epoch_counts = [], [], [], [], []
    epochs_parts, metric_parts = [], []
    for entry in entries:
        epochs, curves = entry.curves
        folders.append(entry.folder_id)
        summaries.append(entry.summary)
        digests.append(entry.digest)
        epoch_counts.append(len(epochs))
        epochs_parts.append(np.asarray(epochs, dtype=np.int64))
        indices = []
        for name, values in curves.items():
            if name not in position:
                position[name] = len(names)
                names.append(name)
                metric_parts.append([])
            indices.append(position[name])
            metric_parts[position[name]].append(np.asarray(values, dtype=float))
        trial_metrics.append(indices)
    meta = {
        "format": FORMAT,
        "metrics": names,
        "folders": folders,
        "summaries": summaries,
        "digests": digests,
        "trial_metrics": trial_metrics,
        "epoch_counts": epoch_counts,
    }
    arrays = {
        # Everything in `meta` came out of json.loads, so it goes back as it came
        # (NaN included, as KerasTuner writes it).
        _META: np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8),
        _EPOCHS: _concatenate(epochs_parts, np.int64),
    }
    for j, parts in enumerate(metric_parts):
        arrays[f"metric_{j}"] = _concatenate(parts, float)
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    try:
        return files.write_text(study_layout.index_file, buffer.getvalue())
    except OSError:
        return None


def _concatenate(parts, dtype):
    return np.concatenate(parts).astype(dtype, copy=False) if parts else np.zeros(0, dtype)
