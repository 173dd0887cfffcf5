"""L-BFGS in one compiled loop that takes a good initial step at the cost of one evaluation.

TFP's `lbfgs_minimize` hands every iteration to its Hager-Zhang line search, which
starts with nothing converged and always brackets: a unit step that already meets
the Wolfe conditions is still expanded and refined, about 2.9 objective
evaluations per iteration on this project's problems where SciPy's L-BFGS-B
spends 1.08. Here each iteration

1. computes the L-BFGS direction (two-loop recursion over the kept pairs;
   steepest descent without pairs or when the direction does not descend);
2. evaluates the initial step (length 1: the L-BFGS step, or, in the scaled
   coordinates `keras_subset.minimize` works in, SciPy's first step, length 1
   along -g); a non-finite trial is shrunk tenfold until finite;
3. accepts it when it meets the strong Wolfe conditions (sufficient decrease
   1e-4, curvature 0.9, as SciPy's L-BFGS-B);
4. otherwise hands both evaluated points to TFP's public
   `tfp.optimizer.linesearch.hager_zhang` (`value_at_zero`,
   `value_at_initial_step`), so no point is evaluated twice.

A curvature pair is kept only when `s.y` is clearly positive. The state has the
fields of TFP's `LBfgsOptimizerResults` that `keras_subset.minimize` reads, so
both routes run, resume and restart alike. Everything is TensorFlow: the whole
loop runs inside one `tf.function` (no host round trip per iteration).
"""

import collections

import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp

# Weak Wolfe constants of the initial-step test (sufficient decrease and curvature).
SUFFICIENT_DECREASE = 1e-4
CURVATURE = 0.9
# Hager and Zhang's approximate Wolfe conditions (TFP's defaults: epsilon and delta).
APPROXIMATE_WOLFE_THRESHOLD = 1e-6
APPROXIMATE_DECREASE = 0.1
# Values of `LoopState.failure`.
NO_DECREASE = 1  # the line search ran out of iterations without a Wolfe point
NON_FINITE = 2  # every trial step, shrunk tenfold MAX_SHRINKS times, had a NaN or infinite objective
SEARCH_FAILED = 3  # TFP's Hager-Zhang search reported `failed`: a non-finite value met, or its
# bracket exhausted or collapsed in round-off; the state cannot tell which (see minimize.py)

# The second trial of an iteration: a too-short step is extrapolated by 2 to MAX_EXTRAPOLATION,
# a too-long one interpolated to MIN_INTERPOLATION to MAX_INTERPOLATION times its length.
MAX_EXTRAPOLATION = 10.0
MIN_INTERPOLATION = 0.05
CONCAVE_EXTRAPOLATION = 4.0
MAX_INTERPOLATION = 0.9

# Whether a too-short first step is kept without a line search (see `_iteration`); read when the
# loop is traced. `benchmarks/first_step.py --short_steps=search` measures the loop without it.
KEEP_SHORT_STEPS = True

# A non-finite trial step is shrunk by this factor, at most this many times.
SHRINK = 0.1
MAX_SHRINKS = 10

LoopState = collections.namedtuple(
    "LoopState",
    [
        "converged",  # a convergence criterion was met
        "failed",  # the line search failed or the objective stopped being finite
        "failure",  # why it failed: 0 it did not, NO_DECREASE, NON_FINITE or SEARCH_FAILED
        "num_iterations",
        "num_objective_evaluations",
        "num_initial_steps_accepted",  # iterations that took the initial step without a line search
        "position",
        "objective_value",
        "objective_gradient",
        "position_deltas",  # s pairs, newest last
        "gradient_deltas",  # y pairs, newest last
        "history_size",  # valid pairs at the end of the queues
    ],
)

# What TFP's line search takes and returns: a point along the direction.
_LinePoint = collections.namedtuple("_LinePoint", ["x", "f", "df", "full_gradient"])


