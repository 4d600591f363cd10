"""Distribution: the strategy wrapper, synchronised batch norm, batch-size probing.

The playbook's "Choosing the batch size" and "Batch normalization
implementation details" (https://github.com/google-research/tuning_playbook).

StrategyWrapper       a tf.distribute strategy (auto: all GPUs), global batch sizes, BN sync
sync_batch_norm       BatchNormalization -> synchronized=True, weights kept
probe_batch_sizes     double the batch until out of memory, measure examples/s, recommend one
ProbeResult, recommend_batch_size (recommend: its old name)
"""

from kplaybook.distribute.batch_norm import SyncBatchNormError
from kplaybook.distribute.batch_norm import sync_batch_norm
from kplaybook.distribute.probe import ProbeResult
from kplaybook.distribute.probe import probe_batch_sizes
from kplaybook.distribute.probe import recommend
from kplaybook.distribute.probe import recommend_batch_size
from kplaybook.distribute.strategy import StrategyWrapper

__all__ = [
    "ProbeResult",
    "StrategyWrapper",
    "SyncBatchNormError",
    "probe_batch_sizes",
    "recommend",
    "recommend_batch_size",
    "sync_batch_norm",
]
