"""Turns the inputs users pass (arrays, tensors, lists, a finite `tf.data.Dataset`, `keras.utils.PyDataset`
or generator of batches) into arrays."""

import collections.abc
import sys
import time

import numpy as np
import tensorflow as tf
import keras

from keras_subset import checks

# How many bytes of examples a `tf.data.Dataset` of unknown cardinality (most
# `from_generator` datasets, `filter`, ...), or a Python generator of batches, may
# yield before `to_arrays` stops reading it: such a source may never end, and
# reading on would fill the memory. A dataset of known size (`.take(n)`,
# `tf.data.experimental.assert_cardinality(n)`) or a `keras.utils.PyDataset` of known
# length is read whole. Read at each call, so it may be changed at run time.
MAX_UNKNOWN_CARDINALITY_BYTES = 4 * 2**30
# The same for the number of batches: a never-ending generator of small batches reaches the byte
# limit only after minutes (730 s measured for one), this one in well under a minute (about 22 s
# at the 4,500 batches per second measured for a tf.data generator of 8-example batches here).
MAX_UNKNOWN_CARDINALITY_BATCHES = 100_000
# Seconds between the progress lines printed while a dataset of unknown size is read.
PROGRESS_SECONDS = 5.0


def to_arrays(x, y=None, sample_weight=None):
    """Returns `(x, y, sample_weight)` as (nests of) NumPy arrays.

    Args:
        x: Input data: a NumPy array, a tensor, a list/dict of those (for
            multi-input models), a Python list of numbers (nested lists: one
            array), or a source of batches as `model.fit` takes it, each batch
            `(x, y)` or `(x, y, sample_weight)`: a finite, batched
            `tf.data.Dataset`, a `keras.utils.PyDataset` of known length, or a
            generator (any iterator) that ends after one pass. A dataset of
            unknown cardinality and a generator are read until they end or
            until they have yielded `MAX_UNKNOWN_CARDINALITY_BATCHES` batches
            or `MAX_UNKNOWN_CARDINALITY_BYTES` bytes.
        y: Targets (a list of numbers is one array), or `None` when `x` is a
            source of batches.
        sample_weight: Per-example weights of shape `(num_examples,)`, or
            `None`.

    Returns:
        A tuple `(x, y, sample_weight)`; `y` and `sample_weight` may be `None`.

    Raises:
        ValueError: for empty inputs (arrays or datasets), an infinite
            dataset or one of unknown size past the limits, `y` given together
            with a source of batches, a single number where an array of
            examples belongs, arrays whose first dimensions disagree,
            inputs or targets that are not numbers (strings, objects) or hold
            NaN or Inf (the message names the array and its first such
            example), or sample weights that are negative, NaN or Inf, or zero
            for every example.
    """
    source = batch_source(x)
    if source is not None:
        if y is not None or sample_weight is not None:
            raise ValueError(
                f"When `x` is {source}, `y` and `sample_weight` must be None: its batches hold (x, y) or "
                "(x, y, sample_weight)."
            )
        x, y, sample_weight = _batches_to_arrays(x, source)
    else:
        x, y = _as_arrays(x), _as_arrays(y)
        if sample_weight is not None:
            sample_weight = np.asarray(sample_weight)
    for name, value in (("x", x), ("y", y), ("sample_weight", sample_weight)):
        for leaf_name, leaf in named_leaves(name, value):
            checks.check_numeric(leaf_name, leaf)
            if np.ndim(leaf) == 0:
                raise ValueError(
                    f"`{leaf_name}` is a single number ({leaf.item()!r}), not an array with one row per example: "
                    "pass an array (a list or dict holds one array per input or output of the model)."
                )
    n = num_examples(x)
    if n == 0:
        raise ValueError("`x` is empty: it holds 0 examples, so there is nothing to fit.")
    for name, value in (("y", y), ("sample_weight", sample_weight)):
        if value is not None and num_examples(value) != n:
            raise ValueError(
                f"`{name}` has {num_examples(value)} examples but `x` has {n}: "
                "they must have the same first dimension."
            )
    if sample_weight is not None:
        if isinstance(sample_weight, np.ndarray) and sample_weight.ndim == 2 and sample_weight.shape[1] == 1:
            sample_weight = sample_weight[:, 0]  # (N, 1), as Keras takes it: one weight per example
        if not isinstance(sample_weight, np.ndarray) or sample_weight.ndim < 1:
            raise ValueError(
                "`sample_weight` must be an array of shape (num_examples,) or (num_examples, 1) (or, "
                "for per-timestep weights, the shape of the loss's elements), got "
                f"{np.shape(sample_weight)}."
            )
        checks.check_sample_weight("sample_weight", sample_weight)
    # Before any work: a NaN outside the first subset would otherwise be met after the weights moved.
    for name, value in (("x", x), ("y", y)):
        for leaf_name, leaf in named_leaves(name, value):
            checks.check_finite(leaf_name, leaf)
    return x, y, sample_weight


