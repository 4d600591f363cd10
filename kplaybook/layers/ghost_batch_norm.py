"""Ghost batch normalisation: batch norm over fixed-size virtual batches."""

import numbers

import keras
from keras import constraints
from keras import initializers
from keras import ops
from keras import regularizers

from kplaybook import validation


@keras.saving.register_keras_serializable(package="kplaybook")
class GhostBatchNormalization(keras.layers.Layer):
    """Batch normalisation with statistics from virtual batches of a fixed size.

    Ghost batch norm (Hoffer et al. 2017, https://arxiv.org/abs/1705.08741)
    splits each training batch into "virtual" batches of
    `virtual_batch_size` examples and normalises every virtual batch with its
    own mean and variance. The noise that batch norm injects then depends on
    `virtual_batch_size` alone, not on the total batch size, so the batch
    size can be changed (or the model moved to more devices) without also
    changing batch norm's regularisation. The playbook's "Batch normalization implementation details": a virtual batch
    of about 64, decoupled from the total batch, often works better. Under
    `tf.distribute.MirroredStrategy` each replica's batch is already
    normalised on its own (BatchNormalization without `synchronized=True`);
    ghost batch norm makes that explicit and independent of the global
    batch size and the number of replicas.

    **Training** (`training=True` and `layer.trainable`): for each virtual
    batch `v` and channel `c`, with `mean_v` and `var_v` the mean and the
    biased variance of `v` over the batch and all non-channel axes, the
    output is `gamma * (x - mean_v) / sqrt(var_v + epsilon) + beta`.
    Gradients flow through `mean_v` and `var_v`, as in BatchNormalization.

    - A batch that is not a multiple of `virtual_batch_size` ends with a
      smaller virtual batch (200 = 64 + 64 + 64 + 8), normalised with its
      own statistics. It is implemented by zero-padding the batch to a
      multiple of `virtual_batch_size` and masking the padding out of the
      statistics, which keeps one static graph for any batch size. A
      remainder of a single example has zero variance and comes out as
      `beta`: choose batch sizes that leave no tiny remainder, or drop the
      remainder in the data pipeline (`drop_remainder=True`).
    - Moving statistics are updated as in BatchNormalization,
      `moving = moving * momentum + stat * (1 - momentum)`, where `stat` is
      the average of the per-virtual-batch means (resp. biased variances),
      each weighted by its number of examples. When the batch is a multiple
      of `virtual_batch_size` this is the plain average over virtual
      batches; the averaged mean always equals the full-batch mean, and the
      averaged variance is the within-virtual-batch variance that training
      actually normalised with (smaller than the full-batch variance by the
      spread of the virtual-batch means).

    **Inference** (`training=False`, or `layer.trainable = False`): exactly
    BatchNormalization's, `gamma * (x - moving_mean) / sqrt(moving_variance
    + epsilon) + beta`. A batch no larger than `virtual_batch_size` is
    normalised exactly as BatchNormalization would in both modes.

    As in BatchNormalization, statistics are computed in float32 when the
    inputs are float16 or bfloat16 (mixed precision) and the variables are
    float32; the output has the layer's compute dtype. Only the last axis
    (channels-last) can be the normalised axis, and masks are not
    supported (the layer does not consume or propagate one).

    Args:
        virtual_batch_size: int, default 64. Examples per virtual batch
            (a positive integer).
        axis: int, default -1. The features axis; only the last axis is
            supported (`-1`, or `rank - 1`).
        momentum: float in [0, 1], default 0.99. Momentum of the moving
            statistics.
        epsilon: positive float, default 1e-3. Added to the variance before
            the square root.
        center: bool, default True. Add the learned offset `beta`.
        scale: bool, default True. Multiply by the learned scale `gamma`.
        beta_initializer: initializer, default `"zeros"`.
        gamma_initializer: initializer, default `"ones"`.
        moving_mean_initializer: initializer, default `"zeros"`.
        moving_variance_initializer: initializer, default `"ones"`.
        beta_regularizer: regularizer or None, default None.
        gamma_regularizer: regularizer or None, default None.
        beta_constraint: constraint or None, default None.
        gamma_constraint: constraint or None, default None.
        **kwargs: base layer keyword arguments (`name`, `dtype`, ...).

    Example:

    ```python
    import keras
    import numpy as np
    import kplaybook as kp

    model = keras.Sequential([
        keras.Input((32, 32, 3)),
        keras.layers.Conv2D(16, 3, use_bias=False),
        kp.layers.GhostBatchNormalization(virtual_batch_size=64),
        keras.layers.ReLU(),
        keras.layers.GlobalAveragePooling2D(),
        keras.layers.Dense(10),
    ])
    model.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    x = np.random.rand(512, 32, 32, 3).astype("float32")
    y = np.random.randint(0, 10, 512)
    model.fit(x, y, batch_size=256, epochs=1, verbose=0)  # 4 virtual batches per step
    ```
    """

    def __init__(
        self,
        virtual_batch_size=64,
        axis=-1,
        momentum=0.99,
        epsilon=1e-3,
        center=True,
        scale=True,
        beta_initializer="zeros",
        gamma_initializer="ones",
        moving_mean_initializer="zeros",
        moving_variance_initializer="ones",
        beta_regularizer=None,
        gamma_regularizer=None,
        beta_constraint=None,
        gamma_constraint=None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        # bool is an Integral, but virtual_batch_size=True is always a mistake.
        if (
            not isinstance(virtual_batch_size, numbers.Integral)
            or isinstance(virtual_batch_size, bool)
            or virtual_batch_size < 1
        ):
            raise ValueError(
                "virtual_batch_size must be a positive integer number of examples "
                f"per virtual batch, such as 64; got {virtual_batch_size!r}."
            )
        if not isinstance(axis, numbers.Integral) or isinstance(axis, bool):
            raise ValueError(
                f"axis must be a single integer, the channels-last axis -1; got {axis!r}."
            )
        self.virtual_batch_size = int(virtual_batch_size)
        self.axis = int(axis)
        self.momentum = validation.number(momentum, "momentum", low=0, high=1)
        self.epsilon = validation.positive_number(epsilon, "epsilon")
        self.center = validation.boolean(center, "center")
        self.scale = validation.boolean(scale, "scale")
        self.beta_initializer = initializers.get(beta_initializer)
        self.gamma_initializer = initializers.get(gamma_initializer)
        self.moving_mean_initializer = initializers.get(moving_mean_initializer)
        self.moving_variance_initializer = initializers.get(moving_variance_initializer)
        self.beta_regularizer = regularizers.get(beta_regularizer)
        self.gamma_regularizer = regularizers.get(gamma_regularizer)
        self.beta_constraint = constraints.get(beta_constraint)
        self.gamma_constraint = constraints.get(gamma_constraint)

        self.gamma = None
        self.beta = None
        self.moving_mean = None
        self.moving_variance = None

    def build(self, input_shape):
        rank = len(input_shape)
        if rank < 2:
            raise ValueError(
                "GhostBatchNormalization needs inputs of rank >= 2 (batch, ..., channels); "
                f"got shape {tuple(input_shape)}."
            )
        if self.axis not in (-1, rank - 1):
            raise ValueError(
                "GhostBatchNormalization only normalises the last (channels-last) axis: "
                f"pass axis=-1 and transpose channels-first inputs; got axis={self.axis} "
                f"for inputs of rank {rank}."
            )
        channels = input_shape[-1]
        if channels is None:
            raise ValueError(
                "GhostBatchNormalization needs a known channels (last) dimension; "
                f"got shape {tuple(input_shape)}."
            )
        shape = (channels,)
        # autocast=False keeps the variables float32 under mixed precision, as in
        # BatchNormalization; call() casts them explicitly.
        if self.scale:
            self.gamma = self.add_weight(
                shape=shape,
                name="gamma",
                initializer=self.gamma_initializer,
                regularizer=self.gamma_regularizer,
                constraint=self.gamma_constraint,
                trainable=True,
                autocast=False,
            )
        if self.center:
            self.beta = self.add_weight(
                shape=shape,
                name="beta",
                initializer=self.beta_initializer,
                regularizer=self.beta_regularizer,
                constraint=self.beta_constraint,
                trainable=True,
                autocast=False,
            )
        self.moving_mean = self.add_weight(
            shape=shape,
            name="moving_mean",
            initializer=self.moving_mean_initializer,
            trainable=False,
            autocast=False,
            # Under MirroredStrategy each replica computes its own virtual-batch
            # statistics; "mean" makes every replica keep their average instead
            # of its own (which replica 0 alone would then save).
            aggregation="mean",
        )
        self.moving_variance = self.add_weight(
            shape=shape,
            name="moving_variance",
            initializer=self.moving_variance_initializer,
            trainable=False,
            autocast=False,
            # Under MirroredStrategy each replica computes its own virtual-batch
            # statistics; "mean" makes every replica keep their average instead
            # of its own (which replica 0 alone would then save).
            aggregation="mean",
        )
        self.input_spec = keras.layers.InputSpec(ndim=rank, axes={-1: channels})

    def compute_output_shape(self, input_shape):
        return input_shape

    def call(self, inputs, training=None):
        # float16/bfloat16 statistics overflow and lose precision; BatchNormalization
        # upcasts the same way.
        compute_dtype = keras.backend.result_type(inputs.dtype, "float32")
        inputs = ops.cast(inputs, compute_dtype)

        if training and self.trainable:
            mean, variance, outputs = self._ghost_normalize(inputs)
            # A replica can get an empty batch (the last one of a dataset): its
            # statistics are NaN, so it keeps the old values instead.
            has_examples = ops.shape(inputs)[0] > 0
            old_mean = ops.cast(self.moving_mean, compute_dtype)
            old_variance = ops.cast(self.moving_variance, compute_dtype)
            self.moving_mean.assign(
                ops.where(
                    has_examples,
                    old_mean * self.momentum + mean * (1.0 - self.momentum),
                    old_mean,
                )
            )
            self.moving_variance.assign(
                ops.where(
                    has_examples,
                    old_variance * self.momentum + variance * (1.0 - self.momentum),
                    old_variance,
                )
            )
        else:
            outputs = ops.batch_normalization(
                x=inputs,
                mean=ops.cast(self.moving_mean, compute_dtype),
                variance=ops.cast(self.moving_variance, compute_dtype),
                axis=-1,
                offset=self._beta(compute_dtype),
                scale=self._gamma(compute_dtype),
                epsilon=self.epsilon,
            )
        return ops.cast(outputs, self.compute_dtype)

    def _gamma(self, dtype):
        return ops.cast(self.gamma, dtype) if self.scale else None

    def _beta(self, dtype):
        return ops.cast(self.beta, dtype) if self.center else None

    def _ghost_normalize(self, inputs):
        """Normalises each virtual batch; returns (mean, variance, outputs).

        `mean` and `variance` are the example-weighted averages of the
        per-virtual-batch statistics, shape (channels,), for the moving
        statistics.
        """
        dtype = inputs.dtype
        vbs = self.virtual_batch_size
        shape = ops.shape(inputs)
        # Under tf.function with a None batch these are scalar tensors, otherwise ints;
        # the arithmetic below works on both.
        batch = shape[0]
        inner_shape = tuple(shape[1:])
        num_virtual = (batch + vbs - 1) // vbs
        padded_batch = num_virtual * vbs
        rank = len(inputs.shape)

        padded = ops.pad(inputs, [[0, padded_batch - batch]] + [[0, 0]] * (rank - 1))
        grouped = ops.reshape(padded, (num_virtual, vbs) + inner_shape)

        # weights: 1 for real examples, 0 for padding, shaped to broadcast against
        # `grouped`; only the last virtual batch can hold padding.
        valid = ops.cast(ops.arange(padded_batch) < batch, dtype)
        weights = ops.reshape(valid, (num_virtual, vbs) + (1,) * (rank - 1))
        values_per_example = 1
        for dim in inner_shape[:-1]:
            values_per_example = values_per_example * dim
        # grouped is (virtual, example, ..., channels): reduce all but the first and last.
        reduce_axes = tuple(range(1, rank))
        # Every virtual batch holds at least one real example, so counts are >= 1.
        counts = ops.sum(weights, axis=reduce_axes, keepdims=True) * ops.cast(
            values_per_example, dtype
        )

        # Two-pass variance, like ops.moments: E[x^2] - E[x]^2 cancels badly when
        # the mean is large compared with the spread.
        mean = ops.sum(grouped * weights, axis=reduce_axes, keepdims=True) / counts
        centred = (grouped - mean) * weights
        variance = ops.sum(ops.square(centred), axis=reduce_axes, keepdims=True) / counts

        inv = ops.rsqrt(variance + self.epsilon)
        gamma = self._gamma(dtype)
        if gamma is not None:
            inv = inv * gamma
        normalized = centred * inv
        beta = self._beta(dtype)
        if beta is not None:
            normalized = normalized + beta
        outputs = ops.reshape(normalized, (padded_batch,) + inner_shape)[:batch]

        total = ops.sum(counts)
        moving_axes = tuple(range(rank))
        batch_mean = ops.reshape(ops.sum(mean * counts, axis=moving_axes) / total, (-1,))
        batch_variance = ops.reshape(ops.sum(variance * counts, axis=moving_axes) / total, (-1,))
        return batch_mean, batch_variance, outputs

    def get_config(self):
        base_config = super().get_config()
        config = {
            "virtual_batch_size": self.virtual_batch_size,
            "axis": self.axis,
            "momentum": self.momentum,
            "epsilon": self.epsilon,
            "center": self.center,
            "scale": self.scale,
            "beta_initializer": initializers.serialize(self.beta_initializer),
            "gamma_initializer": initializers.serialize(self.gamma_initializer),
            "moving_mean_initializer": initializers.serialize(self.moving_mean_initializer),
            "moving_variance_initializer": initializers.serialize(self.moving_variance_initializer),
            "beta_regularizer": regularizers.serialize(self.beta_regularizer),
            "gamma_regularizer": regularizers.serialize(self.gamma_regularizer),
            "beta_constraint": constraints.serialize(self.beta_constraint),
            "gamma_constraint": constraints.serialize(self.gamma_constraint),
        }
        return {**base_config, **config}
