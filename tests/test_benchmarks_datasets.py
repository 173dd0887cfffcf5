"""Tests of `benchmarks.datasets`: local files, tfds errors, IDX files, normalization, pipelines."""

import gzip
import os

import numpy as np
import pytest

from benchmark_helpers import data_dir
from benchmarks import datasets


@pytest.mark.fast
def test_missing_local_data_raises_helpful_error(tmp_path, monkeypatch):
    monkeypatch.delenv(datasets.ENV_VAR, raising=False)
    with pytest.raises(datasets.DataNotFoundError) as info:
        datasets.load_dataset("cifar10", local_data_dir=str(tmp_path))
    message = str(info.value)
    assert "cifar10.npz" in message
    assert "--local_data_dir" in message and datasets.ENV_VAR in message
    assert "tensorflow-datasets" in message
    # The environment variable is used when no folder is passed.
    monkeypatch.setenv(datasets.ENV_VAR, str(tmp_path / "nowhere"))
    with pytest.raises(datasets.DataNotFoundError, match="does not exist"):
        datasets.load_dataset("mnist")


def test_tfds_failure_raises_helpful_error(tmp_path, monkeypatch):
    monkeypatch.delenv(datasets.ENV_VAR, raising=False)
    with pytest.raises(datasets.DataNotFoundError) as info:
        datasets.load_dataset("mnist", data_dir=str(tmp_path), download=False)
    assert "KERAS_SUBSET_DATA_DIR" in str(info.value)
    assert "mnist.npz" in str(info.value)


def _write_idx(path, array):
    header = bytes([0, 0, 8, array.ndim]) + b"".join(
        int(d).to_bytes(4, "big") for d in array.shape
    )
    with gzip.open(path, "wb") as f:
        f.write(header + array.astype(np.uint8).tobytes())


@pytest.mark.fast
def test_fashion_mnist_idx_loader(tmp_path):
    rng = np.random.RandomState(1)
    folder = tmp_path / datasets.FASHION_MNIST_SUBDIR
    folder.mkdir()
    arrays = {
        "x_train": rng.randint(0, 256, (30, 28, 28)),
        "y_train": rng.randint(0, 10, 30),
        "x_test": rng.randint(0, 256, (20, 28, 28)),
        "y_test": rng.randint(0, 10, 20),
    }
    for key, filename in datasets.FASHION_MNIST_FILES.items():
        _write_idx(str(folder / filename), arrays[key])
    np.testing.assert_array_equal(
        datasets.read_idx(str(folder / datasets.FASHION_MNIST_FILES["x_train"])),
        arrays["x_train"],
    )
    raw, source = datasets.load_arrays("fashion_mnist", local_data_dir=str(tmp_path))
    assert source == str(folder)
    assert raw["x_train"].shape == (30, 28, 28, 1) and raw["y_test"].shape == (20,)
    np.testing.assert_array_equal(raw["y_train"], arrays["y_train"])
    data = datasets.load_dataset("fashion_mnist", local_data_dir=str(folder),
                                 train_examples=10)
    assert data.x_train.shape == (10, 28, 28, 1) and data.x_test.shape == (20, 28, 28, 1)
    assert data.x_train.dtype == np.float32
    # Missing files: a helpful error.
    with pytest.raises(datasets.DataNotFoundError, match="dataset-fashion-mnist"):
        datasets.load_dataset("fashion_mnist", local_data_dir=str(tmp_path / "none"))
    bad = tmp_path / "bad.gz"
    with gzip.open(bad, "wb") as f:
        f.write(b"\x01\x02\x03\x04")
    with pytest.raises(ValueError):
        datasets.read_idx(str(bad))


def test_real_fashion_mnist_files():
    # The extra dataset: the Debian package dataset-fashion-mnist's files, or
    # the fashion-mnist subfolder of the local data folder.
    candidates = [
        os.path.join(os.environ.get(datasets.ENV_VAR, ""), datasets.FASHION_MNIST_SUBDIR),
        "/usr/share/datasets/fashion-mnist",
    ]
    folder = next((c for c in candidates if os.path.exists(
        os.path.join(c, datasets.FASHION_MNIST_FILES["x_train"]))), None)
    if folder is None:
        pytest.skip("Fashion-MNIST IDX files not installed (optional extra dataset)")
    raw, _ = datasets.load_arrays("fashion_mnist", local_data_dir=folder)
    assert raw["x_train"].shape == (60000, 28, 28, 1)
    assert raw["x_test"].shape == (10000, 28, 28, 1)
    assert np.bincount(raw["y_train"]).tolist() == [6000] * 10


