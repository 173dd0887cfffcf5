"""Input conversion (keras_subset/data.py): datasets to arrays, arrays to tensors without copies."""

import numpy as np
import pytest
import tensorflow as tf

import keras_subset
from keras_subset.data import to_tensor

from conftest import small_cnn


def test_dataset_input_equals_arrays(mnist):
    x, y = mnist[0][:300], mnist[1][:300]
    losses = []
    for data in ((x, y), (tf.data.Dataset.from_tensor_slices((x, y)).batch(64),)):
        model = small_cnn(seed=4)
        losses.append(keras_subset.LBFGS(max_iterations=3).minimize(model, *data).loss)
    assert losses[0] == pytest.approx(losses[1], rel=1e-5)


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
