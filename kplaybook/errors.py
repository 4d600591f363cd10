"""Exceptions and warnings that kplaybook raises or that user code may raise.

The bottom of kplaybook's layering: it imports nothing (no TensorFlow), so
every layer, the study records included, can raise these.
"""


class InfeasibleTrial(Exception):
    """Raise from `build(hp)`, `HyperModel.fit` or a callback to end a trial as infeasible.

    The playbook treats infeasible points as a normal part of a search: the
    trial is recorded with your message as its `infeasible_reason`, it is
    plotted and counted, and the study goes on. Infeasible trials never
    count towards KerasTuner's `max_consecutive_failed_trials` abort.

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


class RoleError(ValueError):
    """A scientific / nuisance / fixed role assignment breaks a playbook rule.

    Raised while a search runs, it stops the search instead of being counted
    as a failed trial (kplaybook raises it as a KerasTuner fatal error too).

    Example:

    ```python
    try:
        kp.PlaybookTuner(build, scientific={"num_layers": []})
    except kp.RoleError as e:
        print(e)   # scientific['num_layers'] is an empty list; give at least one value...
    ```
    """


class StudyError(ValueError):
    """A study directory is missing, incomplete or damaged, or cannot be resumed with these settings.

    The message names the file or setting and says what to do; nothing on
    disk was changed by the call that raised it.
    """


class SyncBatchNormError(ValueError):
    """A model's batch norm layers cannot be converted to synchronized ones.

    Raised while a search runs, it stops the search at once (kplaybook
    raises it as a KerasTuner fatal error too) instead of failing trial
    after trial the same way.
    """


class TooFewTrials(ValueError):
    """A study has too few completed trials for the analysis asked of it (e.g. `Study.importance`).

    The message says how many it has, how many are needed, and to run more.
    """


class PlaybookWarning(UserWarning):
    """A setting is allowed but goes against one of the playbook's rules of thumb."""
