"""L-BFGS one objective evaluation at a time: the step rule behind `model.compile(optimizer=LBFGS())`.

A Keras optimizer sees one loss and gradient per training step and cannot call
the loss again, so the line search cannot be a loop inside one step as in TFP's
`lbfgs_minimize`. Here it is spread over the steps: each step hands in the loss
and gradient at the weights the previous step set (a trial point on the current
search direction), and `step` either accepts that point (it satisfies the weak
Wolfe conditions) and moves on to the next direction, or picks the next trial
step length by interpolation, bisection or expansion. Nothing but the model's
weights moves between steps.

All functions are pure TensorFlow on flat vectors and a dict of state tensors,
so the rule is testable without Keras and runs inside `fit`'s compiled step.
"""

import tensorflow as tf

from keras_subset import lbfgs_loop

# The evaluation budget when there is none.
_NO_BUDGET = 2**31 - 1

# Sufficient decrease (Armijo) and curvature constants of the weak Wolfe conditions.
ARMIJO = 1e-4
CURVATURE = 0.9


def initial_state(num_parameters, num_correction_pairs, dtype):
    """Returns the state before the first evaluation, as a dict of tensors."""
    zeros = tf.zeros([num_parameters], dtype)
    history = tf.zeros([num_correction_pairs, num_parameters], dtype)
    scalar = tf.zeros([], dtype)
    return {
        "started": tf.constant(0, tf.int32),  # 0: the next evaluation is at a fresh point
        "position": zeros,  # the last accepted point (the best so far)
        "value": tf.constant(float("nan"), dtype),  # its loss; NaN until a point is accepted
        "gradient": zeros,
        "direction": zeros,
        "slope": scalar,  # gradient . direction at `position`
        "step": scalar,  # the step length of the pending trial point
        "low": scalar,  # the line search's bracket of step lengths
        "high": tf.constant(float("inf"), dtype),
        "s_history": history,  # position differences, newest last
        "y_history": history,  # gradient differences, newest last
        "history_size": tf.constant(0, tf.int32),
        "line_search_steps": tf.constant(0, tf.int32),
        "iterations": tf.constant(0, tf.int32),  # accepted steps
        "evaluations": tf.constant(0, tf.int32),  # steps that evaluated a new point
        "restarts": tf.constant(0, tf.int32),
        "converged": tf.constant(0, tf.int32),
        "stalled": tf.constant(0, tf.int32),  # the line search failed with no history to drop
    }


def _first_step_length(gradient, history_size):
    # Without curvature information, the first trial step has length 1 along -g (SciPy's rule,
    # as `keras_subset.minimize.first_step_scale`).
    norm = tf.norm(gradient)
    one = tf.ones_like(norm)
    return tf.where(history_size > 0, one, one / tf.maximum(norm, 1e-30))


