"""L-BFGS and Adam under Keras's `mixed_bfloat16` policy against float32, side by side (not a test).

The benchmark CNN of MNIST (`--width`) is built twice from the same weights: in float32, and under
`mixed_bfloat16` (bfloat16 computation, float32 weights; `LBFGS` keeps its position, history and
chunk sums in float32). For each, in turn, `--repeats` times: `LBFGS(max_iterations=--iterations)`
on K = `--size` training images from the same weights (the graphs traced by a warm-up call
first), its seconds, evaluations, the final loss measured by the float32 model at the same weights,
and test accuracy; then Adam (learning rate 1e-3) at batch sizes 128 and 512: seconds per epoch
over the same K (after a warm-up epoch), and the loss and accuracy after `--adam_epochs` epochs.

The last line printed is a JSON object (kept in `docs/results/engine/bfloat16.json`).

Run: `KERAS_SUBSET_DATA_DIR=data python3 -m benchmarks.bfloat16`
"""

import json
import time

import keras
from absl import app
from absl import flags

import keras_subset
from benchmarks import datasets
from benchmarks import models

FLAGS = flags.FLAGS
POLICIES = ("float32", "mixed_bfloat16")


def _loss():
    return keras.losses.SparseCategoricalCrossentropy(from_logits=True)


def _build(policy, weights):
    """The MNIST CNN of `--width` under `policy`, with `weights`, compiled."""
    model = models.build_under_policy(policy, models.mnist_cnn, width=FLAGS.width)
    model.set_weights(weights)
    model.compile(loss=_loss(), metrics=["accuracy"])
    return model


def main(argv):
    del argv
    arrays, _ = datasets.load_arrays("mnist", download=False)
    x = (arrays["x_train"][: FLAGS.size].astype("float32") / 255.0)[..., None]
    y = arrays["y_train"][: FLAGS.size].astype("int32")
    x_test = (arrays["x_test"].astype("float32") / 255.0)[..., None]
    y_test = arrays["y_test"].astype("int32")
    keras.utils.set_random_seed(0)
    initial = models.mnist_cnn(width=FLAGS.width).get_weights()
    judge = _build("float32", initial)  # every model is measured in float32 at its weights

    def measured(model):
        judge.set_weights(model.get_weights())
        loss = judge.evaluate(x, y, batch_size=2000, verbose=0)[0]
        return loss, judge.evaluate(x_test, y_test, batch_size=2000, verbose=0)[1]

    out = {"lbfgs": {p: [] for p in POLICIES}, "adam": {}}
    optimizers = {p: keras_subset.LBFGS(max_iterations=FLAGS.iterations, tolerance=0.0) for p in POLICIES}
    built = {p: _build(p, initial) for p in POLICIES}
    for policy in POLICIES:  # trace once per policy (the graphs are kept per model)
        optimizers[policy].minimize(built[policy], x[:500], y[:500])
    for _ in range(FLAGS.repeats):
        for policy in POLICIES:
            model = built[policy]
            model.set_weights(initial)
            start = time.perf_counter()
            result = optimizers[policy].minimize(model, x, y)
            seconds = time.perf_counter() - start
            loss, accuracy = measured(model)
            row = dict(seconds=seconds, iterations=result.iterations, evaluations=result.evaluations,
                       float32_loss=loss, test_accuracy=accuracy)
            out["lbfgs"][policy].append(row)
            print("L-BFGS", policy, row, flush=True)
    for batch_size in (128, 512):
        for policy in POLICIES:
            model = _build(policy, initial)
            model.compile(optimizer=keras.optimizers.Adam(1e-3), loss=_loss(), metrics=["accuracy"])
            model.fit(x, y, batch_size=batch_size, epochs=1, verbose=0)  # warm-up
            start = time.perf_counter()
            model.fit(x, y, batch_size=batch_size, epochs=FLAGS.adam_epochs, verbose=0)
            per_epoch = (time.perf_counter() - start) / FLAGS.adam_epochs
            loss, accuracy = measured(model)
            row = dict(seconds_per_epoch=per_epoch, float32_loss=loss, test_accuracy=accuracy)
            out["adam"][f"{policy}_b{batch_size}"] = row
            print("Adam", policy, batch_size, row, flush=True)
    lbfgs_ratio = [b["seconds"] / f["seconds"] for f, b in zip(out["lbfgs"]["float32"], out["lbfgs"]["mixed_bfloat16"])]
    out["lbfgs_seconds_ratio"] = lbfgs_ratio
    out["adam_seconds_ratio"] = {
        b: out["adam"][f"mixed_bfloat16_b{b}"]["seconds_per_epoch"] / out["adam"][f"float32_b{b}"]["seconds_per_epoch"]
        for b in (128, 512)
    }
    out["command"] = (f"python3 -m benchmarks.bfloat16 --size={FLAGS.size} --iterations={FLAGS.iterations} "
                      f"--repeats={FLAGS.repeats} --width={FLAGS.width} --adam_epochs={FLAGS.adam_epochs}")
    print(json.dumps(out, default=float))


if __name__ == "__main__":
    flags.DEFINE_integer("size", 4000, "Training images K.")
    flags.DEFINE_integer("iterations", 100, "L-BFGS iterations per run.")
    flags.DEFINE_integer("repeats", 2, "L-BFGS runs per policy (interleaved).")
    flags.DEFINE_integer("width", 8, "Filters of the CNN's first convolution.")
    flags.DEFINE_integer("adam_epochs", 3, "Timed Adam epochs per batch size and policy.")
    app.run(main)
