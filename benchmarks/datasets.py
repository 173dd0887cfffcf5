"""Datasets for the benchmarks: loading, normalization and `tf.data` pipelines.

Two sources, tried in this order:

1. **Local files**, when a folder is named by `local_data_dir` (the
   `--local_data_dir` flag) or, failing that, by the environment variable
   `KERAS_SUBSET_DATA_DIR`. The folder holds `mnist.npz`, `cifar10.npz` and
   `cifar100.npz` in the `keras.datasets` layout (arrays `x_train`,
   `y_train`, `x_test`, `y_test`, uint8). Fashion-MNIST is read from the
   four original IDX files (`train-images-idx3-ubyte.gz`,
   `train-labels-idx1-ubyte.gz`, `t10k-images-idx3-ubyte.gz`,
   `t10k-labels-idx1-ubyte.gz`) in a `fashion-mnist/` subfolder of that
   folder, or in the folder itself. When a local folder is given, tfds is
   never tried: a missing file is an error.
2. **tensorflow-datasets** (`tfds.load`, optionally with `data_dir`), only
   when no local folder is given. tfds downloads the data when it may reach
   the network.

When neither works, `DataNotFoundError` says how to get the data; when a
local file is there but damaged (truncated, overwritten), its subclass
`DataCorruptError` names the file and says how to rebuild it.

Every dataset comes back as float32 images of shape `(N, H, W, C)`, scaled
to [0, 1] and then standardized per channel with the mean and standard
deviation of the training examples in use, and int32 labels of shape `(N,)`.
The training and test sets are each shuffled once with a fixed seed (the
CIFAR-100 copy of `keras.datasets` layout is sorted by class), so that a
slice (`train_examples`, `test_examples`) is class-mixed and identical for
every run seed.
"""

import dataclasses
import gzip
import os
import socket
import zipfile
import zlib

import numpy as np

ENV_VAR = "KERAS_SUBSET_DATA_DIR"
"""Environment variable naming the local data folder."""

FASHION_MNIST_SUBDIR = "fashion-mnist"

FASHION_MNIST_FILES = {
    "x_train": "train-images-idx3-ubyte.gz",
    "y_train": "train-labels-idx1-ubyte.gz",
    "x_test": "t10k-images-idx3-ubyte.gz",
    "y_test": "t10k-labels-idx1-ubyte.gz",
}

DATASETS = {
    # name: (number of classes, input shape, local file, horizontal flips)
    "mnist": (10, (28, 28, 1), "mnist.npz", False),
    "fashion_mnist": (10, (28, 28, 1), None, False),
    "cifar10": (10, (32, 32, 3), "cifar10.npz", True),
    "cifar100": (100, (32, 32, 3), "cifar100.npz", True),
}
"""The supported datasets and their properties."""

DATA_SEED = 0
"""Seed of the one-off shuffle of the data (independent of run seeds)."""


class DataNotFoundError(FileNotFoundError):
    """Raised when a dataset can be had neither from local files nor tfds."""


class DataCorruptError(DataNotFoundError):
    """Raised when a local data file exists but cannot be read: truncated,
    overwritten, or not the expected format. The message names the file and
    says how to rebuild it; scripts report it like missing data."""


_READ_ERRORS = (zipfile.BadZipFile, zlib.error, EOFError, ValueError, KeyError, OSError)
"""What numpy, zipfile, gzip and zlib raise on a damaged file (KeyError: an
array missing from an `.npz`; OSError includes gzip's BadGzipFile)."""


@dataclasses.dataclass
class Dataset:
    """A loaded, normalized dataset held in memory.

    Attributes:
        name: Dataset name, one of `DATASETS`.
        x_train: float32 array `(N, H, W, C)`, standardized.
        y_train: int32 array `(N,)` of class indices.
        x_test: float32 array of test images, standardized alike.
        y_test: int32 array of test labels.
        num_classes: Number of classes `M`.
        flip: Whether horizontal flips are a valid augmentation.
        source: Where the data came from (a path or `"tfds"`).
    """

    name: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    num_classes: int
    flip: bool = False
    source: str = ""

    @property
    def input_shape(self):
        return tuple(self.x_train.shape[1:])


