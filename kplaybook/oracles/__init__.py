"""KerasTuner oracles that implement the playbook's search methods."""

from kplaybook.oracles.base import PlaybookOracle
from kplaybook.oracles.nested import NestedStudyOracle
from kplaybook.oracles.quasi_random import QuasiRandomSearchOracle

__all__ = ["NestedStudyOracle", "PlaybookOracle", "QuasiRandomSearchOracle"]
