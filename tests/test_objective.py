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


def test_frozen_batch_norm_statistics_stay_bit_identical_on_every_route(mnist):
    # Issue 31, E: training mode, and pretrain's refresh of the moving statistics, rewrote those
    # of a frozen BatchNormalization layer (by about 1e-6); Keras's fit leaves them as they are.
    x, y = mnist[0][:400], mnist[1][:400]
    model = small_cnn(seed=6, batch_norm=True)
    model.fit(x, y, epochs=1, batch_size=64, verbose=0)  # statistics of its own, not 0 and 1
    bn = [l for l in model.layers if isinstance(l, keras.layers.BatchNormalization)][0]
    bn.trainable = False
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    frozen = [v.numpy().copy() for v in bn.non_trainable_variables]
    routes = {
        "minimize, training=True": lambda: keras_subset.LBFGS(max_iterations=3, training=True).minimize(model, x, y),
        "fit, training=True": lambda: keras_subset.LBFGS(max_iterations=3, training=True).fit(model, x, y, verbose=0),
        "pretrain, L-BFGS": lambda: keras_subset.pretrain(model, x, y, size=300, optimizer=keras_subset.LBFGS(max_iterations=3)),
        "pretrain, Adam": lambda: keras_subset.pretrain(model, x, y, size=300, optimizer="adam", epochs=1),
    }
    for route, run in routes.items():
        run()
        for a, b in zip(frozen, bn.non_trainable_variables):
            np.testing.assert_array_equal(b.numpy(), a, err_msg=route)
    model.compile(optimizer=keras_subset.LBFGS(), loss="sparse_categorical_crossentropy")
    model.fit(x, y, batch_size=len(x), epochs=3, verbose=0)
    for a, b in zip(frozen, bn.non_trainable_variables):
        np.testing.assert_array_equal(b.numpy(), a, err_msg="model.compile route")
