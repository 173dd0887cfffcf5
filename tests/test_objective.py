"""The full-batch objective (keras_subset/objective.py) on real MNIST: Keras's loss, chunks, batch normalisation."""

import numpy as np
import pytest
import tensorflow as tf
import keras

import keras_subset
from keras_subset.objective import Objective

from conftest import small_cnn


@pytest.mark.fast
def test_objective_equals_keras_loss_and_chunking_changes_nothing(mnist):
    x, y = mnist[0][:500], mnist[1][:500]
    weights = np.linspace(0.5, 2.0, 500).astype("float32")
    model = small_cnn(dropout=0.3, l2=1e-3)
    keras_loss = model.evaluate(x, y, sample_weight=weights, batch_size=500, verbose=0)[0]
    single = Objective(model)
    chunked = Objective(model, chunk_size=37)
    position = single.position()
    args = (tf.constant(x), tf.constant(y), tf.constant(weights))
    value, gradient = single.value_and_gradient(position, *args)
    chunked_value, chunked_gradient = chunked.value_and_gradient(position, *args)
    assert float(value) == pytest.approx(keras_loss, rel=1e-5)
    assert float(chunked_value) == pytest.approx(float(value), rel=1e-5)
    np.testing.assert_allclose(chunked_gradient, gradient, rtol=1e-4, atol=1e-6)
    # The gradient is the derivative of the value: a finite-difference check along it.
    step = 1e-2 / float(tf.norm(gradient))
    ahead, _ = single.value_and_gradient(position - step * gradient, *args)
    assert float(value) - float(ahead) == pytest.approx(step * float(tf.reduce_sum(gradient**2)), rel=0.05)


def test_batch_norm_statistics_end_consistent_with_final_weights(mnist):
    x, y = mnist[0][:400], mnist[1][:400]
    model = small_cnn(seed=6, batch_norm=True)
    result = keras_subset.LBFGS(max_iterations=10, training=True, chunk_size=90).minimize(model, x, y)
    bn = [l for l in model.layers if isinstance(l, keras.layers.BatchNormalization)][0]
    features = keras.Sequential(model.layers[: model.layers.index(bn)])(x, training=False).numpy()
    np.testing.assert_allclose(bn.moving_mean.numpy(), features.mean(axis=0), rtol=1e-3, atol=1e-4)
    np.testing.assert_allclose(bn.moving_variance.numpy(), features.var(axis=0), rtol=1e-3, atol=1e-4)
    assert result.loss < result.initial_loss


def test_batch_norm_inference_mode_matches_single_chunk_objective(mnist):
    x, y = mnist[0][:400], mnist[1][:400]
    model = small_cnn(seed=6, batch_norm=True)
    result = keras_subset.LBFGS(max_iterations=10, training=True, chunk_size=None).minimize(model, x, y)
    inference_loss = model.evaluate(x, y, batch_size=400, verbose=0)[0]
    assert inference_loss == pytest.approx(result.loss, rel=1e-3)


def test_training_false_keeps_moving_statistics(mnist):
    x, y = mnist[0][:200], mnist[1][:200]
    model = small_cnn(seed=7, batch_norm=True)
    bn = [l for l in model.layers if isinstance(l, keras.layers.BatchNormalization)][0]
    before = bn.moving_mean.numpy().copy()
    keras_subset.LBFGS(max_iterations=3).minimize(model, x, y)
    np.testing.assert_array_equal(bn.moving_mean.numpy(), before)
