"""The step rule of model.compile(optimizer=LBFGS()) (keras_subset/stepwise.py), without Keras."""

import numpy as np
import pytest
import tensorflow as tf

from keras_subset import stepwise

# Every test of this file is quick: all in the fast tier.
pytestmark = pytest.mark.fast


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


def test_step_rule_spends_exactly_its_evaluation_budget():
    state = stepwise.initial_state(2, 10, tf.float64)
    position = tf.constant([-1.2, 1.0], tf.float64)
    seen = []
    for _ in range(40):
        value, gradient = _rosenbrock(position)
        seen.append(position.numpy())
        state, position = stepwise.step(state, position, value, gradient, 1e-10, 20, max_evaluations=15)
    assert int(state["evaluations"]) == 15
    # From then on the rule holds the best accepted point: no new point is tried.
    np.testing.assert_array_equal(position.numpy(), state["position"].numpy())
    assert len({tuple(p) for p in seen[16:]}) == 1
    assert float(state["value"]) < 24.2
