"""Checks of public arguments where they enter: one sentence naming the argument and what to pass.

numpy scalars are numbers (``np.int64(3)`` is an int, ``np.float32(0.1)``
a float); bools are not, although Python counts them as ints.

Example:
    >>> positive_int(np.int64(3), "max_trials")
    3
    >>> positive_int(0, "max_trials")
    Traceback (most recent call last):
    ValueError: max_trials must be a positive integer, got 0.
"""

import collections.abc
import math
import numbers
import os

#: The largest seed numpy and Keras accept (`np.random.seed`, `keras.utils.set_random_seed`).
SEED_MAX = 2**32 - 1


def is_integer(value):
    """True for Python and numpy integers, False for bools."""
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def is_number(value):
    """True for Python and numpy ints and floats, False for bools."""
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def integer(value, name, minimum=None, what=None, maximum=None):
    """`value` as an int, or a `ValueError` (a `TypeError` for a non-integer) naming `name`.

    Args:
        value: what the user passed.
        name: the argument's name, as the user wrote it.
        minimum: the smallest allowed value (inclusive), or None.
        what: how to describe an allowed value, e.g. "a positive integer".
        maximum: the largest allowed value (inclusive), or None.
    """
    what = what or (
        f"an integer from {minimum} to {maximum}"
        if minimum is not None and maximum is not None
        else f"an integer <= {maximum}"
        if maximum is not None
        else "a positive integer"
        if minimum == 1
        else "a non-negative integer"
        if minimum == 0
        else f"an integer >= {minimum}"
        if minimum is not None
        else "an integer"
    )
    if not is_integer(value):
        raise TypeError(f"{name} must be {what}, got {value!r} of type {type(value).__name__}.")
    value = int(value)
    if (minimum is not None and value < minimum) or (maximum is not None and value > maximum):
        raise ValueError(f"{name} must be {what}, got {value}.")
    return value


def positive_int(value, name):
    """`integer(value, name, minimum=1)`."""
    return integer(value, name, minimum=1)


def non_negative_int(value, name):
    """`integer(value, name, minimum=0)`."""
    return integer(value, name, minimum=0)


def seed(value, name="seed"):
    """`value` as an int seed, 0 to `SEED_MAX` (what numpy and Keras accept), else an error naming `name`."""
    return integer(
        value, name, minimum=0, maximum=SEED_MAX, what="a non-negative integer below 2**32"
    )


def number(value, name, low=None, high=None, low_open=False, high_open=False, what=None):
    """`value` as a finite float within the bounds, or a one-sentence error naming `name`.

    Args:
        value: what the user passed.
        name: the argument's name.
        low, high: bounds (None for none); `low_open`/`high_open` exclude them.
        what: how to describe an allowed value (default: from the bounds).
    """
    if what is None:
        parts = []
        if low is not None:
            parts.append(f"{'>' if low_open else '>='} {low:g}")
        if high is not None:
            parts.append(f"{'<' if high_open else '<='} {high:g}")
        what = "a number" + (" " + " and ".join(parts) if parts else "")
    if not is_number(value):
        raise TypeError(f"{name} must be {what}, got {value!r} of type {type(value).__name__}.")
    value = float(value)
    if not math.isfinite(value):
        raise ValueError(f"{name} must be {what}, got {value}.")
    if low is not None and (value < low or (low_open and value == low)):
        raise ValueError(f"{name} must be {what}, got {value:g}.")
    if high is not None and (value > high or (high_open and value == high)):
        raise ValueError(f"{name} must be {what}, got {value:g}.")
    return value


def positive_number(value, name):
    """A finite float > 0."""
    return number(value, name, low=0.0, low_open=True, what="a positive number")


def one_of(value, name, options):
    """`value` when it is one of `options`, else a `ValueError` listing them."""
    if value not in options:
        raise ValueError(f"{name} must be one of {list(options)}, got {value!r}.")
    return value