@pytest.mark.fast
def test_real_data_layout_and_normalization():
    folder = data_dir("mnist.npz", "cifar100.npz")
    data = datasets.load_dataset("cifar100", local_data_dir=folder,
                                 train_examples=1000, test_examples=500)
    assert data.x_train.shape == (1000, 32, 32, 3) and data.num_classes == 100
    # Sorted by class on disk; the fixed shuffle mixes the classes in a slice.
    assert len(np.unique(data.y_train)) > 90
    x = data.x_train.astype(np.float64)
    np.testing.assert_allclose(x.mean(axis=(0, 1, 2)), 0.0, atol=1e-4)
    np.testing.assert_allclose(x.std(axis=(0, 1, 2)), 1.0, atol=1e-4)
    again = datasets.load_dataset("cifar100", local_data_dir=folder,
                                  train_examples=1000, test_examples=500)
    np.testing.assert_array_equal(data.y_train, again.y_train)


def test_pipelines_and_augmentation():
    rng = np.random.RandomState(0)
    x = rng.rand(70, 32, 32, 3).astype(np.float32)
    y = rng.randint(0, 10, 70).astype(np.int32)
    augmenter = datasets.make_augmenter(flip=True, translation=0.1, seed=0)
    ds = datasets.train_pipeline(x, y, 32, seed=0, augmenter=augmenter)
    batches = list(ds)
    assert [int(b[0].shape[0]) for b in batches] == [32, 32, 6]
    assert sorted(np.concatenate([b[1].numpy() for b in batches]).tolist()) == sorted(y.tolist())
    once = datasets.augment_once(x, augmenter)
    assert once.shape == x.shape and not np.allclose(once, x)
    assert [l.__class__.__name__ for l in augmenter.layers] == ["RandomTranslation", "RandomFlip"]
    assert len(datasets.make_augmenter(flip=False).layers) == 1


# ----------------------------------------------------------------------------
# Damaged local files: which file, that it is damaged, how to rebuild it.
# ----------------------------------------------------------------------------


def _damaged_copy(folder, damage):
    """Writes a damaged mnist.npz (from the real one) in `folder`; returns its path."""
    original = os.path.join(data_dir("mnist.npz"), "mnist.npz")
    with open(original, "rb") as f:
        content = f.read()
    path = os.path.join(folder, "mnist.npz")
    if damage == "truncated":
        content = content[: len(content) // 2]
    elif damage == "garbage":
        content = np.random.RandomState(0).bytes(5000)
    elif damage == "overwritten":  # bytes inside x_train's compressed data
        third = len(content) // 3
        content = content[:third] + np.random.RandomState(0).bytes(1000) + content[third + 1000:]
    if damage == "missing_array":
        np.savez(path, x_train=np.zeros((2, 28, 28), np.uint8), y_train=np.zeros(2, np.uint8))
    else:
        with open(path, "wb") as f:
            f.write(content)
    return path


@pytest.mark.parametrize("damage", ["truncated", "garbage", "overwritten", "missing_array"])
def test_damaged_local_file_raises_helpful_error(damage, tmp_path):
    path = _damaged_copy(str(tmp_path), damage)
    with pytest.raises(datasets.DataCorruptError) as info:
        datasets.load_dataset("mnist", local_data_dir=str(tmp_path))
    message = str(info.value)
    assert path in message and "damaged" in message
    assert "bash tools/setup.sh ../shared/data" in message
    assert "SHA-256" in message and "../shared/data/README.md" in message
    # Scripts report it like missing data.
    assert isinstance(info.value, datasets.DataNotFoundError)


def test_damaged_cifar10_and_fashion_mnist_say_how_to_rebuild(tmp_path):
    (tmp_path / "cifar10.npz").write_bytes(b"not a zip file at all")
    with pytest.raises(datasets.DataCorruptError, match="get_cifar10.sh"):
        datasets.load_dataset("cifar10", local_data_dir=str(tmp_path))
    folder = tmp_path / datasets.FASHION_MNIST_SUBDIR
    folder.mkdir()
    for key, filename in datasets.FASHION_MNIST_FILES.items():
        _write_idx(str(folder / filename), np.zeros((3, 28, 28) if key[0] == "x" else 3))
    labels = folder / datasets.FASHION_MNIST_FILES["y_test"]
    labels.write_bytes(labels.read_bytes()[:-6])  # a truncated gzip file
    with pytest.raises(datasets.DataCorruptError) as info:
        datasets.load_dataset("fashion_mnist", local_data_dir=str(tmp_path))
    assert str(labels) in str(info.value) and "dataset-fashion-mnist" in str(info.value)
