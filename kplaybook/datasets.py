"""Small data for the demo and examples: scikit-learn's digits offline, TFDS image datasets."""

import difflib

import numpy as np

from kplaybook import validation

OFFLINE_DATASET = "digits"
TFDS_CATALOG = "https://www.tensorflow.org/datasets/catalog/overview"
# A split is read in batches of this many examples, then concatenated: as_dataset's
# batch_size=-1 would need "train[:n]" for max_examples, which tfds.ImageFolder refuses.
_READ_BATCH = 4096


def load_digits(validation_fraction=0.2, seed=0):
    """scikit-learn's 1,797 8x8 digit images, flattened to 64 floats in [0, 1].

    Ships with scikit-learn, so it needs no network.

    Args:
        validation_fraction: the share of the examples held out for
            validation, a number between 0 and 1 (both excluded).
        seed: the shuffling seed, a non-negative int.

    Returns:
        `((x_train, y_train), (x_val, y_val))`, numpy arrays.

    Example:
        >>> (x, y), (xv, yv) = load_digits()
        >>> x.shape[1]
        64
    """
    from sklearn.datasets import load_digits as sklearn_digits

    validation_fraction = validation.number(
        validation_fraction, "validation_fraction", low=0, high=1, low_open=True, high_open=True
    )
    seed = validation.seed(seed)
    data = sklearn_digits()
    x = (data.data / 16.0).astype("float32")
    y = data.target.astype("int32")
    order = np.random.default_rng(seed).permutation(len(x))
    n_val = int(round(len(x) * validation_fraction))
    val, train = order[:n_val], order[n_val:]
    return (x[train], y[train]), (x[val], y[val])


def load_tfds(name, max_examples=None, validation_split="test", data_dir=None):
    """A TFDS image classification dataset as flattened float arrays in [0, 1].

    `name` is one of:

    - a TFDS catalog name such as "mnist" or "fashion_mnist": downloaded and
      prepared in `data_dir` on first use (needs internet, e.g. on Colab),
      read from there offline afterwards;
    - the name of a dataset already prepared in `data_dir` (by `tfds build`,
      `tfds.dataset_builders.store_as_tfds_dataset` or
      `tfds.folder_dataset.write_metadata`);
    - a TFDS builder ready to read, e.g. `tfds.ImageFolder(path)` over
      `path/<split>/<class>/*.png` (or .jpg) files, all of one size.

    The dataset's supervised pairs must be (`tfds.features.Image`,
    `tfds.features.ClassLabel`). Images are scaled by their dtype's maximum
    (255 for 8-bit) and flattened; labels are int32.

    Args:
        name: str TFDS name, or a `tfds.core.DatasetBuilder`.
        max_examples: optional int, keep the first `max_examples` training
            examples.
        validation_split: str, split used for validation (default "test").
        data_dir: optional TFDS data directory for a name (default
            `~/tensorflow_datasets`); a builder already has its own.

    Returns:
        `((x_train, y_train), (x_val, y_val))`, numpy arrays.

    Raises:
        ValueError: unknown name, not an image classification dataset, or
            images that cannot be stacked into one array.
        OSError: downloading or preparing failed (e.g. no internet).
        ModuleNotFoundError: tensorflow-datasets 4.9 needs importlib_resources
            to prepare a dataset and does not install it.

    Example:
        >>> import tensorflow_datasets as tfds
        >>> (x, y), (xv, yv) = load_tfds("mnist", max_examples=10000)     # internet
        >>> (x, y), (xv, yv) = load_tfds(tfds.ImageFolder("my_images"))   # local PNGs
    """
    # Imported here, as in the functions below: tensorflow_datasets (and the
    # TensorFlow it loads) is slow to import, and load("digits") needs neither.
    import tensorflow as tf
    import tensorflow_datasets as tfds

    if max_examples is not None and (
        isinstance(max_examples, bool)
        or not isinstance(max_examples, (int, np.integer))
        or max_examples < 1
    ):
        raise ValueError(f"max_examples must be a positive int or None, got {max_examples!r}.")
    if not isinstance(name, (str, tfds.core.DatasetBuilder)):
        raise TypeError(
            f"name must be a dataset name such as {OFFLINE_DATASET!r} or 'mnist', or a TFDS "
            f"builder, got {name!r}."
        )
    if isinstance(name, tfds.core.DatasetBuilder):
        if data_dir is not None:
            raise ValueError(
                f"data_dir applies to dataset names, and {name.name!r} is a builder "
                f"with its own data_dir ({name.data_dir}); drop data_dir."
            )
        builder = name
    else:
        builder = _named_builder(name, data_dir)
    _check_image_classification(builder)
    if not isinstance(name, tfds.core.DatasetBuilder) and not builder.is_prepared():
        _download_and_prepare(builder)

    def as_arrays(split, limit=None):
        dataset = builder.as_dataset(split=split, as_supervised=True)
        if limit is not None:
            dataset = dataset.take(int(limit))
        try:
            batches = list(tfds.as_numpy(dataset.batch(_READ_BATCH)))
        except tf.errors.InvalidArgumentError as e:
            reason = e.message.splitlines()[0]
            raise ValueError(
                f"Reading split {split!r} of {builder.name!r} failed ({reason}); its images "
                "must be valid PNG or JPEG files of one size, so resize or remove the others."
            ) from None
        images = np.concatenate([b[0] for b in batches])
        labels = np.concatenate([b[1] for b in batches])
        scale = np.iinfo(images.dtype).max if np.issubdtype(images.dtype, np.integer) else 1.0
        x = images.reshape(len(images), -1).astype("float32") / np.float32(scale)
        return x, labels.astype("int32")

    return as_arrays("train", max_examples), as_arrays(validation_split)


