"""`Result`: the one shape of everything kplaybook hands back (sweeps, probes, comparisons, ...).

A reader who learned one result knows them all:

    result.to_dataframe()     the numbers, one row per measured thing
    result.plot()             a matplotlib Figure (pyplot's global state untouched)
    result.summary()          the text to read (also ``print(result)``)
    result.save(path)         JSON, written atomically; ``type(result).load(path)`` reads it back

Subclasses implement `to_dataframe`, `plot`, `summary` and the pair
`to_json` / `from_json`; `save` and `load` come from here.
"""

import os

from kplaybook.errors import StudyError
from kplaybook.records import files


class Result:
    """Base class of kplaybook's results: `to_dataframe()`, `plot()`, `summary()`, `save()`/`load()`.

    Example:

    ```python
    result = kp.lr_sweep(build_model, (x, y), [1e-4, 1e-3, 1e-2], steps=200)
    result.to_dataframe(); result.plot(); print(result.summary())
    result.save("lr_sweep.json")
    same = kp.LRSweepResult.load("lr_sweep.json")
    ```
    """

    #: The name saved with the JSON, so that one result's file is not read as another's.
    kind = None

    def to_dataframe(self):
        """The result's numbers as a pandas DataFrame."""
        raise NotImplementedError

    def plot(self):
        """The result drawn: a matplotlib Figure."""
        raise NotImplementedError

    def summary(self):
        """The result as text to read."""
        raise NotImplementedError

    def to_json(self):
        """The result as JSON-safe data (what `save` writes)."""
        raise NotImplementedError

    @classmethod
    def from_json(cls, data):
        """The result from what `to_json` returned."""
        raise NotImplementedError

    def save(self, path):
        """Writes the result to `path` as JSON (atomically); returns the path."""
        payload = {"kind": self.kind, "format": 1, **files.json_safe(self.to_json())}
        return files.write_json(os.fspath(path), payload, indent=1)

    @classmethod
    def load(cls, path):
        """Reads a result written by `save`.

        Raises:
            StudyError: the file is missing, damaged, or holds another kind of result.
        """
        path = os.fspath(path)
        data = files.read_json(path, f"pass a file written by {cls.__name__}.save()")
        if not isinstance(data, dict) or data.get("kind") != cls.kind:
            found = data.get("kind") if isinstance(data, dict) else type(data).__name__
            raise StudyError(
                f"{path} holds a {found!r} result, not a {cls.kind!r} one; load it with the "
                "class that saved it."
            )
        try:
            return cls.from_json(data)
        except (KeyError, TypeError, ValueError) as e:
            raise StudyError(
                f"{path} cannot be read as a {cls.__name__} ({type(e).__name__}: {e}); "
                "save the result again."
            ) from None

    def __str__(self):
        return self.summary()
