"""model.compile(optimizer=LBFGS()) + model.fit on real MNIST, and the step rule behind it."""

import numpy as np
import pytest
import tensorflow as tf
import keras

import keras_subset
from keras_subset import stepwise

from conftest import small_cnn
from convex import downsampled, flat_weights, logistic_regression, numpy_objective, scipy_optimum


@pytest.fixture
def float64_keras():
    """Keras's compiled loss adds up in `floatx`: float64 here, for a float64 model's loss."""
    # Read the global dtype policy first: Keras caches the policy it first derives from floatx,
    # which would make every later layer of the session float64.
    policy, floatx = keras.config.dtype_policy(), keras.config.floatx()
    keras.config.set_floatx("float64")
    yield
    keras.config.set_floatx(floatx)
    keras.config.set_dtype_policy(policy)


def test_compile_fit_reaches_scipy_optimum_on_convex_problem(mnist, float64_keras):
    x, y = downsampled(mnist, 3000)
    model = logistic_regression(x.shape[1])
    reference = scipy_optimum(model, x, y)
    optimizer = keras_subset.LBFGS(tolerance=1e-9, dtype="float64")
    model.compile(optimizer=optimizer, loss=model.loss)
    history = model.fit(x, y, batch_size=len(x), epochs=400, verbose=0)

    results = optimizer.fit_results
    assert results["converged"] and not results["stalled"], results
    # Evaluations stop counting at convergence; SciPy's L-BFGS-B needed 99 here.
    assert results["iterations"] <= results["evaluations"] < 200, results
    found = flat_weights(model)
    assert results["loss"] == pytest.approx(reference.fun, rel=1e-10)
    assert numpy_objective(found, x, y)[0] == pytest.approx(reference.fun, rel=1e-10)
    np.testing.assert_allclose(found, reference.x, atol=2e-5)
    # Once converged, the remaining epochs evaluate the optimum and change nothing.
    assert history.history["loss"][-1] == pytest.approx(reference.fun, rel=1e-10)


