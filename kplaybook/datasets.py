"""Small data for the demo and examples: scikit-learn's digits offline, TFDS with internet."""

import numpy as np

OFFLINE_DATASET = "digits"


def load_digits(validation_fraction=0.2, seed=0):
    """scikit-learn's 1,797 8x8 digit images, flattened to 64 floats in [0, 1].

    Ships with scikit-learn, so it needs no network.

    Returns:
        `((x_train, y_train), (x_val, y_val))`, numpy arrays.

    Example:
        >>> (x, y), (xv, yv) = load_digits()
        >>> x.shape[1]
        64
    """
    from sklearn.datasets import load_digits as sklearn_digits

    data = sklearn_digits()
    x = (data.data / 16.0).astype("float32")
    y = data.target.astype("int32")
    order = np.random.default_rng(seed).permutation(len(x))
    n_val = int(round(len(x) * validation_fraction))
    val, train = order[:n_val], order[n_val:]
    return (x[train], y[train]), (x[val], y[val])


def load_tfds(name, max_examples=None, validation_split="test", data_dir=None):
    """A TFDS image classification dataset as flattened float arrays in [0, 1].

    Downloads on first use (needs internet, e.g. on Colab). The validation
    data is the `validation_split` split.

    Args:
        name: TFDS name, e.g. "mnist" or "fashion_mnist".
        max_examples: optional cap on training examples.
        validation_split: split used for validation.
        data_dir: optional TFDS data directory.

    Returns:
        `((x_train, y_train), (x_val, y_val))`, numpy arrays.
    """
    import tensorflow_datasets as tfds

    def as_arrays(split):
        images, labels = tfds.as_numpy(
            tfds.load(name, split=split, as_supervised=True, batch_size=-1, data_dir=data_dir)
        )
        x = images.reshape(len(images), -1).astype("float32") / 255.0
        return x, labels.astype("int32")

    train_split = "train" if max_examples is None else f"train[:{int(max_examples)}]"
    return as_arrays(train_split), as_arrays(validation_split)


def load(name=OFFLINE_DATASET, **kwargs):
    """`load_digits()` for "digits", else `load_tfds(name)`.

    Example:
        >>> (x, y), (xv, yv) = load("digits")
    """
    if name == OFFLINE_DATASET:
        return load_digits(**kwargs)
    return load_tfds(name, **kwargs)