def _named_builder(name, data_dir):
    """`tfds.builder(name)`, with an unknown name as a one-sentence error."""
    import tensorflow_datasets as tfds

    try:
        return tfds.builder(name, data_dir=data_dir)
    except tfds.core.DatasetNotFoundError:
        if name.lower() == OFFLINE_DATASET:
            close = [OFFLINE_DATASET]  # not a TFDS name, so difflib would never suggest it
        else:
            close = difflib.get_close_matches(
                name, tfds.list_builders(with_community_datasets=False), n=1
            )
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        where = data_dir if data_dir is not None else "the default TFDS data_dir"
        raise ValueError(
            f"No TFDS dataset {name!r} in the catalog or in {where}{hint}; pick a name "
            f"from {TFDS_CATALOG}, pass the data_dir it was prepared in, or use "
            f"{OFFLINE_DATASET!r} offline."
        ) from None


def _check_image_classification(builder):
    """Refuse a dataset whose supervised pairs are not (Image, ClassLabel), before any download."""
    import tensorflow_datasets as tfds

    keys = builder.info.supervised_keys
    advice = (
        "kp.datasets.load reads (image, class label) datasets such as 'mnist', so read this "
        "one with tfds.load and preprocess it yourself."
    )
    if not (isinstance(keys, tuple) and len(keys) == 2 and all(isinstance(k, str) for k in keys)):
        raise ValueError(
            f"{builder.name!r} has no (input, label) pairs (supervised_keys={keys!r}); {advice}"
        )
    image, label = (builder.info.features[k] for k in keys)
    if not (isinstance(image, tfds.features.Image) and isinstance(label, tfds.features.ClassLabel)):
        raise ValueError(
            f"{builder.name!r} is not an image classification dataset (its pairs are "
            f"{keys[0]}: {type(image).__name__}, {keys[1]}: {type(label).__name__}); {advice}"
        )


def _download_and_prepare(builder):
    """What `tfds.load` does for a dataset not yet in its data_dir, with one-sentence errors."""
    try:
        builder.download_and_prepare()
    except ModuleNotFoundError as e:
        if e.name != "importlib_resources":
            raise
        # tensorflow-datasets 4.9 imports it on every Python but declares it only
        # for Python < 3.9 (https://github.com/tensorflow/datasets/issues/11212).
        raise ModuleNotFoundError(
            f"tensorflow-datasets needs the importlib_resources package to prepare "
            f"{builder.name!r} but does not install it; run `pip install importlib_resources` "
            "and try again.",
            name=e.name,
        ) from None
    except OSError as e:
        reason = str(e).splitlines()[0] if str(e) else type(e).__name__
        if len(reason) > 200:
            reason = reason[:200] + "..."
        raise OSError(
            f"Downloading and preparing {builder.name!r} in {builder.data_dir} failed "
            f"({reason}); check the internet connection and the free disk space, pass the "
            f"data_dir where it is already prepared, or use {OFFLINE_DATASET!r} offline."
        ) from None


def load(name=OFFLINE_DATASET, **kwargs):
    """`load_digits()` for "digits", else `load_tfds(name)` (a TFDS name or builder).

    Example:
        >>> (x, y), (xv, yv) = load("digits")
        >>> (x, y), (xv, yv) = load("mnist", max_examples=10000)   # needs internet once
    """
    if name == OFFLINE_DATASET:
        return load_digits(**kwargs)
    return load_tfds(name, **kwargs)
