"""The compiled L-BFGS loop with the initial-step-first line search (keras_subset/lbfgs_loop.py), without Keras."""

import numpy as np
import pytest
import tensorflow as tf

from keras_subset import lbfgs_loop


def _rosenbrock(position):
    x, y = position[0], position[1]
    value = (1.0 - x) ** 2 + 100.0 * (y - x**2) ** 2
    gradient = tf.stack([-2.0 * (1.0 - x) - 400.0 * x * (y - x**2), 200.0 * (y - x**2)])
    return value, gradient


def _quadratic(scales):
    scales = tf.constant(scales, tf.float64)

    def value_and_gradient(position):
        return 0.5 * tf.reduce_sum(scales * (position - 1.0) ** 2), scales * (position - 1.0)

    return value_and_gradient


def test_rosenbrock_converges_with_the_fallback_line_search():
    start = tf.constant([-1.2, 1.0], tf.float64)
    state = tf.function(lambda: lbfgs_loop.minimize(_rosenbrock, start, tolerance=1e-9, max_iterations=200))()
    np.testing.assert_allclose(state.position.numpy(), [1.0, 1.0], atol=1e-7)
    assert bool(state.converged) and not bool(state.failed)
    iterations, evaluations = int(state.num_iterations), int(state.num_objective_evaluations)
    accepted = int(state.num_initial_steps_accepted)
    # The unit step fails the Wolfe conditions on Rosenbrock's curved valley now and then:
    # those iterations went to the extrapolated trial or to TFP's Hager-Zhang search...
    assert accepted < iterations
    # ...and most took the initial step at the cost of one evaluation (TFP's own loop: about 3).
    assert accepted > 0.6 * iterations and evaluations < 1.6 * iterations, (iterations, evaluations, accepted)


def test_unit_steps_are_accepted_on_a_quadratic():
    # An ill-conditioned quadratic: after the first iteration, L-BFGS steps of length 1 are good.
    scales = np.logspace(0, 3, 30)
    state = lbfgs_loop.minimize(_quadratic(scales), tf.zeros([30], tf.float64), tolerance=1e-8, max_iterations=500)
    np.testing.assert_allclose(state.position.numpy(), np.ones(30), atol=1e-7)
    iterations, evaluations = int(state.num_iterations), int(state.num_objective_evaluations)
    # The first evaluation (at the start) counts, as in SciPy.
    assert evaluations <= 1.15 * iterations + 1, (iterations, evaluations)


@pytest.mark.fast
def test_compiled_loop_equals_eager_loop():
    # TensorFlow 2.21 once returned empty tensors from this loop in a tf.function (branch order of a
    # tf.cond): the compiled result must be the eager one.
    start = tf.constant([-1.2, 1.0], tf.float64)
    eager = lbfgs_loop.minimize(_rosenbrock, start, max_iterations=15)
    compiled = tf.function(lambda: lbfgs_loop.minimize(_rosenbrock, start, max_iterations=15))()
    for field in lbfgs_loop.LoopState._fields:
        np.testing.assert_allclose(getattr(compiled, field).numpy(), getattr(eager, field).numpy(), rtol=1e-12)
    assert int(compiled.num_iterations) == 15


def test_resuming_equals_one_run():
    start = tf.constant([-1.2, 1.0], tf.float64)
    whole = lbfgs_loop.minimize(_rosenbrock, start, max_iterations=20)
    half = lbfgs_loop.minimize(_rosenbrock, start, max_iterations=10)
    resumed = lbfgs_loop.minimize(_rosenbrock, previous_state=half, max_iterations=20)
    np.testing.assert_array_equal(resumed.position.numpy(), whole.position.numpy())
    assert int(resumed.num_objective_evaluations) == int(whole.num_objective_evaluations)


def test_evaluation_budget_stops_the_loop():
    start = tf.constant([-1.2, 1.0], tf.float64)
    state = lbfgs_loop.minimize(_rosenbrock, start, max_iterations=1000, max_evaluations=25)
    evaluations = int(state.num_objective_evaluations)
    # No iteration starts once 25 evaluations are spent; the last line search was limited to what
    # remained as its iteration count, so it may overrun by the few evaluations of that iteration.
    assert 25 <= evaluations <= 28, evaluations
    assert not bool(state.converged) and not bool(state.failed) and int(state.num_iterations) < 25


def test_non_finite_trial_steps_are_shrunk_and_never_accepted():
    # A bowl centred at 3 whose loss is NaN beyond 2: long steps land in the NaN region.
    def loss(position):
        inside = tf.reduce_all(position < 2.0)
        value = tf.reduce_sum((position - 3.0) ** 2)
        return tf.where(inside, value, np.nan), tf.where(inside, 2.0 * (position - 3.0), np.nan)

    state = lbfgs_loop.minimize(loss, tf.zeros([3], tf.float64), max_iterations=50)
    assert np.all(state.position.numpy() < 2.0) and np.isfinite(float(state.objective_value))
    assert float(state.objective_value) < 27.0  # it moved towards the boundary from f(0) = 27
    if bool(state.failed):
        assert int(state.failure) in (lbfgs_loop.NON_FINITE, lbfgs_loop.NO_DECREASE, lbfgs_loop.SEARCH_FAILED)


