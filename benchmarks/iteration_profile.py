"""Where the time of one L-BFGS iteration goes on the engine MLP, printed (not a test).

The engine's `overhead_ratio` on the MLP (P = 101,770 weights, one evaluation at K = 1,000 of
about 2 ms) read 1.8 to 3.5: the optimiser's own work per iteration was of the order of an
evaluation. This script times its parts side by side, in one process, each a median of
`--repeats` compiled calls (the engine's flag; interleaved), on the MLP's P with m = `--pairs` random curvature pairs:

- `evaluation`: one compiled full-batch value and gradient of the MLP at K = `--size`;
- `direction`: the L-BFGS direction, the library's (compact form) and the two-loop recursion it
  replaced (`two_loop_direction` below, the code as it was);
- `history_update`: appending one pair, the library's (a branch) and the former `tf.where`;
- `iteration_overhead`: the seconds per iteration of `lbfgs_loop.minimize` on a separable
  quadratic of P weights (an objective of a few vector operations, about 0.3 ms), minus the
  quadratic's own seconds times the evaluations per iteration: the loop's own work, with the
  library's direction and with the two-loop one.

The last line printed is a JSON object (kept in `docs/results/engine/iteration_profile.json`).

Run: `KERAS_SUBSET_DATA_DIR=data python3 -m benchmarks.iteration_profile`
"""

import json
import statistics
import time
from unittest import mock

import numpy as np
import tensorflow as tf
from absl import app
from absl import flags

from keras_subset import lbfgs_loop
from keras_subset.objective import Objective
from benchmarks import engine

FLAGS = flags.FLAGS


def two_loop_direction(gradient, s_history, y_history, history_size):
    """The two-loop recursion (Nocedal and Wright, Algorithm 7.4), as `lbfgs_loop` had it until 2026-12."""
    m = s_history.shape[0]
    valid = tf.range(m) >= m - history_size
    sy = tf.reduce_sum(s_history * y_history, axis=1)
    rho = tf.where(valid, 1.0 / tf.where(valid, sy, tf.ones_like(sy)), tf.zeros_like(sy))
    q = gradient
    alphas = [None] * m
    for i in reversed(range(m)):
        alphas[i] = rho[i] * tf.tensordot(s_history[i], q, 1)
        q = q - alphas[i] * y_history[i]
    yy = tf.tensordot(y_history[-1], y_history[-1], 1)
    one = tf.ones_like(yy)
    gamma = tf.where(history_size > 0, sy[-1] / tf.where(history_size > 0, yy, one), one)
    r = gamma * q
    for i in range(m):
        beta = rho[i] * tf.tensordot(y_history[i], r, 1)
        r = r + s_history[i] * (alphas[i] - beta)
    return -r


def where_push(s_history, y_history, history_size, s, y, keep):
    """The history update by `tf.where` over the whole histories, as it was until 2026-12."""
    m = s_history.shape[0]
    return (
        tf.where(keep, tf.concat([s_history[1:], s[None]], 0), s_history),
        tf.where(keep, tf.concat([y_history[1:], y[None]], 0), y_history),
        tf.where(keep, tf.minimum(history_size + 1, m), history_size),
    )


def _median_seconds(calls, repeats):
    """`{name: median seconds}` of each zero-argument callable, called in turn `repeats` times."""
    times = {name: [] for name in calls}
    for call in calls.values():
        call()  # trace
    for _ in range(repeats):
        for name, call in calls.items():
            start = time.perf_counter()
            call()
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(t) for name, t in times.items()}