def resolve_local_data_dir(local_data_dir=None):
    """Returns the local data folder: the argument, else `$KERAS_SUBSET_DATA_DIR`.

    Returns `None` when neither is set (then tfds is used).
    """
    if local_data_dir:
        return local_data_dir
    return os.environ.get(ENV_VAR) or None


def how_to_get(name):
    """Returns instructions to obtain dataset `name`, for error messages."""
    if name == "fashion_mnist":
        local = (
            "put the four original Fashion-MNIST IDX files ("
            + ", ".join(FASHION_MNIST_FILES.values())
            + f") in FOLDER/{FASHION_MNIST_SUBDIR}/ (or in FOLDER itself); "
            "on Debian/Ubuntu `apt-get install dataset-fashion-mnist` installs "
            "them in /usr/share/datasets/fashion-mnist, which you can link as "
            f"FOLDER/{FASHION_MNIST_SUBDIR}"
        )
    else:
        local = (
            f"put {DATASETS[name][2]} (keras.datasets layout: uint8 arrays "
            "x_train, y_train, x_test, y_test) in FOLDER"
        )
    return (
        f"To get the '{name}' data, either\n"
        f"  (a) offline: {local}, then pass --local_data_dir=FOLDER or set "
        f"the environment variable {ENV_VAR}=FOLDER; or\n"
        "  (b) online: give no local folder, and tensorflow-datasets downloads "
        f"it (optionally into --data_dir); to fetch it ahead of time run "
        f"`python -c \"import tensorflow_datasets as tfds; tfds.load('{name}')\"`."
    )


def how_to_rebuild(name, path):
    """Returns instructions to rebuild the damaged local file `path` of
    dataset `name`, for error messages (paths from the repository root)."""
    if name == "fashion_mnist":
        return (
            "Reinstall the Fashion-MNIST files: `apt-get install --reinstall "
            "dataset-fashion-mnist` (they go to /usr/share/datasets/fashion-mnist)."
        )
    if name == "cifar10":
        return (
            f"Rebuild it: delete {path}, then run `bash ../shared/data/get_cifar10.sh "
            f"{os.path.dirname(path) or '.'}` (needs npm; `bash tools/setup.sh "
            "../shared/data` does the same for ./data)."
        )
    return (
        f"Rebuild it: delete {path}, then re-link or re-copy {DATASETS[name][2]} from the "
        "shared data folder (`bash tools/setup.sh ../shared/data` links it into ./data), "
        f"and check its SHA-256 (`sha256sum {path}`) against the one in "
        "../shared/data/README.md; if the shared copy is damaged too, get it anew."
    )


def _read_local_file(name, path, read):
    """`read(path)`, with the errors of a damaged file turned into a
    `DataCorruptError` that names the file and says how to rebuild it."""
    try:
        return read(path)
    except _READ_ERRORS as e:
        raise DataCorruptError(
            f"{path} is damaged: it could not be read ({type(e).__name__}: "
            f"{str(e)[:200]}).\n{how_to_rebuild(name, path)}"
        ) from e


def _read_npz(path):
    """The four arrays of a local `.npz` file in the keras.datasets layout."""
    with np.load(path) as f:
        return {k: f[k] for k in ("x_train", "y_train", "x_test", "y_test")}


def read_idx(path):
    """Reads an IDX file (optionally gzip-compressed) into a numpy array.

    Args:
        path: Path of a `.gz` or uncompressed IDX file of unsigned bytes.

    Returns:
        A uint8 array whose shape is the one stored in the file header.
    """
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rb") as f:
        data = f.read()
    if len(data) < 4 or data[0] != 0 or data[1] != 0:
        raise ValueError(f"{path} is not an IDX file")
    if data[2] != 0x08:
        raise ValueError(f"{path}: only unsigned-byte IDX files are supported")
    ndim = data[3]
    dims = [
        int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim)
    ]
    offset = 4 + 4 * ndim
    count = int(np.prod(dims)) if dims else 0
    if len(data) - offset != count:
        raise ValueError(
            f"{path}: header says {count} values, file holds "
            f"{len(data) - offset}"
        )
    return np.frombuffer(data, np.uint8, offset=offset).reshape(dims)


