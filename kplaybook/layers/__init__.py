"""Keras layers that the playbook recommends but Keras 3 does not ship.

GhostBatchNormalization    batch norm over fixed-size virtual batches (PLAYBOOK.md M.39)
"""

from kplaybook.layers.ghost_batch_norm import GhostBatchNormalization

__all__ = ["GhostBatchNormalization"]
