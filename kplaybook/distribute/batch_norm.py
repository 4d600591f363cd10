"""Synchronized batch norm: one set of batch statistics across all replicas.

The playbook's "Batch normalization implementation details"
(https://github.com/google-research/tuning_playbook#batch-normalization-implementation-details).

Under `tf.distribute.MirroredStrategy` each replica of a plain
`keras.layers.BatchNormalization` normalizes with the statistics of its own
slice of the global batch and keeps its own moving mean and variance, so the
replicas' inference statistics drift apart and depend on how the batch is
split. `BatchNormalization(synchronized=True)` all-reduces the batch moments
instead, so every replica normalizes with the global batch's statistics.
`sync_batch_norm` converts an existing Functional or Sequential model.
"""

import keras
from keras.src.models.functional import Functional

from kplaybook.errors import SyncBatchNormError
from kplaybook.fatal_errors import fatal


def sync_batch_norm(model):
    """A copy of `model` whose `BatchNormalization` layers use `synchronized=True`.

    Use it before training a Functional or Sequential model with batch norm
    under a multi-replica strategy (`StrategyWrapper.prepare` calls it), so
    the replicas share the global batch's statistics. Call it inside
    `strategy.scope()`: the copy's variables are created in the current scope.

    What is kept: every layer's config and weights (for batch norm gamma,
    beta, moving mean and variance; under a strategy, the first replica's
    values), nested Functional/Sequential sub-models (converted too), the
    model's name and class. A compiled model is re-compiled with the same
    arguments (loss, metrics, loss weights, ``steps_per_execution``,
    ``jit_compile`` ...); the optimizer and metric objects are re-created
    from their configs in the current scope, so the optimizer starts fresh
    (no iterations or slots): convert before training. An object that cannot
    be re-created from its config (a custom class that is not registered) is
    shared with the input model instead.

    A model with no plain batch norm layer (none, or all already
    synchronized) is returned as is, not copied.

    Args:
        model: a `keras.Model`, Functional or Sequential. Subclassed models
            cannot be rebuilt layer by layer: create their batch norm layers
            with `synchronized=True` yourself.

    Returns:
        A new `keras.Model` of the same class, or `model` itself when there is
        nothing to convert.

    Raises:
        SyncBatchNormError: for a subclassed model (or a custom layer) holding
            plain batch norm layers, which cannot be converted.

    Example:

    ```python
    strategy = tf.distribute.MirroredStrategy()
    with strategy.scope():
        model = keras.Sequential([keras.Input((64,)), keras.layers.Dense(32),
                                  keras.layers.BatchNormalization(),
                                  keras.layers.Dense(10)])
        model.compile("adam", "sparse_categorical_crossentropy")
        model = kp.distribute.sync_batch_norm(model)
    model.fit(x, y, batch_size=256)
    ```
    """
    if not isinstance(model, keras.Model):
        raise TypeError(f"sync_batch_norm expects a keras.Model, got {type(model).__name__}.")
    if not any(_is_plain_bn(layer) for layer in _all_layers(model)):
        return model
    if not isinstance(model, (keras.Sequential, Functional)):
        raise fatal(
            SyncBatchNormError,
            f"sync_batch_norm cannot rebuild {type(model).__name__}, a subclassed "
            "keras.Model (only Functional and Sequential models can be cloned); create "
            "its layers as BatchNormalization(synchronized=True) in the model itself.",
        )

    pairs = []  # (original, copy) for every leaf layer, to copy the weights afterwards

    def clone_layer(layer):
        config = layer.get_config()
        if _is_plain_bn(layer):
            config["synchronized"] = True
        try:
            new = layer.__class__.from_config(config)
        except Exception as e:  # noqa: BLE001 - any failure means the layer cannot be copied
            raise fatal(
                SyncBatchNormError,
                f"sync_batch_norm cannot re-create layer {layer.name!r} "
                f"({type(layer).__name__}) from its config ({e}); give it a complete "
                "get_config() or create BatchNormalization(synchronized=True) yourself.",
            ) from e
        pairs.append((layer, new))
        return new

    # clone_model re-compiles a compiled (sub-)model through a serialization
    # round trip, which fails for unregistered custom losses and metrics and
    # for lambdas; hide the compiled flag while cloning and compile the copy
    # below from the original compile arguments instead.
    compiled = [m for m in [model, *_all_layers(model)] if getattr(m, "compiled", False)]
    for m in compiled:
        m.compiled = False
    try:
        clone = keras.models.clone_model(model, clone_function=clone_layer, recursive=True)
    finally:
        for m in compiled:
            m.compiled = True

    if type(clone) is not type(model):
        # clone_model rebuilds a Functional/Sequential subclass with a custom
        # constructor as a plain Functional/Sequential, which would silently
        # drop its own methods (a custom train_step, say).
        raise fatal(
            SyncBatchNormError,
            f"sync_batch_norm cannot rebuild {type(model).__name__} with its own class "
            "(its constructor does not take inputs and outputs); create its layers as "
            "BatchNormalization(synchronized=True) in the model itself.",
        )
    left = [layer.name for layer in _all_layers(clone) if _is_plain_bn(layer)]
    if left:
        raise fatal(
            SyncBatchNormError,
            f"sync_batch_norm cannot convert the batch norm layers {left} because they sit "
            "inside a subclassed model or custom layer; create them as "
            "BatchNormalization(synchronized=True) in that layer itself.",
        )

    if model.built and not clone.built:
        # A Sequential without an Input that was built by calling it.
        clone.build_from_config(model.get_build_config())
    for layer, new in pairs:
        if layer.weights:
            new.set_weights(layer.get_weights())
    if not model.trainable:
        # Only a frozen model: setting True would unfreeze every frozen layer.
        clone.trainable = False
    if any(m is model for m in compiled):
        _compile_like(clone, model)
    return clone


