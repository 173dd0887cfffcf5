"""Input conversion (keras_subset/data.py): datasets to arrays, arrays to tensors without copies."""

import numpy as np
import pytest
import tensorflow as tf
import keras

import keras_subset
from keras_subset.data import to_arrays, to_tensor

from conftest import small_cnn


def test_dataset_input_equals_arrays(mnist):
    x, y = mnist[0][:300], mnist[1][:300]
    losses = []
    for data in ((x, y), (tf.data.Dataset.from_tensor_slices((x, y)).batch(64),)):
        model = small_cnn(seed=4)
        losses.append(keras_subset.LBFGS(max_iterations=3).minimize(model, *data).loss)
    assert losses[0] == pytest.approx(losses[1], rel=1e-5)


@pytest.mark.fast
def test_inputs_become_tensors_sharing_memory_where_safe(mnist):

    images = mnist[0][:100]

    def placed(skew):  # a copy of `images` at `skew` bytes past a 64-byte boundary
        buffer = np.empty(images.nbytes + 128, np.uint8)
        start = -buffer.ctypes.data % 64 + skew
        array = buffer[start : start + images.nbytes].view(np.float32).reshape(images.shape)
        array[...] = images
        return array

    aligned, misaligned = placed(0), placed(4)
    shared, copied = to_tensor(aligned), to_tensor(misaligned)
    np.testing.assert_array_equal(shared.numpy(), images)
    np.testing.assert_array_equal(copied.numpy(), images)
    # The aligned array is handed over without a copy; the misaligned one was copied once.
    aligned[0, 0, 0, 0] = misaligned[0, 0, 0, 0] = 7.0
    assert float(shared[0, 0, 0, 0]) == 7.0 and float(copied[0, 0, 0, 0]) == images[0, 0, 0, 0]
    read_only = np.frombuffer(images.tobytes(), np.float32).reshape(images.shape)
    others = (images[:, ::2], read_only, images.astype(">f4"), mnist[1][:10], np.array([True, False]),
              np.zeros((0, 3), np.float32))
    for other in others:
        np.testing.assert_array_equal(to_tensor(other).numpy(), other)


def test_negative_non_finite_or_all_zero_sample_weights_are_refused(mnist):
    x, y = mnist[0][:100], mnist[1][:100]
    model = small_cnn(seed=1)
    before = model.get_weights()
    for weights, match in (
        (-np.ones(100), "`sample_weight` must be finite and >= 0.*negative"),
        (np.where(np.arange(100) == 7, np.nan, 1.0), "`sample_weight` holds NaN at example 7"),
        (np.where(np.arange(100) == 7, np.inf, 1.0), "`sample_weight` holds Inf at example 7"),
        (np.zeros(100), "`sample_weight` is zero for every example"),
    ):
        with pytest.raises(ValueError, match=match):
            keras_subset.LBFGS(max_iterations=2).minimize(model, x, y, sample_weight=weights)
        dataset = tf.data.Dataset.from_tensor_slices((x, y, weights.astype("float32"))).batch(32)
        with pytest.raises(ValueError, match=match):
            to_arrays(dataset)
    for a, b in zip(before, model.get_weights()):
        np.testing.assert_array_equal(a, b)
    # Zero weights for some examples are fine: those examples do not count.
    some_zero = np.where(np.arange(100) < 50, 0.0, 1.0)
    assert to_arrays(x, y, some_zero)[2] is not None


