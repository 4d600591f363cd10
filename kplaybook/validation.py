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

import math
import numbers
import os


def is_integer(value):
    """True for Python and numpy integers, False for bools."""
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def is_number(value):
    """True for Python and numpy ints and floats, False for bools."""
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def integer(value, name, minimum=None, what=None):
    """`value` as an int, or a `ValueError` (a `TypeError` for a non-integer) naming `name`.

    Args:
        value: what the user passed.
        name: the argument's name, as the user wrote it.
        minimum: the smallest allowed value (inclusive), or None.
        what: how to describe an allowed value, e.g. "a positive integer".
    """
    what = what or (
        "a positive integer"
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
    if minimum is not None and value < minimum:
        raise ValueError(f"{name} must be {what}, got {value}.")
    return value


def positive_int(value, name):
    """`integer(value, name, minimum=1)`."""
    return integer(value, name, minimum=1)


def non_negative_int(value, name):
    """`integer(value, name, minimum=0)`."""
    return integer(value, name, minimum=0)


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


def path(value, name):
    """`value` as a str path (str or os.PathLike), else a `TypeError` naming `name`."""
    if isinstance(value, (str, os.PathLike)):
        return os.fspath(value)
    raise TypeError(f"{name} must be a str or os.PathLike path, got {value!r}.")


def boolean(value, name):
    """`value` as a bool (Python or numpy), else a `TypeError`."""
    if isinstance(value, bool) or type(value).__name__ == "bool_":
        return bool(value)
    raise TypeError(f"{name} must be True or False, got {value!r}.")