def named_leaves(name, value):
    """`(name, array)` for every array in the nest `value` (none for `None`): `x`, or `x[0]`, `x['image']`."""
    if value is None:
        return []
    if not tf.nest.is_nested(value):
        return [(name, value)]
    return [(name + "".join(f"[{key!r}]" for key in path), leaf) for path, leaf in keras.tree.flatten_with_path(value)]


def batch_source(x):
    """What kind of source of batches `x` is, in words (`"a tf.data.Dataset"`, ...), or `None` for data."""
    if isinstance(x, tf.data.Dataset):
        return "a tf.data.Dataset"
    if isinstance(x, keras.utils.PyDataset):
        return "a keras.utils.PyDataset"
    if isinstance(x, collections.abc.Iterator):  # a generator, `iter(dataset)`, ...
        return "a generator"
    return None


def _as_arrays(value):
    """`value` as a nest of arrays; a (nested) Python list of numbers, as Keras 2 read it, is one array."""
    if value is None:
        return None
    if isinstance(value, (list, tuple)) and all(checks.is_number(v) or isinstance(v, (bool, np.bool_))
                                                for v in tf.nest.flatten(value)):
        return np.asarray(value)
    return tf.nest.map_structure(np.asarray, value)


def apply_class_weight(y, sample_weight, class_weight):
    """Returns the per-example weights `class_weight` gives, as `model.fit` turns it into sample weights.

    Args:
        y: The targets: class indices `(N,)` or `(N, 1)` (rounded to integers),
            or one-hot `(N, C)` (the argmax is the class), of one output.
        sample_weight: Must be `None`: Keras takes one or the other.
        class_weight: A dict `{class index: weight}`; classes not in it
            weigh 1. `None` returns `sample_weight` unchanged.

    Returns:
        A float32 array of shape `(N,)`, or `sample_weight`.

    Raises:
        ValueError: for both `class_weight` and `sample_weight`, a
            `class_weight` that is not a dict of numbers, targets of several
            outputs, or targets that are not class labels.
    """
    if class_weight is None:
        return sample_weight
    check_class_weight(class_weight)
    if sample_weight is not None:
        raise ValueError(
            "Give `class_weight` or `sample_weight`, not both (as model.fit): multiply the class weights "
            "into `sample_weight` yourself."
        )
    if not isinstance(y, np.ndarray):
        raise ValueError("`class_weight` is only supported for models with a single output (one array of targets).")
    labels = y
    if labels.ndim > 1:
        labels = np.argmax(labels, axis=-1) if labels.shape[-1] != 1 else np.squeeze(labels, axis=-1)
    if labels.ndim != 1:
        raise ValueError(
            f"`class_weight` needs class labels of shape (N,), (N, 1) or one-hot (N, C); got targets of shape {y.shape}."
        )
    labels = np.round(labels).astype(np.int64)
    weights = np.ones(len(labels), np.float32)
    for cls, weight in class_weight.items():
        weights[labels == cls] = weight
    return checks.check_sample_weight("class_weight", weights)


def check_class_weight(class_weight):
    """Returns `class_weight` when it is a dict of class indices (integers) to weights (numbers)."""
    if not isinstance(class_weight, dict) or not all(
        checks.is_integer(k) and checks.is_number(v) for k, v in class_weight.items()
    ):
        raise ValueError(
            "`class_weight` must be a dict mapping class indices (integers) to weights (numbers), as "
            f"model.fit takes it; got {class_weight!r}."
        )
    return class_weight