def _loop_seconds(direction, n, iterations, repeats):
    """Seconds per iteration of the compiled loop on a separable quadratic, and evaluations per iteration."""
    scales = tf.constant(np.logspace(0, 2, n), tf.float32)

    def quadratic(x):
        return 0.5 * tf.reduce_sum(scales * (x - 1.0) ** 2), scales * (x - 1.0)

    with mock.patch.object(lbfgs_loop, "search_direction", direction):
        run = tf.function(lambda x, limit: lbfgs_loop.minimize(quadratic, x, max_iterations=limit, tolerance=0.0))
        x0 = tf.zeros([n])
        counts = {}

        def timed(limit):
            state = run(x0, tf.constant(limit))
            counts[limit] = (int(state.num_iterations), int(state.num_objective_evaluations))

        seconds = _median_seconds({"short": lambda: timed(5), "long": lambda: timed(5 + iterations)}, repeats)
    done = counts[5 + iterations][0] - counts[5][0]
    evaluations = counts[5 + iterations][1] - counts[5][1]
    value_and_gradient = tf.function(quadratic)
    quadratic_seconds = _median_seconds({"q": lambda: value_and_gradient(x0)[1].numpy()}, repeats)["q"]
    per_iteration = (seconds["long"] - seconds["short"]) / done
    return per_iteration, evaluations / done, quadratic_seconds


def main(argv):
    del argv
    model, x, y = engine._model_and_data("mlp", FLAGS.size)
    objective = Objective(model, chunk_size="auto")
    evaluate = tf.function(objective.value_and_gradient)
    position, x, y = objective.position(), tf.constant(x), tf.constant(y)
    n, m = int(position.shape[0]), FLAGS.pairs
    rng = np.random.default_rng(0)
    s_rows = tf.constant(0.01 * rng.normal(size=(m, n)), tf.float32)
    y_rows = tf.constant(1.5 * s_rows.numpy() + 0.003 * rng.normal(size=(m, n)), tf.float32)
    g = tf.constant(rng.normal(size=n), tf.float32)
    size = tf.constant(m)
    compact, two_loop = tf.function(lbfgs_loop.search_direction), tf.function(two_loop_direction)
    branch, where = tf.function(lbfgs_loop.push_pair), tf.function(where_push)
    keep = tf.constant(True)
    empty = tf.function(lambda: tf.constant(0))
    parts = _median_seconds(
        {
            "evaluation": lambda: evaluate(position, x, y, None)[1].numpy(),
            "direction_compact": lambda: compact(g, s_rows, y_rows, size).numpy(),
            "direction_two_loop": lambda: two_loop(g, s_rows, y_rows, size).numpy(),
            "history_update_branch": lambda: branch(s_rows, y_rows, size, g, g, keep)[2].numpy(),
            "history_update_where": lambda: where(s_rows, y_rows, size, g, g, keep)[2].numpy(),
            "empty_call": lambda: empty().numpy(),  # a compiled call that does nothing: the floor
        },
        FLAGS.repeats,
    )
    rows = {f"{k}_ms": 1e3 * v for k, v in parts.items()}
    for name, direction in (("compact", lbfgs_loop.search_direction), ("two_loop", two_loop_direction)):
        per_iteration, evaluations, quadratic = _loop_seconds(direction, n, FLAGS.loop_iterations, FLAGS.repeats)
        overhead = per_iteration - evaluations * quadratic
        rows[f"iteration_overhead_{name}_ms"] = 1e3 * overhead
        rows[f"overhead_per_evaluation_{name}"] = overhead / parts["evaluation"]
        rows["quadratic_evaluations_per_iteration"] = evaluations
    for key, value in rows.items():
        print(f"{key}: {value:.3f}", flush=True)
    print(json.dumps({"iteration_profile": rows, "parameters": n, "pairs": m, "size": FLAGS.size,
                      "command": "python3 -m benchmarks.iteration_profile"}))


if __name__ == "__main__":
    engine.define_flags()
    flags.DEFINE_integer("size", 1000, "K of the MLP evaluation.")
    flags.DEFINE_integer("pairs", 10, "Curvature pairs m (LBFGS's num_correction_pairs default).")
    flags.DEFINE_integer("loop_iterations", 50, "Iterations of the timed loop on the quadratic.")
    app.run(main)