def search_direction(gradient, s_history, y_history, history_size):
    """-H g, H the L-BFGS inverse-Hessian estimate from the last pairs, in compact form.

    The same direction as the two-loop recursion (Nocedal and Wright, Algorithm
    7.4) with H0 = gamma I, gamma = s.y / y.y of the newest pair, computed from
    Byrd, Nocedal and Schnabel's compact representation (1994, Theorem 2.2):

        H = gamma I + [S  gamma Y] [[R^-T (D + gamma Y^T Y) R^-1, -R^-T], [-R^-1, 0]] [S^T; gamma Y^T]

    with R the upper triangle of S^T Y and D its diagonal. The work over the
    n weights is five matrix products with the [m, n] histories instead of the
    recursion's 4m vector operations; on the engine MLP (n = 101,770, m = 10)
    that took the direction from about 9 to 2.4 ms on a 2-core CPU
    (`python3 -m benchmarks.iteration_profile`; `docs/results/engine/iteration_profile.json`).

    Args:
        gradient: The gradient, a vector.
        s_history, y_history: `[m, n]` position and gradient differences, newest
            last; only the last `history_size` rows are used.
        history_size: A scalar int tensor.

    Returns:
        The direction, a vector like `gradient`.
    """
    m = s_history.shape[0]
    dtype = gradient.dtype
    valid = tf.cast(tf.range(m) >= m - history_size, dtype)
    both = valid[:, None] * valid[None, :]
    sy = tf.matmul(s_history, y_history, transpose_b=True) * both  # [i, j] = s_i . y_j
    yy = tf.matmul(y_history, y_history, transpose_b=True) * both
    d = tf.linalg.diag_part(sy)
    # The rows of pairs not (or no longer) kept are zero in every product: identity there.
    r = tf.linalg.band_part(sy, 0, -1) + tf.linalg.diag(1.0 - valid)
    a = tf.linalg.matvec(s_history, gradient) * valid
    b = tf.linalg.matvec(y_history, gradient) * valid
    newest = yy[-1, -1]
    one = tf.ones_like(newest)
    gamma = tf.where(history_size > 0, d[-1] / tf.where(history_size > 0, newest, one), one)
    c = tf.linalg.triangular_solve(r, a[:, None], lower=False)[:, 0]
    inner = d * c + gamma * tf.linalg.matvec(yy, c) - gamma * b
    top = tf.linalg.triangular_solve(r, inner[:, None], lower=False, adjoint=True)[:, 0]
    combined = tf.linalg.matvec(s_history, top, transpose_a=True) - gamma * tf.linalg.matvec(
        y_history, c, transpose_a=True
    )
    return -(gamma * gradient + combined)


def accepts(f0, slope, step, value, derivative):
    """Whether a trial step meets the weak Wolfe conditions, or Hager and Zhang's approximate ones.

    Weak Wolfe: sufficient decrease `f(t) <= f(0) + 1e-4 t f'(0)` and curvature
    `f'(t) >= 0.9 f'(0)` (what the fallback line search accepts too). Near a
    minimum the decrease is lost in round-off, so, as TFP's Hager-Zhang search
    does, a step is also accepted when `f(t) <= f(0) + 1e-6 |f(0)|` and
    `0.9 f'(0) <= f'(t) <= (2 * 0.1 - 1) f'(0)`.
    """
    curvature = derivative >= CURVATURE * slope
    wolfe = (value <= f0 + SUFFICIENT_DECREASE * step * slope) & curvature
    approximate = (
        (value <= f0 + APPROXIMATE_WOLFE_THRESHOLD * tf.abs(f0))
        & curvature
        & (derivative <= (2.0 * APPROXIMATE_DECREASE - 1.0) * slope)
    )
    return wolfe | approximate


