"""kplaybook: Google's Deep Learning Tuning Playbook as Keras / KerasTuner tooling.

The public surface::

    kp.PlaybookTuner        nested studies: scientific / nuisance / fixed roles
    kp.QuasiRandomSearch    scrambled-Halton search, usable like kt.RandomSearch
    kp.Study                read, tabulate and export a study directory
    kp.InfeasibleTrial      raise it to end a trial as infeasible
    kp.oracles              QuasiRandomSearchOracle, NestedStudyOracle
    kp.spaces               adam(hp, budget), sgd_momentum(hp, budget)
    kp.datasets             load("digits") offline, or a TFDS name
"""

from kplaybook import datasets
from kplaybook import oracles
from kplaybook import spaces
from kplaybook.errors import InfeasibleTrial
from kplaybook.errors import PlaybookWarning
from kplaybook.errors import RoleError
from kplaybook.errors import StudyError
from kplaybook.study import Study
from kplaybook.tuners import PlaybookTuner
from kplaybook.tuners import QuasiRandomSearch

__version__ = "0.1.0"

__all__ = [
    "InfeasibleTrial",
    "PlaybookTuner",
    "PlaybookWarning",
    "QuasiRandomSearch",
    "RoleError",
    "Study",
    "StudyError",
    "datasets",
    "oracles",
    "spaces",
]