def validation_arrays(validation_data):
    """Returns `validation_data`, as `model.fit` takes it, as arrays `(x, y, sample_weight)`.

    Args:
        validation_data: `(x_val, y_val)`, `(x_val, y_val, sample_weight)` (a
            tuple or list), or a source of batches of those (`to_arrays`).

    Returns:
        A tuple `(x, y, sample_weight)` as `to_arrays` returns it; `y` is never
        `None`.

    Raises:
        ValueError: naming `validation_data`, for anything `to_arrays` refuses,
            another structure, or no targets.
    """
    if batch_source(validation_data) is not None:
        parts = (validation_data,)
    elif isinstance(validation_data, (tuple, list)) and len(validation_data) in (2, 3):
        parts = tuple(validation_data)
    else:
        raise ValueError(
            "`validation_data` must be (x_val, y_val), (x_val, y_val, sample_weight) or a "
            f"tf.data.Dataset of those, as model.fit takes it; got {type(validation_data).__name__}"
            + (f" of length {len(validation_data)}" if isinstance(validation_data, (tuple, list)) else "")
            + "."
        )
    try:
        x, y, sample_weight = to_arrays(*parts)
    except ValueError as error:
        raise ValueError(f"`validation_data` is not fit for evaluation: {error}") from error
    if y is None:
        raise ValueError("`validation_data` has no targets: the dataset must yield (x, y) or (x, y, sample_weight).")
    return x, y, sample_weight


# TensorFlow's CPU kernels assume buffers aligned to this many bytes (EIGEN_MAX_ALIGN_BYTES).
_ALIGNMENT = 64
_DLPACK_DTYPES = ("float16", "float32", "float64", "int8", "int16", "int32", "int64", "uint8")


def to_tensor(array):
    """Returns a NumPy array as a tensor, sharing its memory where TensorFlow allows it.

    `tf.convert_to_tensor` copies an array, and while it converts, resident
    memory grew by about twice the array's size (measured once with
    TensorFlow 2.21). A writeable, C-contiguous array of a plain numeric
    dtype is handed over through DLPack instead. TensorFlow's kernels need
    64-byte aligned memory, and NumPy's allocations are usually only 16- or
    32-byte aligned, so such an array is usually copied once into an aligned
    buffer first; an aligned one is shared without a copy (the tensor reads
    the array's own memory, which must then not change while the tensor is
    in use; this module's callers drop the tensor when their call returns).
    Anything else (tensors, other dtypes, read-only, byte-swapped or strided
    arrays) goes through `tf.convert_to_tensor`.

    Args:
        array: A NumPy array or anything `tf.convert_to_tensor` takes.

    Returns:
        A `tf.Tensor` with the same values.
    """
    if not (
        isinstance(array, np.ndarray)
        and array.dtype.name in _DLPACK_DTYPES
        and array.dtype.isnative
        and array.flags.c_contiguous
        and array.flags.writeable  # NumPy refuses to export read-only arrays (memory maps, views)
        and array.size > 0
        and hasattr(array, "__dlpack__")
    ):
        return tf.convert_to_tensor(array)
    if array.ctypes.data % _ALIGNMENT:
        buffer = np.empty(array.nbytes + _ALIGNMENT, np.uint8)
        offset = -buffer.ctypes.data % _ALIGNMENT
        aligned = buffer[offset : offset + array.nbytes].view(array.dtype).reshape(array.shape)
        aligned[...] = array
        array = aligned
    return tf.experimental.dlpack.from_dlpack(array.__dlpack__())


def num_examples(x):
    """Returns the length of the first dimension shared by every array in `x`."""
    sizes = {int(np.shape(leaf)[0]) for leaf in tf.nest.flatten(x)}
    if len(sizes) != 1:
        raise ValueError(
            f"All input arrays must have the same first dimension; got {sorted(sizes)}."
        )
    return sizes.pop()


def take(x, indices):
    """Returns the rows `indices` of every array in the nest `x` (or `None`)."""
    if x is None:
        return None
    return tf.nest.map_structure(lambda a: np.take(a, indices, axis=0), x)