def next_step(f0, slope, step, value, derivative, decreased):
    """The step length of a second trial after `step` failed the Wolfe conditions.

    Too short (`decreased`: enough decrease, but the loss still falls steeply):
    where the secant of the derivative through f'(0) and f'(step) crosses zero,
    kept within [2, MAX_EXTRAPOLATION] * step, or CONCAVE_EXTRAPOLATION * step
    where the derivative steepens. It uses derivatives only: a short step
    changes the loss by little, and the difference of two nearby float32 losses
    carries mostly round-off (a cubic through them made runs on one and on two
    devices part after one iteration).

    Too long (not enough decrease): the minimiser of the cubic through f(0),
    f'(0), f(step), f'(step) (Nocedal and Wright, eq. 3.59), or of the quadratic
    through f(0), f'(0), f(step) when the cubic has none, kept within
    [MIN_INTERPOLATION, MAX_INTERPOLATION] * step.
    """
    # Where the derivative steepens (a concave stretch) the secant has no zero: a fixed expansion.
    secant = tf.where(
        derivative > slope, step * slope / tf.where(derivative > slope, slope - derivative, -tf.ones_like(slope)),
        step * CONCAVE_EXTRAPOLATION,
    )
    d1 = slope + derivative - 3.0 * (f0 - value) / (0.0 - step)
    radicand = d1 * d1 - slope * derivative
    d2 = tf.sqrt(tf.maximum(radicand, 0.0))
    denominator = derivative - slope + 2.0 * d2
    safe = tf.where(tf.equal(denominator, 0.0), tf.ones_like(denominator), denominator)
    cubic = step - step * (derivative + d2 - d1) / safe
    curvature = value - f0 - slope * step
    quadratic = -slope * step * step / (2.0 * tf.where(curvature > 0, curvature, tf.ones_like(curvature)))
    cubic_ok = (radicand >= 0) & (denominator != 0) & tf.math.is_finite(cubic)
    shorter = tf.where(cubic_ok, cubic, quadratic)
    shorter = tf.where(tf.math.is_finite(shorter), shorter, 0.5 * step)
    return tf.where(
        decreased,
        tf.clip_by_value(secant, 2.0 * step, MAX_EXTRAPOLATION * step),
        tf.clip_by_value(shorter, MIN_INTERPOLATION * step, MAX_INTERPOLATION * step),
    )


def _where(condition, a, b):
    """`a` where `condition` holds, else `b`, field by field of two `_LinePoint`s."""
    return _LinePoint(*(tf.where(condition, u, v) for u, v in zip(a, b)))


def keep_pair(s, y):
    """Whether the pair `(s, y)` is fit for the inverse-Hessian estimate: s.y clearly positive."""
    sy = tf.tensordot(s, y, 1)
    tiny = float(np.finfo(s.dtype.as_numpy_dtype).tiny)
    # Positive curvature, and not so small that 1 / s.y overflows.
    return sy > tf.maximum(1e-10 * tf.tensordot(y, y, 1), tiny)


def push_pair(s_history, y_history, history_size, s, y, keep):
    """Returns `(s_history, y_history, history_size)` with `(s, y)` appended (oldest dropped) when `keep`."""
    m = s_history.shape[0]
    # A branch, not `tf.where`: a where over the [m, n] histories doubled the cost of an update.
    s_history, y_history = tf.cond(
        keep,
        lambda: (tf.concat([s_history[1:], s[None]], 0), tf.concat([y_history[1:], y[None]], 0)),
        lambda: (s_history, y_history),
    )
    return s_history, y_history, tf.where(keep, tf.minimum(history_size + 1, m), history_size)


def initial_state(value_and_gradient, position, num_correction_pairs, tolerance):
    """Evaluates the objective at `position` and returns the state before the first iteration."""
    value, gradient = value_and_gradient(position)
    return state_at(position, value, gradient, num_correction_pairs, tolerance)._replace(
        num_objective_evaluations=tf.constant(1)
    )


def state_at(position, value, gradient, num_correction_pairs, tolerance):
    """The state before the first iteration from a point already evaluated (no evaluation counted)."""
    value = tf.convert_to_tensor(value, position.dtype)
    history = tf.zeros([num_correction_pairs, position.shape[0]], position.dtype)
    converged = tf.math.is_finite(value) & (tf.reduce_max(tf.abs(gradient)) <= tolerance)
    return LoopState(
        converged=converged,
        failed=tf.constant(False),
        failure=tf.constant(0),
        num_iterations=tf.constant(0),
        num_objective_evaluations=tf.constant(0),
        num_initial_steps_accepted=tf.constant(0),
        position=position,
        objective_value=value,
        objective_gradient=gradient,
        position_deltas=history,
        gradient_deltas=history,
        history_size=tf.constant(0),
    )


