"""KerasTuner oracles that implement the playbook's search methods."""

from kplaybook.oracles.base import PlaybookOracle
from kplaybook.oracles.joint import JointStudyOracle
from kplaybook.oracles.nested import NestedStudyOracle
from kplaybook.oracles.quasi_random import QuasiRandomSearchOracle

__all__ = ["JointStudyOracle", "NestedStudyOracle", "PlaybookOracle", "QuasiRandomSearchOracle"]