def test_compile_fit_drives_callbacks_and_ends_at_the_best_weights(mnist, tmp_path):
    x, y = mnist[0][:600], mnist[1][:600]
    model = small_cnn(seed=8)
    initial_loss = model.evaluate(x, y, verbose=0)[0]
    optimizer = keras_subset.LBFGS()
    model.compile(optimizer=optimizer, loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    # One full batch per step, 10 steps (objective evaluations) per epoch.
    full_batch = tf.data.Dataset.from_tensors((x, y)).repeat()
    checkpoint = tmp_path / "epoch.weights.h5"
    history = model.fit(
        full_batch, steps_per_epoch=10, epochs=4, verbose=0,
        callbacks=[
            keras.callbacks.ModelCheckpoint(str(checkpoint), monitor="loss", save_weights_only=True),
            keras.callbacks.CSVLogger(str(tmp_path / "log.csv")),
            keras.callbacks.TensorBoard(str(tmp_path / "tb")),
        ],
    )
    results = optimizer.fit_results
    assert results["evaluations"] == 40 == int(optimizer.iterations.numpy())
    assert results["iterations"] >= 20, results
    losses = history.history["loss"]
    assert len(losses) == 4 and losses[-1] < losses[0] < initial_loss * 1.5
    # fit ends at the best accepted weights, not at a pending trial point.
    final_loss, final_accuracy = model.evaluate(x, y, verbose=0)
    assert final_loss == pytest.approx(results["loss"], rel=1e-5)
    assert final_loss < 0.5 * initial_loss and final_accuracy > 0.8
    assert checkpoint.exists() and (tmp_path / "log.csv").read_text().count("\n") == 5
    assert any((tmp_path / "tb").rglob("*tfevents*"))

    # A second fit goes on from there (the curvature history is kept).
    model.fit(full_batch, steps_per_epoch=10, epochs=1, verbose=0)
    assert optimizer.fit_results["loss"] <= results["loss"]
    assert model.evaluate(x, y, verbose=0)[0] == pytest.approx(optimizer.fit_results["loss"], rel=1e-5)


def test_compile_fit_stops_early_and_saves_with_the_model(mnist, tmp_path):
    x, y = mnist[0][:300], mnist[1][:300]
    model = small_cnn(seed=9)
    model.compile(optimizer=keras_subset.LBFGS(num_correction_pairs=5), loss="sparse_categorical_crossentropy")
    stopper = keras.callbacks.EarlyStopping(monitor="loss", min_delta=10.0, patience=0)
    history = model.fit(x, y, batch_size=len(x), epochs=10, callbacks=[stopper], verbose=0)
    assert len(history.history["loss"]) == 2  # no epoch improves the loss by 10

    path = tmp_path / "model.keras"
    model.save(path)
    loaded = keras.models.load_model(path)
    assert isinstance(loaded.optimizer, keras_subset.LBFGS)
    assert loaded.optimizer.get_config() == model.optimizer.get_config()
    for a, b in zip(loaded.get_weights(), model.get_weights()):
        np.testing.assert_array_equal(a, b)
    loaded.fit(x, y, batch_size=len(x), epochs=3, verbose=0)
    assert loaded.optimizer.fit_results["evaluations"] == 5


def _rosenbrock(position):
    x, y = position[0], position[1]
    value = (1.0 - x) ** 2 + 100.0 * (y - x**2) ** 2
    gradient = tf.stack([-2.0 * (1.0 - x) - 400.0 * x * (y - x**2), 200.0 * (y - x**2)])
    return value, gradient


def test_step_rule_minimises_rosenbrock():
    state = stepwise.initial_state(2, 10, tf.float64)
    position = tf.constant([-1.2, 1.0], tf.float64)
    step = tf.function(stepwise.step)
    accepted = []
    for _ in range(200):
        value, gradient = _rosenbrock(position)
        state, position = step(state, position, value, gradient, 1e-10, 20)
        accepted.append(float(state["value"]))
        if int(state["converged"]):
            break
    np.testing.assert_allclose(state["position"].numpy(), [1.0, 1.0], atol=1e-6)
    assert int(state["converged"]) == 1 and int(state["stalled"]) == 0
    assert accepted[0] == pytest.approx(24.2) and accepted[-1] < 1e-12
    # Accepted points only ever lower the loss; about one evaluation per iteration on average.
    assert np.all(np.diff(accepted) <= 0)
    assert int(state["evaluations"]) < 100 and int(state["iterations"]) > 0.5 * int(state["evaluations"]), state
    # Once converged, the rule stays at the optimum.
    state, position = step(state, position, *_rosenbrock(position), 1e-10, 20)
    np.testing.assert_array_equal(position.numpy(), state["position"].numpy())


def test_step_rule_never_accepts_a_non_finite_point():
    # A bowl centred at 3 whose loss is NaN beyond 2: the trial steps overshoot into NaN.
    def loss(position):
        inside = tf.reduce_all(position < 2.0)
        value = tf.reduce_sum((position - 3.0) ** 2)
        return tf.where(inside, value, np.nan), tf.where(inside, 2.0 * (position - 3.0), np.nan)

    state = stepwise.initial_state(3, 5, tf.float64)
    position = tf.zeros([3], tf.float64)
    accepted, trials = [], []
    for _ in range(60):
        value, gradient = loss(position)
        trials.append(float(value))
        state, position = stepwise.step(state, position, value, gradient, 1e-8, 10)
        accepted.append(float(state["value"]))
    assert np.isnan(trials).sum() >= 3  # the rule did meet NaN trial points...
    # ...and never accepted one: the accepted loss only falls, at points inside the finite region.
    assert np.all(np.isfinite(accepted)) and np.all(np.diff(accepted) <= 0)
    assert np.all(state["position"].numpy() < 2.0) and accepted[-1] < 3 * 1.1**2


def test_step_rule_restarts_then_stalls_when_no_step_lowers_the_loss():
    # A quadratic valley; after two true gradients, the gradient handed in points uphill.
    scale = tf.constant([1.0, 10.0], tf.float64)

    def loss(position, lie):
        gradient = 2.0 * scale * position
        return tf.reduce_sum(scale * position**2), -gradient if lie else gradient

    state = stepwise.initial_state(2, 5, tf.float64)
    position = tf.constant([1.0, -2.0], tf.float64)
    for _ in range(2):  # tolerance -1: never "converged"
        state, position = stepwise.step(state, position, *loss(position, False), -1.0, 4)
    assert int(state["history_size"]) == 1
    for _ in range(20):
        state, position = stepwise.step(state, position, *loss(position, True), -1.0, 4)
    # One failed search drops the history and restarts along -gradient; the next one stalls,
    # and from then on the rule stays at the best point it accepted.
    assert int(state["restarts"]) == 1 and int(state["stalled"]) == 1
    best = float(state["value"])
    assert np.isfinite(best) and best < 41.0  # the loss at the start
    np.testing.assert_array_equal(position.numpy(), state["position"].numpy())


def test_step_rule_keeps_a_non_finite_start_in_place():
    state = stepwise.initial_state(2, 3, tf.float32)
    position = tf.constant([1.0, 2.0])
    state, next_position = stepwise.step(state, position, np.nan, tf.constant([np.nan, 0.0]), 0.0, 5)
    np.testing.assert_array_equal(next_position.numpy(), position.numpy())
    assert int(state["started"]) == 0


def test_apply_refuses_a_step_without_its_loss_and_changed_variables(mnist):
    x, y = mnist[0][:64], mnist[1][:64]
    model = small_cnn(seed=2)
    optimizer = keras_subset.LBFGS()
    model.compile(optimizer=optimizer, loss="sparse_categorical_crossentropy")
    model.fit(x, y, batch_size=64, epochs=1, verbose=0)
    gradients = [tf.zeros_like(v) for v in model.trainable_variables]
    before = model.get_weights()
    with pytest.raises(ValueError, match="scale_loss"):
        optimizer.apply(gradients, model.trainable_variables)
    model.layers[0].trainable = False
    optimizer.scale_loss(tf.constant(1.0))
    with pytest.raises(ValueError, match="differ from those LBFGS was built with"):
        optimizer.apply(gradients[2:], model.trainable_variables)
    for a, b in zip(before, model.get_weights()):
        np.testing.assert_array_equal(a, b)
