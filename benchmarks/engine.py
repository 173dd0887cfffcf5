"""Speed of the full-batch L-BFGS engine, printed (not a test).

For each reference CNN and subset size it measures:

- `t_eval`: seconds of one full-batch loss-and-gradient (the compiled
  objective alone, median of `--repeats` calls);
- the wall time of `LBFGS.minimize` for `--iterations` iterations and its
  number of objective evaluations; `overhead_ratio` = wall time /
  (evaluations x t_eval), 1.0 meaning no cost beyond the evaluations;
- `throughput_ratio`: examples per second of the full-batch
  loss-and-gradient / examples per second of `model.fit`'s training steps at
  its best batch size (of `--fit_batch_sizes`), measured on an epoch after a
  warm-up epoch;
- `memory_growth`: peak resident memory of a process that runs a few L-BFGS
  iterations on 10x the smallest subset / on 1x, at a fixed `--chunk_size`
  (each in a fresh subprocess, since peak memory only grows);
- `scaling_exponent`: the slope of log(time per L-BFGS iteration) against
  log(subset size), fitted over the subset sizes;
- `progress_overhead`: wall time of the largest run with a progress bar
  (`verbose=1`, back in Python every 10 iterations) / without, minus 1.

The last line printed is a JSON object with the worst (largest
overhead/memory/scaling, smallest throughput) figures over the models, and
the per-model figures.

Run: `KERAS_SUBSET_DATA_DIR=data python -m benchmarks.engine`
"""

import json
import resource
import subprocess
import sys
import time

import numpy as np
import tensorflow as tf
import keras
from absl import app
from absl import flags

import keras_subset
from benchmarks import datasets
from benchmarks import models
from keras_subset.objective import Objective

FLAGS = flags.FLAGS
flags.DEFINE_list("sizes", ["1000", "2000", "4000"], "Subset sizes K.")
flags.DEFINE_list("models", ["mnist", "cifar10"], "Reference CNNs: mnist, cifar10, cifar100.")
flags.DEFINE_integer("iterations", 20, "L-BFGS iterations per timed run.")
flags.DEFINE_integer("chunk_size", 1000, "Examples per forward/backward pass.")
flags.DEFINE_integer("repeats", 5, "Timed repeats of one evaluation.")
flags.DEFINE_list("fit_batch_sizes", ["32", "128", "512"], "Batch sizes tried for model.fit.")
flags.DEFINE_string("local_data_dir", "", "Folder with the .npz files (or KERAS_SUBSET_DATA_DIR).")
flags.DEFINE_integer("memory_probe", 0, "Internal: run L-BFGS on this many examples and print peak RSS.")
flags.DEFINE_string("memory_model", "mnist", "Internal: the model of --memory_probe.")

_BUILDERS = {
    "mnist": (lambda: models.mnist_cnn(width=16), "mnist"),
    "cifar10": (lambda: models.cifar_cnn(width=16, num_classes=10), "cifar10"),
    "cifar100": (lambda: models.cifar_cnn(width=16, num_classes=100), "cifar100"),
}


