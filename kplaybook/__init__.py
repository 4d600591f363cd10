"""kplaybook: Google's Deep Learning Tuning Playbook as Keras / KerasTuner tooling.

The public surface::

    kp.PlaybookTuner        nested studies: scientific / nuisance / fixed roles
    kp.QuasiRandomSearch    scrambled-Halton search, usable like kt.RandomSearch
    kp.Study                read, check, plot, replicate and export a study directory
    kp.Finding              one result of study.check()
    kp.compare              two studies per scientific value, against seed noise
    kp.InfeasibleTrial      raise it to end a trial as infeasible
    kp.oracles              QuasiRandomSearchOracle, NestedStudyOracle
    kp.spaces               adam(hp, budget), sgd_momentum(hp, budget)
    kp.datasets             load("digits") offline, or a TFDS name
    kp.callbacks            Warmup, GradientNormLogger, GradientClipping, DivergenceMonitor
    kp.schedules            WarmupDecay
    kp.distribute           StrategyWrapper, sync_batch_norm, probe_batch_sizes
    kp.layers               GhostBatchNormalization
    kp.lr_sweep             find lr* and the unstable learning rate
    kp.warmup_sweep         the shortest warmup that makes a high learning rate stable
"""

from kplaybook import analysis
from kplaybook import callbacks
from kplaybook import datasets
from kplaybook import distribute
from kplaybook import layers
from kplaybook import oracles
from kplaybook import schedules
from kplaybook import spaces
from kplaybook.analysis import Comparison
from kplaybook.analysis import Finding
from kplaybook.analysis import compare
from kplaybook.errors import InfeasibleTrial
from kplaybook.errors import PlaybookWarning
from kplaybook.errors import RoleError
from kplaybook.errors import StudyError
from kplaybook.study import Study
from kplaybook.sweeps import LRSweepResult
from kplaybook.sweeps import WarmupSweepResult
from kplaybook.sweeps import lr_sweep
from kplaybook.sweeps import warmup_sweep
from kplaybook.tuners import PlaybookTuner
from kplaybook.tuners import QuasiRandomSearch

__version__ = "0.1.0"

__all__ = [
    "Comparison",
    "Finding",
    "InfeasibleTrial",
    "LRSweepResult",
    "PlaybookTuner",
    "PlaybookWarning",
    "QuasiRandomSearch",
    "RoleError",
    "Study",
    "StudyError",
    "WarmupSweepResult",
    "analysis",
    "callbacks",
    "compare",
    "datasets",
    "distribute",
    "layers",
    "lr_sweep",
    "oracles",
    "schedules",
    "spaces",
    "warmup_sweep",
]