def minimize(
    value_and_gradient,
    initial_position=None,
    previous_state=None,
    *,
    num_correction_pairs=10,
    tolerance=1e-8,
    x_tolerance=0.0,
    f_absolute_tolerance=0.0,
    max_iterations=100,
    max_evaluations=None,
    max_line_search_iterations=50,
):
    """Runs L-BFGS with the initial-step-first line search; graph-compatible.

    Args:
        value_and_gradient: `position -> (value, gradient)`.
        initial_position: The starting point (a vector), or `None` with
            `previous_state`.
        previous_state: A `LoopState` to resume (curvature pairs kept).
        num_correction_pairs: Pairs kept for the inverse-Hessian estimate.
        tolerance: Converged when the largest absolute gradient entry is at most this.
        x_tolerance: Converged when a step moves no entry by more than this.
        f_absolute_tolerance: Converged when a step changes the value by at most this.
        max_iterations: Total iterations (those of `previous_state` included);
            a scalar tensor, so new limits reuse the traced graph.
        max_evaluations: Total objective evaluations after which no new
            iteration starts (the line search of the last one is limited to the
            remaining evaluations as its iteration count), or `None`.
        max_line_search_iterations: Iteration limit of the fallback line search.

    Returns:
        The final `LoopState`.
    """
    if (initial_position is None) == (previous_state is None):
        raise ValueError("Give exactly one of `initial_position` or `previous_state`.")
    if previous_state is None:
        state = initial_state(value_and_gradient, initial_position, num_correction_pairs, tolerance)
    else:
        state = previous_state
    dtype = state.position.dtype
    tolerance = tf.cast(tolerance, dtype)
    x_tolerance = tf.cast(x_tolerance, dtype)
    f_absolute_tolerance = tf.cast(f_absolute_tolerance, dtype)
    max_iterations = tf.convert_to_tensor(max_iterations, tf.int32)
    budget = tf.constant(np.iinfo(np.int32).max, tf.int32) if max_evaluations is None else tf.cast(max_evaluations, tf.int32)

    def cond(state):
        running = ~state.converged & ~state.failed
        return running & (state.num_iterations < max_iterations) & (state.num_objective_evaluations < budget)

    def body(state):
        return [
            _iteration(
                value_and_gradient, state, tolerance, x_tolerance, f_absolute_tolerance,
                max_line_search_iterations, budget,
            )
        ]

    return tf.while_loop(cond, body, [state], parallel_iterations=1)[0]