def test_a_nan_everywhere_but_the_start_fails_as_non_finite():
    def loss(position):
        at_start = tf.reduce_all(tf.equal(position, 0.0))
        return (
            tf.where(at_start, tf.constant(1.0, tf.float64), np.nan),
            tf.where(at_start, tf.ones_like(position), np.nan * position),
        )

    state = lbfgs_loop.minimize(loss, tf.zeros([2], tf.float64), max_iterations=5)
    assert bool(state.failed) and int(state.failure) == lbfgs_loop.NON_FINITE
    np.testing.assert_array_equal(state.position.numpy(), [0.0, 0.0])
    # The trial step and its tenfold shrinks were all evaluated and counted.
    assert int(state.num_objective_evaluations) == 1 + 1 + lbfgs_loop.MAX_SHRINKS


@pytest.mark.fast
def test_wolfe_acceptance():
    f0, slope = 1.0, -1.0
    # Enough decrease and a flattened slope: accepted.
    assert bool(lbfgs_loop.accepts(f0, slope, 1.0, 0.5, -0.1))
    # Too little decrease: refused; still steep (too short): refused.
    assert not bool(lbfgs_loop.accepts(f0, slope, 1.0, 1.001, -0.1))
    assert not bool(lbfgs_loop.accepts(f0, slope, 1.0, 0.5, -0.95))
    # Near the minimum, Hager and Zhang's approximate conditions accept a step lost in round-off.
    assert bool(lbfgs_loop.accepts(1.0, -1e-9, 1.0, 1.0 + 1e-8, -0.5e-9))


@pytest.mark.fast
def test_curvature_pairs_need_positive_curvature():
    s = tf.constant([1.0, 0.0], tf.float64)
    assert bool(lbfgs_loop.keep_pair(s, tf.constant([1.0, 0.0], tf.float64)))
    assert not bool(lbfgs_loop.keep_pair(s, tf.constant([-1.0, 0.0], tf.float64)))
    assert not bool(lbfgs_loop.keep_pair(s, tf.constant([0.0, 1.0], tf.float64)))
    history = tf.zeros([3, 2], tf.float64)
    s_history, y_history, size = lbfgs_loop.push_pair(history, history, tf.constant(0), s, 2 * s, True)
    np.testing.assert_array_equal(s_history.numpy()[-1], s.numpy())
    assert int(size) == 1
    # The direction of the two-loop recursion with one pair on a quadratic of curvature 2 is -g / 2.
    direction = lbfgs_loop.search_direction(tf.constant([4.0, 0.0], tf.float64), s_history, y_history, size)
    np.testing.assert_allclose(direction.numpy(), [-2.0, 0.0])


def _two_loop(g, pairs):
    """Nocedal and Wright's Algorithm 7.4 in NumPy, H0 = (s.y / y.y) I of the newest pair."""
    q, alphas = g.copy(), []
    for s, y in reversed(pairs):
        alphas.append(s @ q / (s @ y))
        q -= alphas[-1] * y
    s, y = pairs[-1] if pairs else (None, None)
    r = q * ((s @ y) / (y @ y) if pairs else 1.0)
    for (s, y), alpha in zip(pairs, reversed(alphas)):
        r += s * (alpha - y @ r / (s @ y))
    return -r


@pytest.mark.fast
@pytest.mark.parametrize("kept", [0, 1, 4, 6])
def test_compact_direction_equals_the_two_loop_recursion(kept):
    rng = np.random.default_rng(kept)
    n, m = 50, 6
    s_rows = rng.normal(size=(m, n))
    y_rows = 1.5 * s_rows + 0.3 * rng.normal(size=(m, n))  # s.y > 0
    # Rows before the kept ones hold stale pairs (as after a restart): they must not count.
    g = rng.normal(size=n)
    pairs = list(zip(s_rows[m - kept :], y_rows[m - kept :]))
    direction = lbfgs_loop.search_direction(
        tf.constant(g), tf.constant(s_rows), tf.constant(y_rows), tf.constant(kept)
    )
    np.testing.assert_allclose(direction.numpy(), _two_loop(g, pairs), rtol=1e-9, atol=1e-12)


@pytest.mark.fast
def test_history_update_keeps_order_and_skips_rejected_pairs():
    history = tf.zeros([3, 2], tf.float64)
    s_history, y_history, size = history, history, tf.constant(0)
    for k in range(1, 5):
        s = tf.constant([float(k), 0.0], tf.float64)
        s_history, y_history, size = lbfgs_loop.push_pair(s_history, y_history, size, s, 2 * s, tf.constant(True))
    s_kept, _, size_kept = lbfgs_loop.push_pair(s_history, y_history, size, -s, s, tf.constant(False))
    np.testing.assert_array_equal(s_history.numpy()[:, 0], [2.0, 3.0, 4.0])  # oldest dropped, newest last
    np.testing.assert_array_equal(s_kept.numpy(), s_history.numpy())
    assert int(size) == int(size_kept) == 3


@pytest.mark.fast
@pytest.mark.parametrize("bad", [{"initial_position": None}, {"initial_position": tf.zeros([2]), "previous_state": 1}])
def test_exactly_one_start(bad):
    with pytest.raises(ValueError, match="exactly one"):
        lbfgs_loop.minimize(_rosenbrock, **bad)
