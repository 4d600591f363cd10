"""Keras layers that the playbook recommends but Keras 3 does not ship.

GhostBatchNormalization    batch norm over fixed-size virtual batches ("Batch normalization implementation details")
"""

from kplaybook.layers.ghost_batch_norm import GhostBatchNormalization

__all__ = ["GhostBatchNormalization"]