def _load_local(name, folder):
    if not os.path.isdir(folder):
        raise DataNotFoundError(
            f"The local data folder {folder!r} does not exist.\n{how_to_get(name)}"
        )
    if name == "fashion_mnist":
        for candidate in (os.path.join(folder, FASHION_MNIST_SUBDIR), folder):
            paths = {
                k: os.path.join(candidate, v)
                for k, v in FASHION_MNIST_FILES.items()
            }
            if all(os.path.exists(p) for p in paths.values()):
                arrays = {k: _read_local_file(name, p, read_idx) for k, p in paths.items()}
                return arrays, candidate
        raise DataNotFoundError(
            f"Fashion-MNIST IDX files not found in {folder!r} or its "
            f"'{FASHION_MNIST_SUBDIR}' subfolder.\n{how_to_get(name)}"
        )
    path = os.path.join(folder, DATASETS[name][2])
    if not os.path.exists(path):
        raise DataNotFoundError(
            f"{path!r} not found (local data folder from --local_data_dir or "
            f"${ENV_VAR}).\n{how_to_get(name)}"
        )
    return _read_local_file(name, path, _read_npz), path


# Where tensorflow-datasets downloads its prepared datasets from; probed before it is asked to
# download, since offline it retries for minutes (219 s measured here) before it gives up.
TFDS_HOST = ("storage.googleapis.com", 443)


def network_reachable(address=TFDS_HOST, timeout=3.0):
    """Whether a TCP connection to `address` opens within `timeout` seconds (False offline)."""
    try:
        socket.create_connection(address, timeout=timeout).close()
        return True
    except OSError:
        return False


def _load_tfds(name, data_dir, download):
    try:
        import tensorflow_datasets as tfds

        prepared = tfds.builder(name, data_dir=data_dir).is_prepared()
    except Exception:  # an old or broken tfds: let tfds.load below say what is wrong
        prepared = True
    if not prepared and (not download or not network_reachable()):
        why = "downloads are off (--nodownload)" if not download else (
            f"this machine cannot reach {TFDS_HOST[0]}, where tensorflow-datasets downloads it from"
        )
        raise DataNotFoundError(
            f"tensorflow-datasets has no prepared copy of '{name}' and {why}.\n{how_to_get(name)}"
        )
    try:
        import tensorflow_datasets as tfds

        train, test = tfds.as_numpy(
            tfds.load(
                name,
                split=["train", "test"],
                batch_size=-1,
                as_supervised=True,
                data_dir=data_dir,
                download=download,
            )
        )
    except Exception as e:  # tfds raises many kinds (network, not found...)
        raise DataNotFoundError(
            f"tensorflow-datasets could not load '{name}' "
            f"({type(e).__name__}: {str(e)[:300]}).\n{how_to_get(name)}"
        ) from e
    arrays = {
        "x_train": train[0],
        "y_train": train[1],
        "x_test": test[0],
        "y_test": test[1],
    }
    return arrays, "tfds"


def load_arrays(name, local_data_dir=None, data_dir=None, download=True):
    """Loads the raw uint8 arrays of a dataset.

    Args:
        name: One of `DATASETS`.
        local_data_dir: Local folder; `None` falls back to
            `$KERAS_SUBSET_DATA_DIR`, and when that is unset too, to tfds.
        data_dir: tfds data folder (`None`: the tfds default).
        download: Whether tfds may download.

    Returns:
        `(arrays, source)`: a dict with `x_train`, `y_train`, `x_test`,
        `y_test` (images `(N, H, W, C)` uint8, labels `(N,)` int32) and a
        string naming where they came from.

    Raises:
        DataNotFoundError: when the data can't be had; the message says how
            to get it.
    """
    if name not in DATASETS:
        raise ValueError(f"Unknown dataset {name!r}; expected one of {list(DATASETS)}")
    folder = resolve_local_data_dir(local_data_dir)
    if folder:
        arrays, source = _load_local(name, folder)
    else:
        arrays, source = _load_tfds(name, data_dir, download)
    shape = DATASETS[name][1]
    for split in ("train", "test"):
        x = np.asarray(arrays[f"x_{split}"])
        y = np.asarray(arrays[f"y_{split}"]).reshape(-1).astype(np.int32)
        x = x.reshape((x.shape[0],) + shape)
        if len(x) != len(y):
            raise ValueError(f"{name} {split}: {len(x)} images but {len(y)} labels")
        arrays[f"x_{split}"], arrays[f"y_{split}"] = x, y
    return arrays, source