def _batches_to_arrays(x, source):
    """Reads every batch of `x`, a source of batches (`batch_source` says `source`), into arrays.

    Returns `(x, y, sample_weight)`, each the concatenation of the batches' parts.
    """
    batched = "it must be batched, each element a batch of examples as `model.fit` takes it"
    if isinstance(x, tf.data.Dataset):
        batched += " (`dataset.batch(n)`)"
        cardinality = int(x.cardinality())
        if cardinality == int(tf.data.INFINITE_CARDINALITY):
            raise ValueError(
                "`x` is an infinite tf.data.Dataset (e.g. made with `.repeat()`); "
                "pass a finite dataset, one pass of which is the whole training set."
            )
        unknown, elements = cardinality == int(tf.data.UNKNOWN_CARDINALITY), x.as_numpy_iterator()
        what, remedy = f"{source} of unknown size", (
            "Make it finite with `.take(n)` (n batches), or, if it does end, state its size with "
            "`dataset.apply(tf.data.experimental.assert_cardinality(n))`."
        )
    elif isinstance(x, keras.utils.PyDataset):
        if x.num_batches is None:
            raise ValueError(
                "`x` is a keras.utils.PyDataset without an end (num_batches None): give it a length "
                "(`__len__` or `num_batches`), one pass over which is the whole training set."
            )
        unknown, elements = False, (x[i] for i in range(x.num_batches))
        what = remedy = ""
    else:
        unknown, elements, what = True, x, source
        remedy = "Make it end after one pass over the training set (e.g. `itertools.islice(generator, n)`: n batches)."
    parts = ([], [], [])
    read, batches = 0, 0
    started = last_line = time.monotonic()
    for element in elements:
        element = tf.nest.map_structure(np.asarray, element)
        if any(np.ndim(leaf) == 0 for leaf in tf.nest.flatten(element)):
            raise ValueError(f"`x` is {source} whose elements hold scalars, so they are not batches: {batched}.")
        for part, value in zip(parts, keras.utils.unpack_x_y_sample_weight(element)):
            part.append(value)
        read += sum(leaf.nbytes for leaf in tf.nest.flatten(element))
        batches += 1
        if not unknown:
            continue
        if read > MAX_UNKNOWN_CARDINALITY_BYTES or batches > MAX_UNKNOWN_CARDINALITY_BATCHES:
            raise ValueError(
                f"`x` is {what} that has yielded {batches} batches ({read} bytes) "
                f"without ending, more than keras_subset.data.MAX_UNKNOWN_CARDINALITY_BATCHES "
                f"({MAX_UNKNOWN_CARDINALITY_BATCHES}) or MAX_UNKNOWN_CARDINALITY_BYTES "
                f"({MAX_UNKNOWN_CARDINALITY_BYTES}): it may never end (a generator that loops forever?). {remedy}"
            )
        now = time.monotonic()
        if now - last_line >= PROGRESS_SECONDS:
            last_line = now
            print(
                f"keras_subset: reading {what}: {batches} batches, "
                f"{read / 2**20:.1f} MiB in {now - started:.0f} s so far (stops with an error after "
                f"{MAX_UNKNOWN_CARDINALITY_BATCHES} batches or {MAX_UNKNOWN_CARDINALITY_BYTES / 2**30:g} GiB).",
                file=sys.stderr,
                flush=True,
            )
    if not parts[0]:
        raise ValueError(f"`x` is empty: {source} yields no elements, so there is nothing to fit.")

    def concat(batches):
        if batches[0] is None:
            return None
        return tf.nest.map_structure(lambda *b: np.concatenate(b, axis=0), *batches)

    arrays = tuple(concat(part) for part in parts)
    sizes = {int(np.shape(leaf)[0]) for part in arrays if part is not None for leaf in tf.nest.flatten(part)}
    if len(sizes) > 1:
        raise ValueError(
            f"The parts of {source} `x` have different numbers of rows ({sorted(sizes)}), as "
            f"single examples of different shapes would: is it unbatched? {batched[0].upper()}{batched[1:]}."
        )
    return arrays
