"""The shared argument checks: numpy scalars are numbers, bools are not, paths are checked before use."""

import os
import pathlib

import numpy as np
import pytest

from kplaybook import validation


def test_integer_with_a_maximum():
    assert validation.integer(np.int64(5), "n", minimum=0, maximum=5) == 5
    with pytest.raises(ValueError, match=r"^n must be an integer from 0 to 5, got 6\.$"):
        validation.integer(6, "n", minimum=0, maximum=5)


@pytest.mark.parametrize("good", [0, np.uint32(2**32 - 1), np.int64(7)])
def test_seed_accepts_what_numpy_accepts(good):
    assert validation.seed(good) == int(good)
    assert type(validation.seed(good)) is int


@pytest.mark.parametrize(
    "bad, error",
    [(-1, ValueError), (2**32, ValueError), ("0", TypeError), (True, TypeError), (1.0, TypeError)],
)
def test_seed_refuses_the_rest(bad, error):
    with pytest.raises(error, match=r"^seeds\[0\] must be a non-negative integer below 2\*\*32"):
        validation.seed(bad, "seeds[0]")


@pytest.mark.parametrize(
    "good", [[1, 2], (1, 2), np.array([1, 2]), range(1, 3), {1: 0, 2: 0}.keys()]
)
def test_sequence_accepts_collections(good):
    assert validation.sequence(good, "xs", "a list") == [1, 2]


@pytest.mark.parametrize("bad", [3, 0.1, None, "ab", b"ab", {"a": 1}, np.array(3), object()])
def test_sequence_refuses_single_values_strings_and_mappings(bad):
    with pytest.raises(TypeError, match=r"^xs must be a list of ints, got .+\.$") as info:
        validation.sequence(bad, "xs", "a list of ints")
    assert " at 0x" not in str(info.value)


def test_function_refuses_non_callables_and_the_refused_types():
    class Model:
        def __call__(self):
            return None

    assert validation.function(len, "f", "a function") is len
    assert validation.function(Model, "f", "a function", refuse=Model) is Model  # the class builds
    for bad in (None, 3, Model()):
        with pytest.raises(TypeError, match="^f must be a function, got "):
            validation.function(bad, "f", "a function", refuse=Model)


def test_path_accepts_str_and_pathlike_only(tmp_path):
    assert validation.path(tmp_path, "directory") == str(tmp_path)
    assert validation.path("x", "directory") == "x"
    for bad in (3, None, b"x", pathlib.Path):
        with pytest.raises(
            TypeError, match=r"^directory must be a str or os\.PathLike, got .*; pass "
        ):
            validation.path(bad, "directory")


def test_writable_directory_creates_a_missing_one(tmp_path):
    target = tmp_path / "a" / "b"
    assert validation.writable_directory(target, "directory") == str(target)
    assert target.is_dir()


def test_writable_directory_refuses_a_file_and_an_impossible_path(tmp_path):
    a_file = tmp_path / "f"
    a_file.write_text("x")
    with pytest.raises(ValueError, match=r"^--out .*f is a file; pass a directory for reports\.$"):
        validation.writable_directory(a_file, "--out", "a directory for reports")
    assert a_file.read_text() == "x"
    with pytest.raises(ValueError, match=r"^directory .*f/sub cannot be created \(.+\); pass a "):
        validation.writable_directory(a_file / "sub", "directory")


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_writable_directory_refuses_a_read_only_one(tmp_path):
    tmp_path.chmod(0o500)
    try:
        with pytest.raises(ValueError, match="is not writable; pass a writable directory"):
            validation.writable_directory(tmp_path, "directory")
    finally:
        tmp_path.chmod(0o700)


def test_writable_file(tmp_path):
    assert validation.writable_file(tmp_path / "r.json", "--save") == str(tmp_path / "r.json")
    with pytest.raises(ValueError, match=r"^--save .* is a directory; pass the path of a file"):
        validation.writable_file(tmp_path, "--save")
    with pytest.raises(
        ValueError,
        match=r"^--plot .*p\.png cannot be written: its folder .* is "
        r"missing; pass a path in an existing directory\.$",
    ):
        validation.writable_file(tmp_path / "missing" / "p.png", "--plot")
    assert not (tmp_path / "missing").exists()
