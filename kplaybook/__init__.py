"""kplaybook: Google's Deep Learning Tuning Playbook as Keras / KerasTuner tooling.

The public surface::

    kp.Playbook             the playbook's incremental loop, automated: goals, findings acted on,
                            adopt-or-keep, Bayesian exploitation, final replicates (kp.Goal,
                            kp.Decision, kp.PlaybookResult)
    kp.PlaybookTuner        nested studies: scientific / nuisance / fixed roles
    kp.QuasiRandomSearch    scrambled-Halton search, usable like kt.RandomSearch
    kp.Study                read, check, plot, replicate and export a study directory
    kp.Finding              one result of study.check()
    kp.compare              two studies per scientific value, against seed noise
    kp.InfeasibleTrial      raise it to end a trial as infeasible
    kp.errors               RoleError, StudyError, SyncBatchNormError, PlaybookWarning
    kp.oracles              QuasiRandomSearchOracle, NestedStudyOracle
    kp.spaces               adam(hp, budget), sgd_momentum(hp, budget)
    kp.datasets             load("digits") offline, or a TFDS name
    kp.callbacks            Warmup, GradientNormLogger, GradientClipping, DivergenceMonitor
    kp.schedules            WarmupDecay
    kp.distribute           StrategyWrapper, sync_batch_norm, probe_batch_sizes
    kp.layers               GhostBatchNormalization
    kp.lr_sweep             find lr* and the unstable learning rate
    kp.warmup_sweep         the shortest warmup that makes a high learning rate stable
    kp.records              StudyReader: a study's files, read without TensorFlow
    kp.testing              synthetic studies for tests

Names are imported on first use, so ``import kplaybook`` is quick and the
command line can quiet TensorFlow before TensorFlow is loaded.
"""

import importlib
import typing

__version__ = "0.1.0"

# name -> module that defines it (a module's own name maps to the module).
_EXPORTS = {
    "Comparison": "kplaybook.analysis.compare",
    "compare": "kplaybook.analysis.compare",
    "Finding": "kplaybook.findings",
    "InfeasibleTrial": "kplaybook.errors",
    "PlaybookWarning": "kplaybook.errors",
    "RoleError": "kplaybook.errors",
    "StudyError": "kplaybook.errors",
    "SyncBatchNormError": "kplaybook.errors",
    "Study": "kplaybook.study",
    "LRSweepResult": "kplaybook.sweeps",
    "WarmupSweepResult": "kplaybook.sweeps",
    "lr_sweep": "kplaybook.sweeps",
    "warmup_sweep": "kplaybook.sweeps",
    "Decision": "kplaybook.playbook",
    "Goal": "kplaybook.playbook",
    "Playbook": "kplaybook.playbook",
    "PlaybookResult": "kplaybook.playbook",
    "PlaybookTuner": "kplaybook.tuners",
    "QuasiRandomSearch": "kplaybook.tuners",
}
_SUBMODULES = (
    "analysis",
    "callbacks",
    "datasets",
    "distribute",
    "errors",
    "layers",
    "oracles",
    "playbook",
    "records",
    "schedules",
    "spaces",
    "testing",
)

__all__ = sorted([*_EXPORTS, *_SUBMODULES])


def __getattr__(name):
    if name in _SUBMODULES:
        value = importlib.import_module(f"kplaybook.{name}")
    elif name in _EXPORTS:
        value = getattr(importlib.import_module(_EXPORTS[name]), name)
    else:
        raise AttributeError(f"module 'kplaybook' has no attribute {name!r}")
    globals()[name] = value
    return value


def __dir__():
    return sorted(set(globals()) | set(__all__))


if typing.TYPE_CHECKING:  # for editors and type checkers: the same names, eagerly
    from kplaybook import analysis  # noqa: F401
    from kplaybook import callbacks  # noqa: F401
    from kplaybook import datasets  # noqa: F401
    from kplaybook import distribute  # noqa: F401
    from kplaybook import errors  # noqa: F401
    from kplaybook import layers  # noqa: F401
    from kplaybook import oracles  # noqa: F401
    from kplaybook import records  # noqa: F401
    from kplaybook import schedules  # noqa: F401
    from kplaybook import spaces  # noqa: F401
    from kplaybook import testing  # noqa: F401
    from kplaybook.analysis.compare import Comparison  # noqa: F401
    from kplaybook.analysis.compare import compare  # noqa: F401
    from kplaybook.errors import InfeasibleTrial  # noqa: F401
    from kplaybook.errors import PlaybookWarning  # noqa: F401
    from kplaybook.errors import RoleError  # noqa: F401
    from kplaybook.errors import StudyError  # noqa: F401
    from kplaybook.errors import SyncBatchNormError  # noqa: F401
    from kplaybook.findings import Finding  # noqa: F401
    from kplaybook.study import Study  # noqa: F401
    from kplaybook.sweeps import LRSweepResult  # noqa: F401
    from kplaybook.sweeps import WarmupSweepResult  # noqa: F401
    from kplaybook.sweeps import lr_sweep  # noqa: F401
    from kplaybook.sweeps import warmup_sweep  # noqa: F401
    from kplaybook.tuners import PlaybookTuner  # noqa: F401
    from kplaybook.tuners import QuasiRandomSearch  # noqa: F401
