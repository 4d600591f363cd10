"""Checks of numeric constructor arguments (the callbacks', `kp.schedules`'), with one-sentence errors.

Python and numpy numbers are accepted alike (``np.float32(3e-3)``,
``np.int64(500)``: what a sweep over a numpy grid passes) and stored as
Python `int` / `float`, so configs stay JSON-serialisable. Bools are not
numbers here, although Python counts them as integers: ``every=True`` is a
mistake, not 1.
"""

import math
import numbers


def is_integer(value):
    """True for a Python or numpy integer that is not a bool."""
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def is_number(value):
    """True for a Python or numpy real number that is not a bool."""
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def integer(name, value, minimum=1):
    """`value` as an int, or a ValueError naming `name` unless it is an integer >= `minimum`."""
    if not is_integer(value) or value < minimum:
        wanted = "a positive integer" if minimum == 1 else f"an integer >= {minimum}"
        raise ValueError(f"{name} must be {wanted}, got {value!r}.")
    return int(value)


def positive_number(name, value):
    """`value` as a float, or a ValueError naming `name` unless it is a finite number > 0."""
    if not (is_number(value) and math.isfinite(value) and value > 0):
        raise ValueError(f"{name} must be a positive number, got {value!r}.")
    return float(value)
