"""kp.datasets.load: digits offline, and TFDS datasets built from real PNG files (no network)."""

import importlib.util

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_datasets as tfds

import kplaybook as kp

CLASSES = ("dark", "light")  # ImageFolder sorts class folders: dark -> 0, light -> 1
SPLITS = {"train": 12, "test": 6}  # images per class
SIDE = 8
DARK_MAX, LIGHT_MIN = 100, 155  # pixel ranges of the two classes, so labels can be checked


def write_png(path, pixels):
    path.parent.mkdir(parents=True, exist_ok=True)
    tf.io.write_file(str(path), tf.io.encode_png(pixels))


@pytest.fixture(scope="module")
def image_root(tmp_path_factory):
    """A folder of real 8x8 RGB PNGs, `<split>/<class>/<i>.png`, as tfds.ImageFolder reads it."""
    root = tmp_path_factory.mktemp("images")
    rng = np.random.default_rng(0)
    for split, per_class in SPLITS.items():
        for name in CLASSES:
            low, high = (0, DARK_MAX) if name == "dark" else (LIGHT_MIN, 255)
            for i in range(per_class):
                pixels = rng.integers(low, high + 1, (SIDE, SIDE, 3)).astype(np.uint8)
                write_png(root / split / name / f"{i}.png", pixels)
    return root


def write_prepared_dataset(image_root, data_dir, name):
    """A prepared TFDS dataset in `data_dir` holding the same PNGs, as `tfds build` would leave it.

    TFRecord shards of serialized examples plus TFDS's own metadata
    (`tfds.folder_dataset.write_metadata`), so `tfds.builder(name, data_dir=...)`
    finds it by name.
    """
    features = tfds.features.FeaturesDict(
        {
            "image": tfds.features.Image(shape=(SIDE, SIDE, 3)),
            "label": tfds.features.ClassLabel(names=CLASSES),
        }
    )
    version_dir = data_dir / name / "1.0.0"
    version_dir.mkdir(parents=True)
    for split in SPLITS:
        shard = version_dir / f"{name}-{split}.tfrecord-00000-of-00001"
        with tf.io.TFRecordWriter(str(shard)) as writer:
            for png in sorted((image_root / split).glob("*/*.png")):
                example = {"image": str(png), "label": png.parent.name}
                writer.write(features.serialize_example(example))
    tfds.folder_dataset.write_metadata(
        data_dir=version_dir, features=features, supervised_keys=("image", "label")
    )


def assert_two_shades(x, y, n):
    """n flattened 8x8x3 images in [0, 1] whose labels match the folder they came from."""
    assert x.shape == (n, SIDE * SIDE * 3) and x.dtype == np.float32
    assert y.shape == (n,) and y.dtype == np.int32
    assert 0.0 <= x.min() and x.max() <= 1.0
    assert set(y) == {0, 1}
    assert x[y == 0].max() <= DARK_MAX / 255 + 1e-6
    assert x[y == 1].min() >= LIGHT_MIN / 255 - 1e-6


def test_digits_shapes_and_ranges():
    (x, y), (xv, yv) = kp.datasets.load("digits")
    assert x.shape == (1438, 64) and xv.shape == (359, 64)
    assert x.dtype == xv.dtype == np.float32 and y.dtype == yv.dtype == np.int32
    assert x.min() == 0.0 and x.max() == 1.0 and 0.0 <= xv.min() and xv.max() <= 1.0
    assert set(y) == set(yv) == set(range(10))
    (x_again, _), _ = kp.datasets.load("digits")
    np.testing.assert_array_equal(x, x_again)


def test_image_folder_builder(image_root):
    (x, y), (xv, yv) = kp.datasets.load(tfds.ImageFolder(str(image_root)))
    assert_two_shades(x, y, 2 * SPLITS["train"])
    assert_two_shades(xv, yv, 2 * SPLITS["test"])
    assert np.bincount(y).tolist() == [SPLITS["train"]] * 2


