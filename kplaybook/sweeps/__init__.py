"""Learning-rate and warmup sweeps: the playbook's "How can optimization failures be debugged and mitigated?"."""

from kplaybook.sweeps.lr_sweep import LRSweepResult
from kplaybook.sweeps.lr_sweep import lr_sweep
from kplaybook.sweeps.warmup_sweep import WarmupSweepResult
from kplaybook.sweeps.warmup_sweep import warmup_sweep

__all__ = ["LRSweepResult", "WarmupSweepResult", "lr_sweep", "warmup_sweep"]