def _model_and_data(name, size):
    build, dataset = _BUILDERS[name]
    arrays, _ = datasets.load_arrays(dataset, local_data_dir=FLAGS.local_data_dir or None, download=False)
    x, y = arrays["x_train"].astype("float32") / 255.0, arrays["y_train"]
    keras.utils.set_random_seed(0)
    model = build()
    model.compile(optimizer="adam", loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    index = np.random.default_rng(0).permutation(len(x))[:size]
    return model, x[index], y[index]


def _time_evaluation(model, x, y):
    objective = Objective(model, chunk_size=FLAGS.chunk_size)
    function = tf.function(objective.value_and_gradient)
    position, x, y = objective.position(), tf.constant(x), tf.constant(y)
    function(position, x, y, None)[1].numpy()  # trace
    times = []
    for _ in range(FLAGS.repeats):
        start = time.perf_counter()
        function(position, x, y, None)[1].numpy()
        times.append(time.perf_counter() - start)
    return float(np.median(times))


def _fit_examples_per_second(model, x, y):
    best = 0.0
    initial = model.get_weights()
    for batch_size in map(int, FLAGS.fit_batch_sizes):
        model.compile(optimizer="adam", loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
        model.fit(x, y, batch_size=batch_size, epochs=1, verbose=0)  # warm-up and tracing
        start = time.perf_counter()
        model.fit(x, y, batch_size=batch_size, epochs=1, verbose=0)
        best = max(best, len(x) / (time.perf_counter() - start))
        model.set_weights(initial)
    return best


def _lbfgs_run(model, x, y, verbose=0):
    initial = model.get_weights()
    optimizer = keras_subset.LBFGS(max_iterations=FLAGS.iterations, chunk_size=FLAGS.chunk_size)
    start = time.perf_counter()
    result = optimizer.minimize(model, x, y, verbose=verbose)
    seconds = time.perf_counter() - start
    model.set_weights(initial)
    return seconds, result


def _peak_rss_mib(name, size):
    output = subprocess.run(
        [sys.executable, "-m", "benchmarks.engine", f"--memory_probe={size}", f"--memory_model={name}",
         f"--chunk_size={FLAGS.chunk_size}", f"--local_data_dir={FLAGS.local_data_dir}"],
        check=True, capture_output=True, text=True,
    ).stdout
    return float(output.strip().splitlines()[-1])


def _memory_probe():
    model, x, y = _model_and_data(FLAGS.memory_model, FLAGS.memory_probe)
    keras_subset.LBFGS(max_iterations=3, chunk_size=FLAGS.chunk_size).minimize(model, x, y)
    print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)


def main(argv):
    del argv
    if FLAGS.memory_probe:
        _memory_probe()
        return
    sizes = sorted(map(int, FLAGS.sizes))
    per_model = {}
    for name in FLAGS.models:
        rows = []
        for size in sizes:
            model, x, y = _model_and_data(name, size)
            t_eval = _time_evaluation(model, x, y)
            seconds, result = _lbfgs_run(model, x, y)
            rows.append({
                "size": size,
                "t_eval": t_eval,
                "lbfgs_seconds": seconds,
                "iterations": result.iterations,
                "evaluations": result.evaluations,
                "overhead_ratio": seconds / (result.evaluations * t_eval),
                "seconds_per_iteration": seconds / max(result.iterations, 1),
            })
            print(f"{name} K={size}: one evaluation {t_eval:.3f} s; L-BFGS {result.iterations} iterations, "
                  f"{result.evaluations} evaluations, {seconds:.1f} s, overhead {rows[-1]['overhead_ratio']:.3f}",
                  flush=True)
        model, x, y = _model_and_data(name, sizes[-1])
        # The same run with a progress bar (Python every 10 iterations) against silent.
        silent, _ = _lbfgs_run(model, x, y)
        shown, _ = _lbfgs_run(model, x, y, verbose=1)
        progress_overhead = shown / silent - 1.0
        fit_rate = _fit_examples_per_second(model, x, y)
        eval_rate = sizes[-1] / rows[-1]["t_eval"]
        slope = float(np.polyfit(np.log(sizes), np.log([r["seconds_per_iteration"] for r in rows]), 1)[0])
        small, large = _peak_rss_mib(name, sizes[0]), _peak_rss_mib(name, 10 * sizes[0])
        per_model[name] = {
            "overhead_ratio": max(r["overhead_ratio"] for r in rows),
            "throughput_ratio": eval_rate / fit_rate,
            "memory_growth": large / small,
            "progress_overhead": progress_overhead,
            "scaling_exponent": slope,
            "full_batch_examples_per_second": eval_rate,
            "fit_examples_per_second": fit_rate,
            "peak_rss_mib": {str(sizes[0]): small, str(10 * sizes[0]): large},
            "runs": rows,
        }
        print(f"{name}: full-batch {eval_rate:.0f} examples/s, fit {fit_rate:.0f} examples/s; peak RSS "
              f"{small:.0f} MiB at K={sizes[0]}, {large:.0f} MiB at K={10 * sizes[0]}; "
              f"time per iteration ~ K^{slope:.3f}", flush=True)
    summary = {
        "overhead_ratio": max(m["overhead_ratio"] for m in per_model.values()),
        "throughput_ratio": min(m["throughput_ratio"] for m in per_model.values()),
        "memory_growth": max(m["memory_growth"] for m in per_model.values()),
        "scaling_exponent": max(m["scaling_exponent"] for m in per_model.values()),
        "progress_overhead": max(m["progress_overhead"] for m in per_model.values()),
        "chunk_size": FLAGS.chunk_size,
        "models": per_model,
    }
    print(json.dumps(summary))


if __name__ == "__main__":
    app.run(main)