def test_image_folder_max_examples_and_validation_split(image_root):
    builder = tfds.ImageFolder(str(image_root))
    (x, y), (xv, _) = kp.datasets.load(builder, max_examples=5, validation_split="train")
    assert x.shape == (5, SIDE * SIDE * 3) and y.shape == (5,)
    assert len(xv) == 2 * SPLITS["train"]


def test_prepared_dataset_by_name(image_root, tmp_path):
    write_prepared_dataset(image_root, tmp_path, "kp_two_shades")
    (x, y), (xv, yv) = kp.datasets.load("kp_two_shades", data_dir=tmp_path)
    assert_two_shades(x, y, 2 * SPLITS["train"])
    assert_two_shades(xv, yv, 2 * SPLITS["test"])

    # The same PNGs as through ImageFolder, whatever the order.
    (x_folder, _), _ = kp.datasets.load(tfds.ImageFolder(str(image_root)))
    np.testing.assert_array_equal(np.unique(x, axis=0), np.unique(x_folder, axis=0))

    (x_few, y_few), _ = kp.datasets.load("kp_two_shades", data_dir=tmp_path, max_examples=7)
    np.testing.assert_array_equal(x_few, x[:7])
    np.testing.assert_array_equal(y_few, y[:7])


def test_unknown_name_is_one_sentence(tmp_path):
    with pytest.raises(ValueError, match=r"No TFDS dataset 'minst'.*did you mean 'mnist'\?\)") as e:
        kp.datasets.load("minst", data_dir=tmp_path)
    assert "\n" not in str(e.value) and e.value.__suppress_context__
    with pytest.raises(ValueError, match=r"No TFDS dataset 'kp_no_such_dataset'.*'digits'"):
        kp.datasets.load("kp_no_such_dataset", data_dir=tmp_path)
    # Only the exact name is the offline dataset, but a case slip gets pointed at it.
    with pytest.raises(ValueError, match=r"No TFDS dataset 'Digits'.*did you mean 'digits'\?\)"):
        kp.datasets.load("Digits", data_dir=tmp_path)


def test_non_image_dataset_refused_before_download(tmp_path):
    with pytest.raises(
        ValueError,
        match=r"'imdb_reviews' is not an image classification dataset "
        r"\(its pairs are text: Text, label: ClassLabel\)",
    ):
        kp.datasets.load("imdb_reviews", data_dir=tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_images_of_different_sizes(tmp_path):
    write_png(tmp_path / "train" / "a" / "0.png", np.zeros((8, 8, 3), np.uint8))
    write_png(tmp_path / "train" / "b" / "0.png", np.zeros((9, 9, 3), np.uint8))
    write_png(tmp_path / "test" / "a" / "0.png", np.zeros((8, 8, 3), np.uint8))
    with pytest.raises(ValueError, match=r"Reading split 'train' of 'image_folder'.*of one size"):
        kp.datasets.load(tfds.ImageFolder(str(tmp_path)))


@pytest.mark.parametrize("max_examples", [0, -3, True, 2.5])
def test_bad_max_examples(image_root, max_examples):
    with pytest.raises(ValueError, match="max_examples must be a positive int or None"):
        kp.datasets.load(tfds.ImageFolder(str(image_root)), max_examples=max_examples)


def test_builder_with_data_dir(image_root, tmp_path):
    with pytest.raises(ValueError, match="drop data_dir"):
        kp.datasets.load(tfds.ImageFolder(str(image_root)), data_dir=tmp_path)


@pytest.mark.skipif(
    importlib.util.find_spec("importlib_resources") is not None,
    reason="with importlib_resources installed, preparing mnist offline retries downloads for minutes",
)
def test_missing_importlib_resources_says_what_to_install(tmp_path):
    with pytest.raises(ModuleNotFoundError, match=r"pip install importlib_resources"):
        kp.datasets.load("mnist", data_dir=tmp_path)
