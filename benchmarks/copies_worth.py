"""What a fixed augmented copy is worth: one subset fitted by L-BFGS with c copies of each
example, against subsets of as many original examples, on MNIST's reference CNN.

For each c in `--copies`, K = `--originals` examples with c fixed copies each (the
benchmarks' translation augmenter, `keras_subset`'s `augment=`/`copies=`), and, for c > 0,
K * (1 + c) original examples without copies; every set is fitted from the same initial
weights by `--iterations` L-BFGS iterations, then measured on the test set. The copies'
worth is the number of original examples that reach the same test accuracy (interpolated
in log K between the original-example runs), per copy. Prints one line per fit and a JSON
line (kept in `docs/results/copies/copies_worth.json`).

Usage: `KERAS_SUBSET_DATA_DIR=data python3 -m benchmarks.copies_worth` (about 6 minutes on
the 2-core machine); `--timing_only` times one value-and-gradient with the copies made inside
every evaluation against stored ones (about 1 minute).
"""

import json
import math
import time

from absl import app
from absl import flags
import keras
import numpy as np

import keras_subset
from benchmarks import datasets
from benchmarks import models

flags.DEFINE_list("copies", ["0", "2", "4", "8", "16"], "Copies per example to try.")
flags.DEFINE_integer("originals", 2000, "Original examples of the subsets with copies.")
flags.DEFINE_integer("iterations", 100, "L-BFGS iterations of each fit.")
flags.DEFINE_integer("width", 8, "Width of the reference CNN (8: P = 5,258).")
flags.DEFINE_integer("seed", 0, "Seed of the subset, the initial weights and the copies.")
flags.DEFINE_bool("timing_only", False, "Only time one value-and-gradient with copies made "
                  "inside the evaluation and with copies stored (6,000 images, 4 copies).")
FLAGS = flags.FLAGS


def fit(model, initial, x, y, data, copies, augment, seed):
    """Fits `(x, y)` (with `copies` fixed copies) from `initial`; returns its figures."""
    model.set_weights(initial)
    start = time.perf_counter()
    result = keras_subset.LBFGS(max_iterations=FLAGS.iterations).minimize(
        model, x, y, augment=augment if copies else None, copies=copies, seed=seed)
    seconds = time.perf_counter() - start
    logits = model.predict(data.x_test, batch_size=2000, verbose=0)
    accuracy = float(np.mean(np.argmax(logits, -1) == data.y_test))
    return {"originals": len(x), "copies": copies, "examples": len(x) * (1 + copies),
            "q": keras_subset.overdetermination_ratio(model, len(x) * (1 + copies)),
            "evaluations": int(result.evaluations), "subset_loss": float(result.loss),
            "test_accuracy": accuracy, "seconds": seconds}


def worth(row, originals):
    """Original examples per copy that reach `row`'s accuracy (log-K interpolation)."""
    points = sorted((r["examples"], r["test_accuracy"]) for r in originals)
    for (k0, a0), (k1, a1) in zip(points, points[1:]):
        if a0 <= row["test_accuracy"] <= a1 and a1 > a0:
            k = math.exp(math.log(k0) + (row["test_accuracy"] - a0) / (a1 - a0) * math.log(k1 / k0))
            return (k - row["originals"]) / (row["originals"] * row["copies"])
    return None


def timing(model, x, y, augment, copies=4, repeats=5):
    """Seconds per example of one compiled value-and-gradient over `x` with `copies` copies,
    made inside every evaluation (`MATERIALIZE_BYTES = 0`) and stored; and without copies."""
    import tensorflow as tf
    from keras_subset import augment as augment_lib
    from keras_subset.objective import Objective

    def per_example(copies_made, budget):
        saved, augment_lib.MATERIALIZE_BYTES = augment_lib.MATERIALIZE_BYTES, budget
        try:
            objective = Objective(model, chunk_size="auto", augment=augment if copies_made else None,
                                  copies=copies_made, seed=0)
            data = objective.data(tf.constant(x), tf.constant(y))
            run = tf.function(lambda p: objective.value_and_gradient(p, *data))
            position = objective.position()
            float(run(position)[0])  # traced
            times = []
            for _ in range(repeats):
                start = time.perf_counter()
                float(run(position)[0])
                times.append(time.perf_counter() - start)
            return min(times) / (len(x) * (1 + copies_made))
        finally:
            augment_lib.MATERIALIZE_BYTES = saved

    return {"made_each_evaluation": per_example(copies, 0),
            "stored": per_example(copies, augment_lib.MATERIALIZE_BYTES),
            "no_copies": per_example(0, 0), "examples": len(x), "copies": copies}


def main(argv):
    del argv
    data = datasets.load_dataset("mnist")
    keras.utils.set_random_seed(FLAGS.seed)
    model = models.mnist_cnn(width=FLAGS.width, input_shape=data.input_shape, num_classes=10)
    model.compile(loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    initial = model.get_weights()
    order = np.random.RandomState(FLAGS.seed).permutation(len(data.x_train))
    augment = datasets.make_augmenter(data.flip, 0.1, seed=FLAGS.seed)
    if FLAGS.timing_only:
        idx = order[:6000]
        figures = timing(model, data.x_train[idx], data.y_train[idx], augment)
        print(f"one value-and-gradient, per example: copies made inside the evaluation "
              f"{1e6 * figures['made_each_evaluation']:.1f} us, stored "
              f"{1e6 * figures['stored']:.1f} us, no copies {1e6 * figures['no_copies']:.1f} us")
        print(json.dumps(figures))
        return
    rows, originals = [], []
    for c in [int(v) for v in FLAGS.copies]:
        k = FLAGS.originals * (1 + c)
        for n, copies in ([(FLAGS.originals, c)] + ([(k, 0)] if c else [])):
            if n > len(order):
                continue
            idx = order[:n]
            row = fit(model, initial, data.x_train[idx], data.y_train[idx], data, copies, augment,
                      FLAGS.seed)
            (rows if copies else originals).append(row)
            print(f"K = {n:,d} originals, {copies} copies ({row['examples']:,d} examples, "
                  f"Q = {row['q']:.1f}): test accuracy {100 * row['test_accuracy']:.2f} %, "
                  f"subset loss {row['subset_loss']:.4f}, {row['evaluations']} evaluations, "
                  f"{row['seconds']:.1f} s", flush=True)
    for row in rows:
        row["originals_per_copy"] = worth(row, originals)
        print(f"{row['copies']} copies: one copy is worth "
              + ("(outside the measured range)" if row["originals_per_copy"] is None
                 else f"{row['originals_per_copy']:.2f}") + " original examples", flush=True)
    print(json.dumps({"with_copies": rows, "originals": originals,
                      "iterations": FLAGS.iterations, "width": FLAGS.width, "seed": FLAGS.seed}))


if __name__ == "__main__":
    app.run(main)
