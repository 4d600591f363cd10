"""``replicates.json``: the seed replicates of a study's best trials, one entry per training run."""

import os

from kplaybook.errors import StudyError
from kplaybook.records import files

#: Each run's required keys and their types.
_RUN_KEYS = {
    "trial_id": str,
    "seed": int,
    "status": str,
    "cell": int,
    "scientific": dict,
    "curves": dict,
}

_ADVICE = "delete it to drop the recorded replicates"


def read_runs(path):
    """The runs recorded in `path` (a list of dicts; [] when the file is absent).

    Raises:
        StudyError: the file is damaged or a run misses a field.
    """
    if not os.path.exists(path):
        return []
    data = files.read_json(path, _ADVICE)
    try:
        runs = data["runs"]
        if not isinstance(runs, list):
            raise TypeError("'runs' is not a list")
        for run in runs:
            if not isinstance(run, dict):
                raise TypeError(f"a run is {type(run).__name__}, not an object")
            for key, kind in _RUN_KEYS.items():
                if not isinstance(run.get(key), kind):
                    raise TypeError(f"a run's {key!r} is missing or not {kind.__name__}")
            if not isinstance(run.get("objective"), (int, float, type(None))):
                raise TypeError("a run's 'objective' is not a number")
    except (KeyError, TypeError) as e:
        raise StudyError(f"{path} cannot be read ({e}); {_ADVICE}.") from None
    return runs


def write_runs(path, runs):
    """Writes all `runs` to `path`, atomically (a kill mid-write keeps the previous runs)."""
    files.write_json(path, files.json_safe({"runs": runs}), indent=1)