def step(state, position, value, gradient, tolerance, max_line_search_iterations, max_evaluations=None):
    """Takes the loss and gradient at `position` (the pending trial point) and picks the next one.

    Args:
        state: The dict of `initial_state` or of the previous call.
        position, value, gradient: The flat weights the model holds, the loss
            there and its gradient.
        tolerance: Convergence when the largest absolute gradient entry of an
            accepted point is at most this.
        max_line_search_iterations: Trial points per search direction before
            the history is dropped and the search restarts along -gradient.
        max_evaluations: A budget of evaluations over the whole life of the
            state (`evaluations`), or `None`. Once it is spent the rule holds
            the best accepted point and counts nothing more.

    Returns:
        `(new_state, next_position)`: the weights to evaluate next. They equal
        the best accepted point once converged, stalled or out of budget.
    """
    s = dict(state)
    dtype = position.dtype
    value = tf.cast(value, dtype)
    finite = tf.math.is_finite(value) & tf.reduce_all(tf.math.is_finite(gradient))
    started = state["started"] > 0
    budget = _NO_BUDGET if max_evaluations is None else max_evaluations
    budget_spent = state["evaluations"] >= budget
    done = (started & ((state["converged"] > 0) | (state["stalled"] > 0))) | budget_spent

    # The trial point's verdict under the weak Wolfe conditions.
    step_length, low, high = state["step"], state["low"], state["high"]
    armijo = finite & (value <= state["value"] + ARMIJO * step_length * state["slope"])
    curvature = tf.tensordot(gradient, state["direction"], 1) >= CURVATURE * state["slope"]
    accept = started & ~done & armijo & curvature
    fresh = ~started & finite & ~budget_spent  # the first evaluation, or the first after `finalize`
    new_point = accept | fresh

    # A new accepted point: keep the curvature pair, then the next direction.
    s_pair, y_pair = position - state["position"], gradient - state["gradient"]
    keep_pair = accept & lbfgs_loop.keep_pair(s_pair, y_pair)
    s_history, y_history, history_size = lbfgs_loop.push_pair(
        state["s_history"], state["y_history"], state["history_size"], s_pair, y_pair, keep_pair
    )

    # The line search goes on: a shorter step after too much loss, a longer one after too little slope.
    rejected = started & ~done & ~accept
    too_long = rejected & ~armijo
    # Minimiser of the quadratic through f(0), f'(0) and f(step), kept inside [0.1, 0.5] * step.
    curvature_term = value - state["value"] - step_length * state["slope"]
    positive = curvature_term > 0
    quadratic = -state["slope"] * step_length**2 / (2.0 * tf.where(positive, curvature_term, tf.ones_like(value)))
    shorter = tf.where(
        finite & (low == 0) & positive,
        tf.clip_by_value(quadratic, 0.1 * step_length, 0.5 * step_length),
        0.5 * (low + step_length),
    )
    longer = tf.where(tf.math.is_inf(high), 2.0 * step_length, 0.5 * (step_length + high))
    line_search_steps = tf.where(rejected, state["line_search_steps"] + 1, 0)
    failed = rejected & (line_search_steps >= max_line_search_iterations)

    # After a failed search: drop the history and restart along -gradient, once per accepted point.
    restart = failed & (state["history_size"] > 0)
    stalled = failed & (state["history_size"] == 0)
    history_size = tf.where(restart, 0, history_size)

    new_position = tf.where(new_point, position, state["position"])
    new_value = tf.where(new_point, value, state["value"])
    new_gradient = tf.where(new_point, gradient, state["gradient"])
    direction = lbfgs_loop.search_direction(new_gradient, s_history, y_history, history_size)
    slope = tf.tensordot(new_gradient, direction, 1)
    not_descent = ~(slope < 0) | ~tf.reduce_all(tf.math.is_finite(direction))
    direction = tf.where(not_descent, -new_gradient, direction)
    history_size = tf.where(new_point & not_descent, 0, history_size)
    slope = tf.tensordot(new_gradient, direction, 1)
    converged = new_point & (tf.reduce_max(tf.abs(new_gradient)) <= tolerance)

    reset_search = new_point | restart
    s.update(
        started=tf.where(new_point, 1, state["started"]),
        position=new_position,
        value=new_value,
        gradient=new_gradient,
        direction=tf.where(reset_search, direction, state["direction"]),
        slope=tf.where(reset_search, slope, state["slope"]),
        step=tf.where(
            reset_search,
            _first_step_length(new_gradient, history_size),
            tf.where(too_long, shorter, tf.where(rejected, longer, step_length)),
        ),
        low=tf.where(reset_search, tf.zeros_like(low), tf.where(rejected & ~too_long, step_length, low)),
        high=tf.where(
            reset_search, tf.constant(float("inf"), dtype), tf.where(too_long, step_length, high)
        ),
        s_history=s_history,
        y_history=y_history,
        history_size=history_size,
        line_search_steps=tf.where(reset_search, 0, line_search_steps),
        iterations=state["iterations"] + tf.cast(accept, tf.int32),
        evaluations=state["evaluations"] + tf.cast(~done, tf.int32),  # not counted once finished
        restarts=state["restarts"] + tf.cast(restart, tf.int32),
        converged=tf.where(converged, 1, tf.where(new_point, 0, state["converged"])),
        stalled=tf.where(stalled, 1, tf.where(fresh, 0, state["stalled"])),
    )
    finished = (s["converged"] > 0) | (s["stalled"] > 0) | ~(s["started"] > 0) | (s["evaluations"] >= budget)
    next_position = tf.where(finished, s["position"], s["position"] + s["step"] * s["direction"])
    # A point that was never finite (the first evaluation), or a fresh start with no budget left,
    # is left as it is.
    next_position = tf.where(~started & (~finite | budget_spent), position, next_position)
    return s, next_position
