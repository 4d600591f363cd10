"""KerasTuner tuners that record full curves and infeasible trials."""

from kplaybook.tuners.playbook import PlaybookTuner
from kplaybook.tuners.quasi_random import QuasiRandomSearch
from kplaybook.tuners.study_tuner import EpochLog
from kplaybook.tuners.study_tuner import StudyTuner

__all__ = ["EpochLog", "PlaybookTuner", "QuasiRandomSearch", "StudyTuner"]
