"""The automatic chunk size (keras_subset/chunking.py): from the model's layer outputs."""

import numpy as np
import pytest
import tensorflow as tf
import keras

from keras_subset import chunking
from keras_subset.objective import Objective

# Every test of this file is quick: all in the fast tier.
pytestmark = pytest.mark.fast


def _mlp(width=128):
    return keras.Sequential(
        [keras.Input((28, 28, 1)), keras.layers.Flatten(), keras.layers.Dense(width, activation="relu"),
         keras.layers.Dense(10)]
    )


def _cnn():
    return keras.Sequential(
        [keras.Input((28, 28, 1)), keras.layers.Conv2D(16, 3, activation="relu"), keras.layers.MaxPooling2D(),
         keras.layers.Flatten(), keras.layers.Dense(10)]
    )


def test_activation_bytes_count_every_layer_output():
    # Flatten 784 + Dense 128 + Dense 10 float32 values per example.
    assert chunking.activation_bytes_per_example(_mlp()) == 4 * (784 + 128 + 10)
    # Conv 26x26x16 + pool 13x13x16 + flatten 2704 + dense 10.
    assert chunking.activation_bytes_per_example(_cnn()) == 4 * (26 * 26 * 16 + 2 * 13 * 13 * 16 + 10)


def test_small_activations_get_large_chunks_and_large_ones_small_chunks():
    mlp, cnn = chunking.auto_chunk_size(_mlp()), chunking.auto_chunk_size(_cnn())
    budget = chunking.ACTIVATION_BUDGET_BYTES
    for model, chunk in ((_mlp(), mlp), (_cnn(), cnn)):
        per_example = chunking.activation_bytes_per_example(model)
        # The largest power of two that fits the budget.
        assert chunk & (chunk - 1) == 0
        assert chunk * per_example <= budget < 2 * chunk * per_example
    assert mlp >= 8 * cnn


def test_subclassed_models_fall_back_to_the_default():
    class Linear(keras.Model):
        def __init__(self):
            super().__init__()
            self.dense = keras.layers.Dense(10)

        def call(self, x):
            return self.dense(keras.ops.reshape(x, (-1, 784)))

    model = Linear()
    model(np.zeros((2, 28, 28, 1), "float32"))
    assert chunking.auto_chunk_size(model) == chunking.FALLBACK_CHUNK_SIZE


def test_auto_chunks_give_the_single_pass_objective(mnist):
    x, y = tf.constant(mnist[0][:700]), tf.constant(mnist[1][:700])
    model = _cnn()
    model.compile(loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    auto, single = Objective(model, chunk_size="auto"), Objective(model, chunk_size=None)
    assert auto.chunk_size == chunking.auto_chunk_size(model) < 700
    value, gradient = auto.value_and_gradient(auto.position(), x, y)
    single_value, single_gradient = single.value_and_gradient(single.position(), x, y)
    assert float(value) == pytest.approx(float(single_value), rel=1e-5)
    np.testing.assert_allclose(gradient, single_gradient, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("bad", ["big", 0, -3, 2.5, True])
def test_bad_chunk_sizes(bad):
    with pytest.raises(ValueError, match="`chunk_size` must be"):
        chunking.check_chunk_size(bad)
    assert chunking.check_chunk_size("auto") == "auto" and chunking.check_chunk_size(None) is None