def _iteration(value_and_gradient, state, tolerance, x_tolerance, f_absolute_tolerance, max_ls, budget):
    """One L-BFGS iteration: direction, initial step, Wolfe test, fallback line search."""
    dtype = state.position.dtype
    x0, f0, g0 = state.position, state.objective_value, state.objective_gradient
    direction = search_direction(g0, state.position_deltas, state.gradient_deltas, state.history_size)
    slope = tf.tensordot(g0, direction, 1)
    descends = (slope < 0) & tf.reduce_all(tf.math.is_finite(direction))
    direction = tf.where(descends, direction, -g0)
    history_size = tf.where(descends, state.history_size, 0)
    slope = tf.tensordot(g0, direction, 1)

    def line(t):
        value, gradient = value_and_gradient(x0 + t * direction)
        return _LinePoint(x=t, f=value, df=tf.tensordot(gradient, direction, 1), full_gradient=gradient)

    def finite(point):
        return tf.math.is_finite(point.f) & tf.math.is_finite(point.df)

    # The initial step, shrunk while the objective is not finite there.
    trial = line(tf.ones([], dtype))

    def shrink_cond(point, shrinks):
        return ~finite(point) & (shrinks < MAX_SHRINKS)

    def shrink_body(point, shrinks):
        return line(point.x * SHRINK), shrinks + 1

    trial, shrinks = tf.while_loop(shrink_cond, shrink_body, [trial, tf.constant(0)], parallel_iterations=1)
    evaluations = 1 + shrinks
    trial_finite = finite(trial)
    wolfe = trial_finite & accepts(f0, slope, trial.x, trial.f, trial.df)
    decrease = trial_finite & (trial.f <= f0 + SUFFICIENT_DECREASE * trial.x * slope)

    def has_budget(used):
        return state.num_objective_evaluations + used < budget

    # One more trial before a full line search (see `next_step`): beyond t when the step was too
    # short (the loss still falls steeply there), inside (0, t) when it was too long.
    second = trial_finite & ~wolfe & has_budget(evaluations)

    def second_trial():
        return line(next_step(f0, slope, trial.x, trial.f, trial.df, decrease)), tf.constant(1)

    farther, extra = tf.cond(second, second_trial, lambda: (trial, tf.constant(0)))
    evaluations = evaluations + extra
    farther_wolfe = second & finite(farther) & accepts(f0, slope, farther.x, farther.f, farther.df)
    # The line search starts from the second trial when it is finite.
    start = _where(second & finite(farther), farther, trial)

    def fallback():
        at_zero = _LinePoint(x=tf.zeros([], dtype), f=f0, df=slope, full_gradient=g0)
        remaining = budget - state.num_objective_evaluations - evaluations
        result = tfp.optimizer.linesearch.hager_zhang(
            line,
            value_at_zero=at_zero,
            value_at_initial_step=start,
            max_iterations=tf.maximum(tf.minimum(max_ls, remaining), 1),
        )
        failure = tf.where(result.failed, SEARCH_FAILED, tf.where(result.converged, 0, NO_DECREASE))
        return result.converged & ~result.failed, result.left, result.func_evals, failure

    def no_search():
        return tf.constant(False), start, tf.constant(0), tf.constant(0)

    # A too-short first step (enough decrease, the loss still falling steeply) is not searched
    # further: of it and the longer second trial, the lower one with enough decrease is kept. On
    # the engine's CNNs a search there spent 5 more evaluations, mostly on steps far too long.
    # (Where a trial was not finite the search decides, as before: it reports the failure.)
    # A "decrease" lost in float32 round-off (f equal to f(0)) is no decrease here.
    short_kept = KEEP_SHORT_STEPS & second & decrease & (trial.f < f0) & ~farther_wolfe & finite(farther) & (shrinks == 0)
    farther_decrease = farther.f <= f0 + SUFFICIENT_DECREASE * farther.x * slope
    short_point = _where(farther_decrease & (farther.f < trial.f), farther, trial)
    need_search = second & ~farther_wolfe & ~short_kept & has_budget(evaluations)
    # The search must be the false branch: with it as the true branch, TensorFlow 2.21 returned
    # empty float32 tensors for the whole loop state from a `tf.function` (eager was right).
    searched, searched_point, search_evaluations, failure = tf.cond(~need_search, no_search, fallback)
    point = _where(
        wolfe, trial,
        _where(farther_wolfe, farther, _where(short_kept, short_point, _where(need_search, searched_point, trial))),
    )
    # With no evaluation left for a line search, a trial that lowered the loss is kept.
    out_of_budget = trial_finite & ~wolfe & ~farther_wolfe & ~need_search
    found = wolfe | farther_wolfe | short_kept | searched | (out_of_budget & decrease)
    failure = tf.where(trial_finite, tf.where(need_search, failure, NO_DECREASE), NON_FINITE)
    # A search that ends where it started (step 0) found nothing.
    found = found & finite(point) & (point.x > 0)
    evaluations = evaluations + search_evaluations

    step = point.x * direction
    new_position = x0 + step
    new_gradient = point.full_gradient
    converged = found & (
        (tf.reduce_max(tf.abs(new_gradient)) <= tolerance)
        | (tf.reduce_max(tf.abs(step)) <= x_tolerance)
        | (tf.abs(point.f - f0) <= f_absolute_tolerance)
    )
    s, y = step, new_gradient - g0
    keep = found & ~converged & keep_pair(s, y)
    s_history, y_history, history_size = push_pair(
        state.position_deltas, state.gradient_deltas, history_size, s, y, keep
    )
    failure = tf.where(found, 0, tf.where(failure > 0, failure, NO_DECREASE))
    return LoopState(
        converged=converged,
        failed=~found,
        failure=failure,
        num_iterations=state.num_iterations + 1,
        num_objective_evaluations=state.num_objective_evaluations + evaluations,
        num_initial_steps_accepted=state.num_initial_steps_accepted + tf.cast(wolfe, tf.int32),
        position=tf.where(found, new_position, x0),
        objective_value=tf.where(found, point.f, f0),
        objective_gradient=tf.where(found, new_gradient, g0),
        position_deltas=s_history,
        gradient_deltas=y_history,
        history_size=history_size,
    )
