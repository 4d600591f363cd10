"""Training-stability callbacks for any compiled Keras model (TensorFlow backend).

    Warmup                linear learning-rate ramp of a float learning rate
    GradientNormLogger    the unclipped global gradient norm, every step
    GradientClipping      exact global-norm clipping, fixed or percentile threshold
    DivergenceMonitor     stop on NaN/Inf or a blown-up loss; infeasible in a study

They add ``grad_norm``, ``lr`` and ``clip_fraction`` to the batch and epoch
logs, so History, TensorBoard and `PlaybookTuner`'s trial curves get them.
Their numeric arguments take Python and numpy numbers alike (not bools), and
a deep copy (KerasTuner makes one per execution) starts fresh from them.
"""

from kplaybook.callbacks.divergence_monitor import DivergenceMonitor
from kplaybook.callbacks.gradient_clipping import GradientClipping
from kplaybook.callbacks.gradient_norm_logger import GradientNormLogger
from kplaybook.callbacks.warmup import Warmup

__all__ = ["DivergenceMonitor", "GradientClipping", "GradientNormLogger", "Warmup"]