@pytest.mark.fast
def test_empty_inputs_are_refused_by_every_entry_point(mnist):
    x, y = mnist[0][:100], mnist[1][:100]
    model = small_cnn(seed=1)
    before = model.get_weights()
    empties = (
        (x[:0], y[:0]),
        (tf.data.Dataset.from_tensor_slices((x[:0], y[:0])).batch(16),),  # no batch at all
        (tf.data.Dataset.from_tensors((x[:0], y[:0])),),  # one batch of no examples
    )
    for data in empties:
        with pytest.raises(ValueError, match="`x` is empty"):
            keras_subset.LBFGS(max_iterations=2).minimize(model, *data)
        with pytest.raises(ValueError, match="`x` is empty"):
            keras_subset.LBFGS(max_iterations=2).fit(model, *data, verbose=0)
        with pytest.raises(ValueError, match="`x` is empty"):
            model.fit(x, y, epochs=1, verbose=0, callbacks=[keras_subset.SubsetPretraining(*data, size=1, verbose=0)])
    for a, b in zip(before, model.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_dataset_that_may_never_end_stops_at_the_byte_limit(mnist, monkeypatch):
    x, y = mnist[0][:8], mnist[1][:8]

    def forever():
        while True:
            yield x, y

    spec = (tf.TensorSpec((None, 28, 28, 1), tf.float32), tf.TensorSpec((None,), tf.int32))
    endless = tf.data.Dataset.from_generator(forever, output_signature=spec)
    assert int(endless.cardinality()) == int(tf.data.UNKNOWN_CARDINALITY)
    batch_bytes = x.nbytes + y.nbytes
    monkeypatch.setattr(keras_subset.data, "MAX_UNKNOWN_CARDINALITY_BYTES", 20 * batch_bytes)
    model = small_cnn(seed=1)
    before = model.get_weights()
    with pytest.raises(ValueError, match=r"may never end.*\.take\(n\).*assert_cardinality\(n\)"):
        keras_subset.LBFGS(max_iterations=2).minimize(model, endless)
    for a, b in zip(before, model.get_weights()):
        np.testing.assert_array_equal(a, b)
    # A generator that ends below the limit is read whole; one of known size is not limited.
    assert len(to_arrays(endless.take(20))[0]) == 20 * 8
    known = endless.take(30).apply(tf.data.experimental.assert_cardinality(30))
    assert len(to_arrays(known)[0]) == 30 * 8


def test_non_numeric_inputs_and_targets_are_refused(mnist):
    x, y = mnist[0][:100], mnist[1][:100]
    model = small_cnn(seed=1)
    before = model.get_weights()
    words = y.astype(str)  # "5", "0", ...: NumPy strings
    with pytest.raises(ValueError, match=r"`y` must hold numbers.*got dtype <U"):
        keras_subset.LBFGS(max_iterations=2).minimize(model, x, words)
    with pytest.raises(ValueError, match=r"`y` must hold numbers.*got dtype object"):
        keras_subset.LBFGS(max_iterations=2).minimize(model, tf.data.Dataset.from_tensor_slices((x, words)).batch(50))
    with pytest.raises(ValueError, match=r"`x` must hold numbers"):
        keras_subset.LBFGS(max_iterations=2).minimize(model, np.full(x.shape, "a"), y)
    for a, b in zip(before, model.get_weights()):
        np.testing.assert_array_equal(a, b)


@pytest.mark.fast
def test_unbatched_dataset_is_refused_with_how_to_batch_it(mnist):
    x, y = mnist[0][:100], mnist[1][:100]
    model = small_cnn(seed=1)
    unbatched = tf.data.Dataset.from_tensor_slices((x, y))  # elements (28, 28, 1) and ()
    with pytest.raises(ValueError, match=r"must be batched.*\.batch\(n\)"):
        keras_subset.LBFGS(max_iterations=2).minimize(model, unbatched)
    # One-hot targets have a first axis even unbatched: the examples then disagree in number.
    one_hot = tf.data.Dataset.from_tensor_slices((x, keras.utils.to_categorical(y, 10)))
    with pytest.raises(ValueError, match=r"\.batch\(n\)"):
        to_arrays(one_hot)


@pytest.mark.fast
def test_non_finite_inputs_are_refused_naming_the_array_and_the_first_bad_example(mnist):
    # Issue 31, C: found before any work, for arrays and datasets, in x, y and sample weights.
    x, y = mnist[0][:300].copy(), mnist[1][:300]
    x[17, 3] = np.nan
    x[40, 0, 0] = np.inf
    model = small_cnn(seed=1)
    before = model.get_weights()
    dataset = tf.data.Dataset.from_tensor_slices((x, y)).batch(64)
    for data in ((x, y), (dataset,)):
        with pytest.raises(ValueError, match=r"`x` holds NaN at example 17 \(entry \(17, 3, 0, 0\)\).*2 examples"):
            keras_subset.LBFGS(max_iterations=2).minimize(model, *data)
        with pytest.raises(ValueError, match=r"`x` holds NaN at example 17"):
            keras_subset.LBFGS(max_iterations=2).fit(model, *data, verbose=0)
        with pytest.raises(ValueError, match=r"`x` holds NaN at example 17"):
            keras_subset.pretrain(model, *data, size=200)
    for a, b in zip(before, model.get_weights()):
        np.testing.assert_array_equal(a, b)
    targets = np.where(np.arange(300) == 250, np.inf, y.astype("float32"))
    with pytest.raises(ValueError, match=r"`y` holds Inf at example 250"):
        to_arrays(mnist[0][:300], targets)
    inputs = {"a": mnist[0][:300], "b": np.where(np.arange(300)[:, None] == 9, np.nan, np.ones((300, 2)))}
    with pytest.raises(ValueError, match=r"`x\['b'\]` holds NaN at example 9"):
        to_arrays(inputs, y)
    with pytest.raises(ValueError, match=r"`validation_data`.*`x` holds NaN at example 17"):
        keras_subset.LBFGS(max_iterations=2).fit(model, mnist[0][:300], y, validation_data=(x, y), verbose=0)


class _Batches(keras.utils.PyDataset):
    """`x`, `y` in batches of 64 (the last one smaller), as Keras's PyDataset gives them."""

    def __init__(self, x, y, batches=None):
        super().__init__()
        self.x, self.y, self.batches = x, y, batches

    @property
    def num_batches(self):
        return -(-len(self.x) // 64) if self.batches is None else self.batches

    def __getitem__(self, i):
        return self.x[64 * i : 64 * (i + 1)], self.y[64 * i : 64 * (i + 1)]


def test_py_datasets_generators_and_lists_of_numbers_are_read_as_data(mnist):
    # Issue 31, F: a keras.utils.PyDataset, a generator of batches and Python lists, which Keras
    # takes, failed with "inhomogeneous shape", "dtype object" and "tuple index out of range".
    x, y = mnist[0][:300], mnist[1][:300]

    def generator():
        for start in range(0, 300, 64):
            yield x[start : start + 64], y[start : start + 64]

    reference = keras_subset.LBFGS(max_iterations=2).minimize(small_cnn(seed=4), x, y).loss
    for data in ((_Batches(x, y),), (generator(),), (iter(tf.data.Dataset.from_tensor_slices((x, y)).batch(64)),),
                 (x.tolist(), y.tolist())):
        arrays = to_arrays(*data)
        np.testing.assert_array_equal(arrays[0], x)
        np.testing.assert_array_equal(arrays[1], y)
    for data in ((_Batches(x, y),), (generator(),), (x.tolist(), y.tolist())):
        result = keras_subset.LBFGS(max_iterations=2).minimize(small_cnn(seed=4), *data)
        assert result.loss == pytest.approx(reference, rel=1e-5)
    model = small_cnn(seed=4)
    keras_subset.pretrain(model, _Batches(x, y), size=200, optimizer=keras_subset.LBFGS(max_iterations=1))
    keras_subset.LBFGS(max_iterations=1).fit(model, generator(), validation_data=_Batches(x, y), verbose=0)
    # What cannot be read is refused up front, naming the input and what to pass instead.
    with pytest.raises(ValueError, match=r"`x` is a keras\.utils\.PyDataset without an end \(num_batches None\)"):
        to_arrays(_Infinite(x, y))
    with pytest.raises(ValueError, match=r"`x\[1\]` is a single number.*one row per example"):
        to_arrays([x, 3.0], y)
    with pytest.raises(ValueError, match=r"When `x` is a generator, `y` and `sample_weight` must be None"):
        to_arrays(generator(), y)


def test_generator_that_may_never_end_stops_at_the_batch_limit(mnist, monkeypatch):
    x, y = mnist[0][:8], mnist[1][:8]

    def forever():
        while True:
            yield x, y

    monkeypatch.setattr(keras_subset.data, "MAX_UNKNOWN_CARDINALITY_BATCHES", 50)
    with pytest.raises(ValueError, match=r"`x` is a generator that has yielded 51 batches.*may never end.*islice"):
        to_arrays(forever())


class _Infinite(_Batches):
    """A PyDataset without an end, as Keras marks one: `num_batches` is None."""

    @property
    def num_batches(self):
        return None
