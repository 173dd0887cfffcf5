"""Which first L-BFGS step: SciPy's, length 1 along −g (the default), or PyTorch's, `min(1, 1/|g|_1)·(−g)`?

An experiment, not a library option. It runs the engine benchmark's models and subsets
(`benchmarks.engine`'s flags: `--models`, `--sizes`, `--iterations`, `--chunk_size`) twice from
the same start: with the library's first step (`keras_subset.minimize.first_step_scale`, SciPy's)
and with `Minimization`'s coordinate scale replaced by PyTorch's rule, the default until 2026-12
(the position scaled by `min(1, 1/|g|_1)**0.5`, so the first trial step is `min(1, 1/|g|_1)·(−g)`).
For each it prints the evaluations, the loss after `--iterations` iterations and the loss
SciPy's L-BFGS-B reached within as many evaluations, then one JSON line.

Run: KERAS_SUBSET_DATA_DIR=data python3 -m benchmarks.first_step --models=mlp,mnist
"""

import contextlib
import json

import tensorflow as tf
from absl import app
from absl import flags

import keras_subset
from keras_subset import lbfgs_loop
from keras_subset import minimize as minimize_lib
from benchmarks import engine

FLAGS = engine.FLAGS


@contextlib.contextmanager
def _pytorch_first_step():
    """Runs `minimize` with PyTorch's first step: u = position / scale with scale² = min(1, 1 / |g|_1)."""
    original = minimize_lib.Minimization.__init__

    def init(self, *args, **kwargs):
        original(self, *args, **kwargs)
        if self._initial_history is None:  # a warm start keeps the previous run's scale
            self.scale = min(1.0, 1.0 / max(float(tf.reduce_sum(tf.abs(self.best_gradient))), 1e-30)) ** 0.5

    minimize_lib.Minimization.__init__ = init
    try:
        yield
    finally:
        minimize_lib.Minimization.__init__ = original


def main(argv):
    del argv
    # The loop without the short-step rule: a too-short first step goes to the line search.
    lbfgs_loop.KEEP_SHORT_STEPS = FLAGS.short_steps == "keep"
    rows = []
    for name in FLAGS.models:
        for size in sorted(map(int, FLAGS.sizes)):
            model, x, y = engine._model_and_data(name, size)
            row = {"model": name, "size": size}
            for rule, context in (("scipy", contextlib.nullcontext), ("pytorch", _pytorch_first_step)):
                optimizer = keras_subset.LBFGS(
                    tolerance=0.0, chunk_size=engine._chunk(FLAGS.chunk_size), line_search=FLAGS.line_search)
                with context():
                    _, result = engine._timed_minimize(optimizer, model, x, y, FLAGS.iterations)
                _, _, scipy_loss, _ = engine._scipy_run(model, x, y, result.evaluations)
                row[rule] = {"evaluations": result.evaluations, "loss": result.loss,
                             "scipy_loss": scipy_loss, "scipy_loss_ratio": result.loss / scipy_loss}
                print(f"{name} K={size} first step {rule}: {result.evaluations} evaluations, loss "
                      f"{result.loss:.4f}, SciPy {scipy_loss:.4f}, ratio {result.loss / scipy_loss:.3f}", flush=True)
            rows.append(row)
    print(json.dumps({"first_step": rows}))


if __name__ == "__main__":
    engine.define_flags()
    flags.DEFINE_enum("short_steps", "keep", ["keep", "search"],
                      "keep: the library's rule (a too-short first step is kept without a line "
                      "search); search: the line search decides, as before 2026-12-01.")
    app.run(main)