def boolean(value, name):
    """`value` as a bool (Python or numpy), else a `TypeError`."""
    if isinstance(value, bool) or type(value).__name__ == "bool_":
        return bool(value)
    raise TypeError(f"{name} must be True or False, got {value!r}.")


def _describe(value):
    """`repr(value)`, or its type's name when the repr is an address or too long to read."""
    text = repr(value)
    if " object at 0x" in text or len(text) > 80:
        return f"an object of type {type(value).__name__}"
    return text


def sequence(value, name, what):
    """`value` as a list when it is a collection (list, tuple, numpy array, ...), else a `TypeError`.

    A str, a mapping and a single value are refused rather than iterated:
    `learning_rates=0.1` is a mistake for `[0.1]`, not a list of one.

    Args:
        value: what the user passed.
        name: the argument's name.
        what: how to describe an allowed value, e.g. "a list of positive numbers".
    """
    if not isinstance(value, (str, bytes, collections.abc.Mapping)) and isinstance(
        value, collections.abc.Iterable
    ):
        try:
            return list(value)
        except TypeError:  # iterable in type only, e.g. a 0-d numpy array
            pass
    raise TypeError(f"{name} must be {what}, got {_describe(value)}.")


def function(value, name, what, refuse=()):
    """`value` when it is callable and not an instance of `refuse`, else a `TypeError`.

    `refuse` names callable objects that are a mistake here, e.g. a
    `keras.Model` passed where a function that builds one is wanted.
    """
    if not callable(value) or isinstance(value, refuse):
        raise TypeError(f"{name} must be {what}, got {_describe(value)}.")
    return value


def path(value, name, advice="the path of a file or directory"):
    """`value` as a str path (`os.fspath`), else a `TypeError` naming `name` and what to pass.

    Example:
        >>> path(3, "directory", "the study's directory")
        Traceback (most recent call last):
        TypeError: directory must be a str or os.PathLike, got 3; pass the study's directory.
    """
    if isinstance(value, (str, os.PathLike)):
        result = os.fspath(value)
        if isinstance(result, str):
            return result
    raise TypeError(f"{name} must be a str or os.PathLike, got {_describe(value)}; pass {advice}.")


def writable_directory(value, name, what="a directory to write into"):
    """`value` as a str path to a writable directory (created when missing), else an error naming `name`.

    Checked where the argument enters, so a folder that cannot be written is
    refused before any training, not after it.

    Args:
        value: what the user passed.
        name: the argument's name (or the command-line option).
        what: what to pass instead of a file, e.g. "a directory to write the study into".
    """
    directory = path(value, name, "the path of a directory")
    if os.path.exists(directory) and not os.path.isdir(directory):
        raise ValueError(f"{name} {directory} is a file; pass {what}.")
    try:
        os.makedirs(directory, exist_ok=True)
    except OSError as e:
        raise ValueError(
            f"{name} {directory} cannot be created ({e.strerror or e}); pass a writable directory."
        ) from None
    if not os.access(directory, os.W_OK | os.X_OK):
        raise ValueError(f"{name} {directory} is not writable; pass a writable directory.")
    return directory


def writable_file(value, name):
    """`value` as a str path where a file can be written (not a directory, in a writable folder), else a `ValueError`.

    The folder is not created: the file's writer would not create it either.
    """
    file = path(value, name, "the path of a file")
    if os.path.isdir(file):
        raise ValueError(f"{name} {file} is a directory; pass the path of a file to write.")
    folder = os.path.dirname(os.path.abspath(file))
    if not os.path.isdir(folder):
        what = "a file" if os.path.exists(folder) else "missing"
        raise ValueError(
            f"{name} {file} cannot be written: its folder {folder} is {what}; pass a path "
            "in an existing directory."
        )
    if not os.access(folder, os.W_OK | os.X_OK):
        raise ValueError(
            f"{name} {file} cannot be written: its folder {folder} is not writable; pass a "
            "path in a writable directory."
        )
    return file
