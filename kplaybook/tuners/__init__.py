"""KerasTuner tuners that record full curves and infeasible trials."""

import warnings

from kplaybook.tuners.playbook import PlaybookTuner
from kplaybook.tuners.quasi_random import QuasiRandomSearch
from kplaybook.tuners.study_tuner import StudyTuner

__all__ = ["PlaybookTuner", "QuasiRandomSearch", "StudyTuner"]


def __getattr__(name):
    if name == "EpochLog":
        # Exported by kplaybook 0.1 by mistake; kept importable for old code.
        warnings.warn(
            "kplaybook.tuners.EpochLog is internal and moved to "
            "kplaybook.training.runner.EpochLog; import it from there.",
            DeprecationWarning,
            stacklevel=2,
        )
        from kplaybook.training.runner import EpochLog

        return EpochLog
    raise AttributeError(f"module 'kplaybook.tuners' has no attribute {name!r}")