def _all_layers(model):
    """Every layer inside `model`, nested ones included (not `model` itself)."""
    return list(model._flatten_layers(include_self=False, recursive=True))


def _is_plain_bn(layer):
    return isinstance(layer, keras.layers.BatchNormalization) and not layer.synchronized


def _compile_like(clone, model):
    """Compiles `clone` with `model`'s compile arguments, with fresh optimizer and metrics."""
    config = dict(model._compile_config.config)
    optimizer = config["optimizer"]
    if isinstance(optimizer, keras.optimizers.Optimizer):
        fresh = _recreate(optimizer)
        if fresh is optimizer and optimizer.built:
            raise fatal(
                SyncBatchNormError,
                f"sync_batch_norm cannot re-create the optimizer {type(optimizer).__name__} "
                "from its config and it already holds the input model's state; convert "
                "the model before training or register the optimizer's custom objects.",
            )
        config["optimizer"] = fresh
    for key in ("metrics", "weighted_metrics"):
        config[key] = _map_objects(config.get(key), _recreate)
    clone.compile(**config)
    if clone.built:
        # As compile_from_config does: the optimizer's slots exist before fit.
        clone.optimizer.build(clone.trainable_variables)


def _recreate(obj):
    """A copy of a Keras object made from its config, in the current strategy scope; else `obj`."""
    if not hasattr(obj, "get_config") or not hasattr(obj, "from_config"):
        return obj
    try:
        return obj.__class__.from_config(obj.get_config())
    except Exception:  # noqa: BLE001 - not re-creatable: share the object instead
        return obj


def _map_objects(structure, fn):
    """`fn` applied to every non-str leaf of nested lists, tuples and dicts."""
    if isinstance(structure, dict):
        return {k: _map_objects(v, fn) for k, v in structure.items()}
    if isinstance(structure, (list, tuple)):
        return type(structure)(_map_objects(v, fn) for v in structure)
    if structure is None or isinstance(structure, str):
        return structure
    return fn(structure)


__all__ = ["SyncBatchNormError", "sync_batch_norm"]
