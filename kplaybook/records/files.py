"""Reading and writing a study's JSON files: atomic writes, one-sentence errors, JSON-safe values.

Every file kplaybook writes into a study goes through `write_json`: the data
goes to a temporary file in the same folder, is flushed to disk, then
renamed over the target. A process killed (or a disk that fills up) in the
middle leaves the old file whole, never a torn or empty one.
"""

import json
import math
import os
import tempfile

import numpy as np

from kplaybook.errors import StudyError


def write_text(path, text):
    """Writes `text` (str, or bytes for a binary file) to `path` atomically (temporary file, flush, fsync, rename).

    On failure (a full disk, a read-only folder) the temporary file is
    removed, `path` keeps its old content, and an OSError says so.
    """
    path = os.fspath(path)
    folder = os.path.dirname(path) or "."
    tmp = None
    try:
        fd, tmp = tempfile.mkstemp(
            prefix="." + os.path.basename(path) + ".", suffix=".tmp", dir=folder
        )
        with os.fdopen(fd, "wb" if isinstance(text, bytes) else "w") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as e:
        _remove(tmp)
        raise OSError(
            e.errno,
            f"{e.strerror or e} while writing {path}; what was recorded before is intact: "
            "free space (or fix the folder's permissions) and run again to resume",
            path,
        ) from e
    except BaseException:
        _remove(tmp)
        raise
    return path


def _remove(path):
    if path is None:
        return
    try:
        os.unlink(path)
    except OSError:
        pass


def write_json(path, data, indent=None, allow_nan=False):
    """Writes `data` as JSON to `path` atomically; returns the path.

    Args:
        path: the file.
        data: JSON-serialisable data (see `json_safe`).
        indent: as for `json.dumps`.
        allow_nan: False (the default) refuses NaN and infinities, which are
            not JSON; KerasTuner's own files hold them, so its writers pass True.
    """
    # json.dumps uses the C encoder (json.dump to a file does not).
    return write_text(path, json.dumps(data, indent=indent, allow_nan=allow_nan))


def read_json(path, advice):
    """The parsed content of `path`, or a `StudyError` naming the file, what is wrong, and `advice`.

    Args:
        path: the file.
        advice: what the user should do, e.g. "restore it or re-run the study".
    """
    try:
        with open(path, "rb") as f:
            content = f.read()
    except OSError as e:
        raise StudyError(f"{path} cannot be read ({e.strerror or e}); {advice}.") from None
    return parse_json(content, path, advice)


def parse_json(content, path, advice):
    """`content` (the bytes of file `path`) parsed, or a `StudyError` as `read_json` raises it."""
    if not content.strip():
        raise StudyError(f"{path} cannot be read (it is empty); {advice}.")
    try:
        return json.loads(content)
    except ValueError as e:
        raise StudyError(f"{path} cannot be read (not valid JSON: {e}); {advice}.") from None


def json_safe(value):
    """`value` with numpy scalars as Python ones, NaN/infinity and pandas' NA as None, tuples as lists."""
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    if isinstance(value, np.ndarray):
        return json_safe(value.tolist())
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if value is not None and type(value).__name__ in ("NAType", "NaTType"):
        return None  # pandas.NA / NaT, without importing pandas here
    return value


def finite_list(values):
    """A float array as a JSON list, NaN and infinities as None."""
    values = np.asarray(values, dtype=float)
    out = values.tolist()
    if not np.isfinite(values).all():
        out = [v if math.isfinite(v) else None for v in out]
    return out


def plain(value):
    """A numpy scalar as the Python one (KerasTuner's JSON and gRPC need plain types)."""
    return value.item() if isinstance(value, np.generic) else value
