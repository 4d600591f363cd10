"""kplaybook's errors, raised so that KerasTuner stops the search instead of retrying the trial.

KerasTuner re-raises only its own `FatalError`s from a trial; any other
exception marks the trial for a retry and, after a few, fails it. A role
mistake or an unconvertible model fails every trial the same way, so they
are raised as an instance of both kplaybook's error class and KerasTuner's
`FatalValueError`: users catch `kp.RoleError` (say), KerasTuner stops.
"""

from keras_tuner import errors as kt_errors

# KerasTuner's own fatal versions of the builtin errors.
_FATAL_CLASSES = {
    ValueError: kt_errors.FatalValueError,
    TypeError: kt_errors.FatalTypeError,
    RuntimeError: kt_errors.FatalRuntimeError,
}


def fatal(error_class, message):
    """An instance of `error_class` that KerasTuner treats as fatal.

    Example:
        >>> raise fatal(RoleError, "batch_size is a nuisance hyperparameter; ...")
    """
    fatal_class = _FATAL_CLASSES.get(error_class)
    if fatal_class is None:
        fatal_class = type(
            error_class.__name__,
            (error_class, kt_errors.FatalValueError),
            {"__module__": error_class.__module__, "__doc__": error_class.__doc__},
        )
        _FATAL_CLASSES[error_class] = fatal_class
    return fatal_class(message)
