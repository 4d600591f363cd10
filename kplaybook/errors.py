"""Exceptions and warnings that kplaybook raises or that user code may raise."""

from keras_tuner import errors as kt_errors


class InfeasibleTrial(Exception):
    """Raise from `build(hp)`, `HyperModel.fit` or a callback to end a trial as infeasible.

    The playbook (section F) treats infeasible points as a normal part of a
    search: the trial is recorded with your message as its
    `infeasible_reason`, it is plotted and counted, and the study goes on.
    Infeasible trials never count towards KerasTuner's
    `max_consecutive_failed_trials` abort.

    Example:

    ```python
    def build(hp):
        units = hp.Int("units", 16, 4096, sampling="log")
        layers = hp.Int("layers", 1, 8)
        if units * layers > 8192:
            raise kp.InfeasibleTrial("model too large for the memory budget")
        ...
    ```
    """


class RoleError(kt_errors.FatalValueError):
    """A scientific / nuisance / fixed role assignment breaks a playbook rule.

    It derives from KerasTuner's `FatalValueError`, so a role problem found
    while a trial runs stops the search instead of being counted as a failed
    trial.
    """


class StudyError(ValueError):
    """A study directory is missing, incomplete or corrupt, or cannot be resumed."""


class PlaybookWarning(UserWarning):
    """A setting is allowed but goes against one of the playbook's rules of thumb."""
