"""Models for the batch-size probe tests (module-level, so a probe subprocess can import them)."""

import keras
import numpy as np
import tensorflow as tf

#: Floats allocated per (per-replica batch)^3: 4 GB at 32 examples, 32 GB at 64.
HOG_UNIT = 2**15


@keras.saving.register_keras_serializable(package="kplaybook_tests")
class MemoryHog(keras.layers.Layer):
    """Allocates batch^3 * HOG_UNIT floats per step: memory grows 8x per doubling of the batch.

    The allocation is real (TensorFlow's allocator, uninitialised memory, so
    feasible sizes stay fast): at 64 examples it asks for 32 GB, more than a
    24 GB machine has, and TensorFlow raises a real ResourceExhaustedError.
    The growth is cubic so that no probed size lands near the machine's limit.
    """

    def call(self, x):
        b = tf.shape(x)[0]
        big = tf.raw_ops.Empty(shape=tf.stack([b * b * b, HOG_UNIT]), dtype=tf.float32, init=False)
        # Read one element so the allocation cannot be pruned from the graph.
        return x + tf.stop_gradient(tf.reduce_sum(big[:1, :1]) * 0.0)


def build_hog():
    model = keras.Sequential([keras.Input((8,)), MemoryHog(), keras.layers.Dense(1)])
    model.compile(keras.optimizers.SGD(0.01), "mse")
    return model


def build_small(learning_rate=0.01):
    model = keras.Sequential(
        [keras.Input((8,)), keras.layers.Dense(16, activation="relu"), keras.layers.Dense(1)]
    )
    model.compile(keras.optimizers.SGD(learning_rate), "mse")
    return model


def data(n=512):
    rng = np.random.default_rng(0)
    return rng.normal(size=(n, 8)).astype("float32"), rng.normal(size=(n, 1)).astype("float32")


def build_digits():
    """For `kplaybook probe` on the offline digits (64 features, 10 classes)."""
    model = keras.Sequential(
        [keras.Input((64,)), keras.layers.Dense(32, activation="relu"), keras.layers.Dense(10)]
    )
    model.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    return model


def build_broken():
    raise RuntimeError("broken on purpose")