def load_dataset(
    name,
    local_data_dir=None,
    data_dir=None,
    train_examples=None,
    test_examples=None,
    download=True,
):
    """Loads, shuffles, slices and normalizes a dataset.

    Args:
        name: One of `"mnist"`, `"fashion_mnist"`, `"cifar10"`, `"cifar100"`.
        local_data_dir: Local folder (see the module docstring).
        data_dir: tfds data folder.
        train_examples: Keep only this many training examples (after the
            fixed shuffle); `None` keeps all.
        test_examples: Likewise for the test set.
        download: Whether tfds may download.

    Returns:
        A `Dataset`.
    """
    arrays, source = load_arrays(name, local_data_dir, data_dir, download)
    rng = np.random.RandomState(DATA_SEED)
    out = {}
    for split, limit in (("train", train_examples), ("test", test_examples)):
        x, y = arrays[f"x_{split}"], arrays[f"y_{split}"]
        order = rng.permutation(len(x))
        if limit:
            order = order[: min(int(limit), len(x))]
        out[f"x_{split}"] = x[order].astype(np.float32) / 255.0
        out[f"y_{split}"] = y[order]
    axes = (0, 1, 2)
    mean = out["x_train"].mean(axis=axes, keepdims=True, dtype=np.float64)
    std = out["x_train"].std(axis=axes, keepdims=True, dtype=np.float64) + 1e-7
    mean, std = mean.astype(np.float32), std.astype(np.float32)
    for split in ("train", "test"):
        x = out[f"x_{split}"]
        x -= mean
        x /= std
    num_classes, _, _, flip = DATASETS[name]
    return Dataset(name=name, num_classes=num_classes, flip=flip, source=source, **out)


def make_augmenter(flip, translation=0.1, seed=None):
    """Returns the augmentation as Keras preprocessing layers.

    Random translations by up to `translation` of the height and width
    (reflect-padded), plus random horizontal flips when `flip` is true (the
    CIFAR datasets). Applied inside `tf.data` by `train_pipeline`, never
    inside the model.
    """
    import keras

    layers = [
        keras.layers.RandomTranslation(
            translation, translation, fill_mode="reflect", seed=seed
        )
    ]
    if flip:
        layers.append(keras.layers.RandomFlip("horizontal", seed=seed))
    return keras.Sequential(layers, name="augmentation")


def train_pipeline(x, y, batch_size, seed=None, augmenter=None, repeat=False):
    """Returns a shuffled, batched `tf.data.Dataset` for training.

    The pipeline is: cache, shuffle (the whole set, reshuffled every epoch),
    batch (the last batch may be smaller, so an epoch is exactly `len(x)`
    examples), augment (if `augmenter` is given), repeat (if `repeat`),
    prefetch.

    With `repeat=True` the dataset is infinite and every pass is one epoch of
    `ceil(len(x) / batch_size)` batches: pass that as `steps_per_epoch` to
    `fit`. Keras then keeps one iterator for all epochs; recreating it every
    epoch stalled some epochs by several seconds on a 2-core CPU.
    """
    import tensorflow as tf

    ds = tf.data.Dataset.from_tensor_slices((x, y)).cache()
    ds = ds.shuffle(len(x), seed=seed, reshuffle_each_iteration=True)
    ds = ds.batch(batch_size)
    if augmenter is not None:
        ds = ds.map(
            lambda a, b: (augmenter(a, training=True), b),
            num_parallel_calls=tf.data.AUTOTUNE,
        )
    if repeat:
        ds = ds.repeat()
    return ds.prefetch(tf.data.AUTOTUNE)


def eval_pipeline(x, y, batch_size=1000):
    """Returns a batched, cached `tf.data.Dataset` for evaluation."""
    import tensorflow as tf

    ds = tf.data.Dataset.from_tensor_slices((x, y)).cache().batch(batch_size)
    return ds.prefetch(tf.data.AUTOTUNE)


def augment_once(x, augmenter, batch_size=1000):
    """Applies `augmenter` once to every image of `x`; returns a new array.

    Used to turn an augmented subset into a fixed, deterministic set of
    examples for the subset phase (`--subset_augment=once`).
    """
    import tensorflow as tf

    ds = tf.data.Dataset.from_tensor_slices(x).batch(batch_size)
    ds = ds.map(lambda a: augmenter(a, training=True))
    return np.concatenate([np.asarray(b) for b in ds], axis=0)
