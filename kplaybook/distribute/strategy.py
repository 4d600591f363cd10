"""`StrategyWrapper`: a `tf.distribute.Strategy` with the batch-size and batch-norm helpers a study needs."""

import numbers

import keras
import tensorflow as tf

from kplaybook.distribute.batch_norm import sync_batch_norm


class StrategyWrapper:
    """A `tf.distribute.Strategy` plus global batch sizes and batch-norm conversion.

    Use it to train (or tune, with `PlaybookTuner(distribution_strategy=...)`)
    on several devices: build the model inside `scope()`, convert its batch
    norm with `prepare(model)` and feed `global_batch_size(per_replica)`
    examples per step.

    Args:
        strategy: a `tf.distribute.Strategy`, another `StrategyWrapper`
            (unwrapped), or None to choose: a `MirroredStrategy` over all GPUs
            when there are more than one, else TensorFlow's default
            (single-device) strategy.

    Example:

    ```python
    strategy = kp.distribute.StrategyWrapper()   # all GPUs, or the default strategy
    with strategy.scope():
        model = strategy.prepare(build_model())
    model.fit(x, y, batch_size=strategy.global_batch_size(64))
    ```
    """

    def __init__(self, strategy=None):
        if isinstance(strategy, StrategyWrapper):
            strategy = strategy.strategy
        elif strategy is None:
            strategy = _auto_strategy()
        elif not isinstance(strategy, tf.distribute.Strategy):
            raise TypeError(
                "strategy must be a tf.distribute.Strategy, a StrategyWrapper or None, "
                f"got {type(strategy).__name__}."
            )
        self._strategy = strategy

    @property
    def strategy(self):
        """The wrapped `tf.distribute.Strategy`.

        Example:

        ```python
        tuner = kt.RandomSearch(build, "val_loss", distribution_strategy=wrapper.strategy)
        ```
        """
        return self._strategy

    @property
    def num_replicas(self):
        """How many replicas train in sync (`num_replicas_in_sync`); 1 for the default strategy.

        Example:

        ```python
        if wrapper.num_replicas > 1:
            print("batch norm will be synchronized")
        ```
        """
        return self._strategy.num_replicas_in_sync

    def scope(self):
        """The strategy's scope: create models, optimizers and metrics inside it.

        Example:

        ```python
        with wrapper.scope():
            model = build_model()
        ```
        """
        return self._strategy.scope()

    def global_batch_size(self, per_replica):
        """The global batch (what `model.fit(batch_size=...)` takes) for `per_replica` examples per replica.

        Args:
            per_replica: positive int, examples each replica sees per step.

        Example:

        ```python
        model.fit(x, y, batch_size=wrapper.global_batch_size(32))   # 64 on 2 GPUs
        ```
        """
        _check_batch("per_replica", per_replica)
        return int(per_replica) * self.num_replicas

    def per_replica_batch_size(self, global_batch):
        """The examples each replica sees per step for a global batch of `global_batch`.

        Args:
            global_batch: positive int, divisible by `num_replicas`.

        Example:

        ```python
        wrapper.per_replica_batch_size(256)   # 128 on 2 GPUs
        ```
        """
        _check_batch("global_batch", global_batch)
        if global_batch % self.num_replicas:
            raise ValueError(
                f"global_batch {global_batch} is not divisible by the {self.num_replicas} "
                "replicas; use a multiple of num_replicas so every replica sees the same "
                "number of examples."
            )
        return int(global_batch) // self.num_replicas

    def prepare(self, model):
        """`model` ready for this strategy: batch norm synchronized when there are several replicas.

        With more than one replica, returns `sync_batch_norm(model)` made
        inside this strategy's scope (so its variables are mirrored); with
        one replica, returns `model` unchanged. Build `model` inside `scope()`
        too: a model without batch norm is returned as it is.

        Args:
            model: a `keras.Model` (Functional or Sequential when it holds
                plain batch norm layers).

        Example:

        ```python
        with wrapper.scope():
            model = wrapper.prepare(build_model())
        model.fit(x, y, batch_size=wrapper.global_batch_size(32))
        ```
        """
        if not isinstance(model, keras.Model):
            raise TypeError(f"model must be a keras.Model, got {model!r}.")
        if self.num_replicas <= 1:
            return model
        with self.scope():
            return sync_batch_norm(model)

    def __repr__(self):
        return f"StrategyWrapper({type(self._strategy).__name__}, num_replicas={self.num_replicas})"


def _auto_strategy():
    """A MirroredStrategy over all GPUs when there are more than one, else the default strategy."""
    gpus = tf.config.list_logical_devices("GPU")
    if len(gpus) > 1:
        return tf.distribute.MirroredStrategy([gpu.name for gpu in gpus])
    return tf.distribute.get_strategy()


def _check_batch(name, value):
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        raise ValueError(f"{name} must be a positive int, got {value!r}.")


__all__ = ["StrategyWrapper"]
