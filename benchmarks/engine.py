"""Speed of the full-batch L-BFGS engine, printed (not a test).

For each model (the reference CNNs and an MLP with small activations) and subset
size K it measures, in steady state (the
compiled graphs traced once by a warm-up call on the same `LBFGS` instance,
as repeated `minimize` calls on one model reuse them; the tracing time is
printed separately):

- `t_eval`: seconds of one full-batch loss-and-gradient (the compiled
  objective alone, the median of `--repeats` calls before and as many after
  the L-BFGS run);
- the wall time of `LBFGS.minimize` for `--iterations` iterations (the
  faster of two identical runs) and its number of objective evaluations; `overhead_ratio` = wall time /
  (evaluations x t_eval), 1.0 meaning no cost beyond the evaluations;
  `evaluations_per_iteration` = evaluations / iterations (the starting evaluation included, as
  SciPy counts it), for `--line_search` and, once, for the other line search;
- `scipy_loss_ratio`: the loss our run reached / the lowest loss SciPy's L-BFGS-B reached within
  the same number of evaluations, from the same weights, on the same compiled float32 chunked
  objective (called from Python once per evaluation); `scipy_seconds_ratio`: our seconds / SciPy's
  seconds scaled to the same number of evaluations (SciPy stops at the end of the iteration that
  spends its `maxfun`); the faster of two SciPy runs;
- `throughput_ratio`: examples per second of the full-batch
  loss-and-gradient at the largest K / examples per second of `model.fit`'s
  training steps (Adam) at its best batch size of `--fit_batch_sizes`,
  measured on an epoch over the same K examples after a warm-up epoch;
- `memory_growth`: peak resident memory while `minimize` runs a few
  L-BFGS iterations on 10x the smallest K / the same on 1x, at a fixed
  `--chunk_size`, each in a fresh process that holds only its K examples
  (as float32, in a 64-byte aligned buffer that TensorFlow shares without a
  copy), with the peak reset (`/proc/self/clear_refs`) just before
  `minimize`, so that importing TensorFlow and loading the dataset file do
  not set it; the RSS just before `minimize` is printed too;
  `working_memory_growth`: the same with the bytes of the data handed in
  subtracted from both peaks (the 10x data itself is no working memory);
- `scaling_exponent`: the slope of log(time per L-BFGS iteration) against
  log(K), fitted over the sizes;
- `dropin_ratio`: seconds per `model.fit` step with
  `model.compile(optimizer=LBFGS())` and one full batch of the largest K per
  step (Keras's own forward and backward pass over the whole batch, no
  chunks) / `t_eval`;
- `progress_overhead`: the cost of per-iteration progress (`verbose=1`,
  `progress_every=1`: back in Python after every iteration): the extra
  seconds per iteration, measured with a small model where they can be
  resolved (`segment_seconds`), divided by the seconds per iteration of the
  run at the smallest K (the worst case); also measured directly at the
  smallest K against silent runs (`progress_overhead_direct`, noisier).

`--chunk_sweep=64,128,auto,...` (0: one pass) instead times one evaluation at
the largest K for each chunk size, interleaved, prints the chunk size `"auto"`
picks, and stops.

The last line printed is a JSON object with the worst figures over the
models (largest overhead, evaluations per iteration, SciPy ratios, memory
growth, scaling exponent and progress overhead, smallest throughput ratio) and
the per-model figures.

Run: `KERAS_SUBSET_DATA_DIR=data python -m benchmarks.engine`
"""

import contextlib
import io
import json
import subprocess
import sys
import time

import numpy as np
import scipy.optimize
import tensorflow as tf
import keras
from absl import app
from absl import flags

import keras_subset
from keras_subset import chunking
from keras_subset.lbfgs import LINE_SEARCHES
from benchmarks import datasets
from benchmarks import models
from keras_subset.objective import Objective

FLAGS = flags.FLAGS


def define_flags(flag_values=flags.FLAGS):
    """Defines this script's flags in `flag_values`; `__main__` calls it (the memory probe too, as it
    reruns this module with `-m benchmarks.engine`), so importing the module defines none."""
    fv = {"flag_values": flag_values}
    flags.DEFINE_list("sizes", ["1000", "2000", "4000"], "Subset sizes K.", **fv)
    flags.DEFINE_list("models", ["mnist", "cifar10", "mlp"], "Models: the reference CNNs mnist, cifar10, "
                      "cifar100, and mlp (MNIST, 784-128-10, small activations).", **fv)
    flags.DEFINE_integer("iterations", 20, "L-BFGS iterations per timed run.", **fv)
    flags.DEFINE_string("chunk_size", str(keras_subset.LBFGS().chunk_size), "Examples per forward/backward "
                        "pass: auto (the library's rule), 0 (one pass) or a number.", **fv)
    flags.DEFINE_enum("line_search", keras_subset.LBFGS().line_search, list(LINE_SEARCHES),
                      "The line search of the timed runs; the other one is run once per size for comparison.", **fv)
    flags.DEFINE_boolean("scipy", True, "Compare with SciPy's L-BFGS-B at equal evaluations.", **fv)
    flags.DEFINE_integer("repeats", 5, "Timed repeats of one evaluation, before and after each L-BFGS run.", **fv)
    flags.DEFINE_list("fit_batch_sizes", ["64", "128", "256", "512"], "Batch sizes tried for model.fit.", **fv)
    flags.DEFINE_string("local_data_dir", "", "Folder with the .npz files (or KERAS_SUBSET_DATA_DIR).", **fv)
    flags.DEFINE_list("chunk_sweep", [], "Only time one full-batch evaluation at the largest K with each of "
                      "these chunk sizes (0: one pass), print, and stop.", **fv)
    flags.DEFINE_integer("memory_probe", 0, "Internal: run L-BFGS on this many examples and print peak RSS.", **fv)
    flags.DEFINE_string("memory_model", "mnist", "Internal: the model of --memory_probe.", **fv)


def _mlp():
    return keras.Sequential(
        [keras.Input((28, 28, 1)), keras.layers.Flatten(), keras.layers.Dense(128, activation="relu"),
         keras.layers.Dense(10)],
        name="mlp_128",
    )


def _chunk(value):
    """A --chunk_size or --chunk_sweep value as LBFGS takes it: "auto", None (0: one pass) or an int."""
    return value if value == "auto" else (int(value) or None)


_BUILDERS = {
    "mlp": (_mlp, "mnist"),
    "mnist": (lambda: models.mnist_cnn(width=16), "mnist"),
    "cifar10": (lambda: models.cifar_cnn(width=16, num_classes=10), "cifar10"),
    "cifar100": (lambda: models.cifar_cnn(width=16, num_classes=100), "cifar100"),
}
_LOSS = keras.losses.SparseCategoricalCrossentropy(from_logits=True)


def _aligned_float32(images):
    """`images / 255` as float32 in a 64-byte aligned buffer, which TensorFlow can share without a copy.

    NumPy's large arrays start 16 bytes past a 64-byte boundary, so `minimize` copies them once
    (`keras_subset.data.to_tensor`); the memory figures measure the engine's own working memory.
    """
    nbytes = images.size * 4
    buffer = np.empty(nbytes + 64, np.uint8)
    offset = -buffer.ctypes.data % 64
    out = buffer[offset : offset + nbytes].view(np.float32).reshape(images.shape)
    np.divide(images, 255.0, out=out, dtype=np.float32)
    return out


def _model_and_data(name, size):
    """The model (seed 0) and K = `size` random training examples as float32 in [0, 1]."""
    build, dataset = _BUILDERS[name]
    arrays, _ = datasets.load_arrays(dataset, local_data_dir=FLAGS.local_data_dir or None, download=False)
    index = np.random.default_rng(0).permutation(len(arrays["x_train"]))[:size]
    # Subset the uint8 arrays before converting, so the process holds only K float examples.
    x, y = _aligned_float32(arrays["x_train"][index]), arrays["y_train"][index]
    del arrays
    keras.utils.set_random_seed(0)
    model = build()
    model.compile(optimizer="adam", loss=_LOSS)
    return model, x, y


def _evaluation_timer(model, x, y, chunk_size=False):
    """Returns `time(repeats)`: the seconds of `repeats` compiled full-batch loss-and-gradient calls."""
    objective = Objective(model, chunk_size=chunk_size if chunk_size is not False else _chunk(FLAGS.chunk_size))
    function = tf.function(objective.value_and_gradient)
    position, x, y = objective.position(), tf.constant(x), tf.constant(y)
    function(position, x, y, None)[1].numpy()  # trace

    def time_calls(repeats):
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            function(position, x, y, None)[1].numpy()
            times.append(time.perf_counter() - start)
        return times

    return time_calls


def _fit_examples_per_second(model, x, y):
    best, best_batch = 0.0, None
    initial = model.get_weights()
    for batch_size in map(int, FLAGS.fit_batch_sizes):
        model.compile(optimizer="adam", loss=_LOSS)
        model.fit(x, y, batch_size=batch_size, epochs=1, verbose=0)  # warm-up and tracing
        start = time.perf_counter()
        model.fit(x, y, batch_size=batch_size, epochs=1, verbose=0)
        rate = len(x) / (time.perf_counter() - start)
        if rate > best:
            best, best_batch = rate, batch_size
        model.set_weights(initial)
    return best, best_batch


def _timed_minimize(optimizer, model, x, y, iterations, verbose=0):
    """Seconds and result of `iterations` L-BFGS iterations from the model's weights, which are restored."""
    initial = model.get_weights()
    # Only Python reads max_iterations (the graphs take it as a tensor): changing it reuses them.
    optimizer.max_iterations = iterations
    with contextlib.redirect_stdout(io.StringIO()):  # the progress bar's text, not its cost, is dropped
        start = time.perf_counter()
        result = optimizer.minimize(model, x, y, verbose=verbose)
        seconds = time.perf_counter() - start
    model.set_weights(initial)
    return seconds, result


def _scipy_run(model, x, y, evaluations):
    """SciPy's L-BFGS-B on the same float32 objective from the model's weights, for `evaluations` evaluations.

    The objective is the compiled chunked one `minimize` uses, called from Python once per
    evaluation (SciPy's loop is in Fortran and Python). Returns `(seconds, iterations, the lowest
    loss among its first `evaluations` evaluations)`; the faster of two runs.
    """
    objective = Objective(model, chunk_size=_chunk(FLAGS.chunk_size))
    function = tf.function(objective.value_and_gradient)
    tx, ty = tf.constant(x), tf.constant(y)
    start = objective.position().numpy().astype(np.float64)
    function(tf.constant(start, tf.float32), tx, ty)  # trace
    runs = []
    for _ in range(2):
        values = []

        def value_and_gradient(position):
            value, gradient = function(tf.constant(position, tf.float32), tx, ty)
            values.append(float(value))
            return values[-1], gradient.numpy().astype(np.float64)

        begin = time.perf_counter()
        result = scipy.optimize.minimize(
            value_and_gradient, start, jac=True, method="L-BFGS-B",
            options={"maxfun": evaluations, "maxiter": 100 * evaluations, "gtol": 0.0, "ftol": 0.0},
        )
        seconds = time.perf_counter() - begin
        runs.append((seconds, int(result.nit), min(values[:evaluations]), len(values)))
    return min(runs)


def _dropin_seconds_per_evaluation(model, x, y):
    """Seconds per step of `model.fit` with `compile(optimizer=LBFGS())`, one full batch per step."""
    initial = model.get_weights()
    model.compile(optimizer=keras_subset.LBFGS(), loss=_LOSS)
    full_batch = tf.data.Dataset.from_tensors((x, y)).repeat()
    model.fit(full_batch, steps_per_epoch=2, epochs=1, verbose=0)  # warm-up and tracing
    start = time.perf_counter()
    model.fit(full_batch, steps_per_epoch=10, epochs=1, verbose=0)
    seconds = (time.perf_counter() - start) / 10
    model.set_weights(initial)
    return seconds


def _segment_seconds():
    """Extra seconds per progress update: a small softmax regression, 100 iterations, progress after each."""
    arrays, _ = datasets.load_arrays("mnist", local_data_dir=FLAGS.local_data_dir or None, download=False)
    x = arrays["x_train"][:200].reshape(200, -1).astype("float32") / 255.0
    y = arrays["y_train"][:200]
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((784,)), keras.layers.Dense(10, kernel_regularizer="l2")])
    model.compile(loss=_LOSS)
    optimizer = keras_subset.LBFGS(tolerance=0.0, progress_every=1, chunk_size=_chunk(FLAGS.chunk_size))
    times = {0: [], 1: []}
    for repeat in range(4):
        for verbose in (0, 1):
            seconds, result = _timed_minimize(optimizer, model, x, y, 100, verbose)
            if repeat:  # the first pair traces the graphs
                times[verbose].append(seconds / result.iterations)
    silent, shown = float(np.median(times[0])), float(np.median(times[1]))
    print(f"softmax regression, 200 examples: {1000 * silent:.2f} ms per L-BFGS iteration (evaluations "
          f"included, {result.evaluations / result.iterations:.1f} per iteration), {1000 * shown:.2f} ms with a "
          "progress update after each", flush=True)
    return shown - silent


def _peak_rss_mib(name, size):
    """(peak RSS while minimizing, RSS just before, data handed in) in MiB, of a fresh process on `size` examples."""
    output = subprocess.run(
        [sys.executable, "-m", "benchmarks.engine", f"--memory_probe={size}", f"--memory_model={name}",
         f"--chunk_size={FLAGS.chunk_size}", f"--local_data_dir={FLAGS.local_data_dir}"],
        check=True, capture_output=True, text=True,
    ).stdout
    peak, before, data = output.strip().splitlines()[-1].split()
    return float(peak), float(before), float(data)


def _status_mib(field):
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024


def _memory_probe():
    model, x, y = _model_and_data(FLAGS.memory_model, FLAGS.memory_probe)
    before = _status_mib("VmRSS")
    try:  # Reset the peak (VmHWM) so it covers minimize alone, not the imports and data loading.
        with open("/proc/self/clear_refs", "w") as clear_refs:
            clear_refs.write("5")
    except OSError:
        pass
    keras_subset.LBFGS(max_iterations=3, chunk_size=_chunk(FLAGS.chunk_size)).minimize(model, x, y)
    print(_status_mib("VmHWM"), before, (x.nbytes + y.nbytes) / 2**20)


def _other_line_search():
    return next(ls for ls in LINE_SEARCHES if ls != FLAGS.line_search)


def _measure_size(name, size):
    """The figures of one model at one K: evaluation time, the timed L-BFGS run, both line searches, SciPy."""
    model, x, y = _model_and_data(name, size)
    time_evaluations = _evaluation_timer(model, x, y)
    optimizer = keras_subset.LBFGS(
        chunk_size=_chunk(FLAGS.chunk_size), progress_every=1, line_search=FLAGS.line_search, tolerance=0.0
    )
    evaluation_times = time_evaluations(FLAGS.repeats)
    warm_seconds, warm = _timed_minimize(optimizer, model, x, y, 1)
    # The faster of two identical runs: interference from other processes only adds time.
    (seconds, result), _ = sorted(
        (_timed_minimize(optimizer, model, x, y, FLAGS.iterations) for _ in range(2)), key=lambda r: r[0]
    )
    # Timed before and after the run, so a drift of the machine's speed affects both sides.
    t_eval = float(np.median(evaluation_times + time_evaluations(FLAGS.repeats)))
    row = {
        "size": size,
        "t_eval": t_eval,
        "tracing_seconds": warm_seconds - warm.evaluations * t_eval,
        "lbfgs_seconds": seconds,
        "iterations": result.iterations,
        "evaluations": result.evaluations,
        "loss": result.loss,
        "evaluations_per_iteration": result.evaluations / max(result.iterations, 1),
        "overhead_ratio": seconds / (result.evaluations * t_eval),
        "seconds_per_iteration": seconds / max(result.iterations, 1),
    }
    # The other line search, once (its graphs traced by a first short call).
    other = keras_subset.LBFGS(
        chunk_size=_chunk(FLAGS.chunk_size), line_search=_other_line_search(), tolerance=0.0
    )
    _timed_minimize(other, model, x, y, 1)
    other_seconds, other_result = _timed_minimize(other, model, x, y, FLAGS.iterations)
    row["other_line_search"] = {
        "line_search": other.line_search,
        "seconds": other_seconds,
        "iterations": other_result.iterations,
        "evaluations": other_result.evaluations,
        "evaluations_per_iteration": other_result.evaluations / max(other_result.iterations, 1),
        "loss": other_result.loss,
    }
    text = (f"{name} K={size}: one evaluation {t_eval:.3f} s; L-BFGS ({FLAGS.line_search}) {result.iterations} "
            f"iterations, {result.evaluations} evaluations ({row['evaluations_per_iteration']:.2f} per "
            f"iteration), loss {result.loss:.4g}, {seconds:.1f} s, overhead {row['overhead_ratio']:.3f} (tracing "
            f"before it: {row['tracing_seconds']:.1f} s); {other.line_search}: {other_result.evaluations} "
            f"evaluations ({row['other_line_search']['evaluations_per_iteration']:.2f} per iteration), loss "
            f"{other_result.loss:.4g}, {other_seconds:.1f} s")
    if FLAGS.scipy:
        scipy_seconds, scipy_iterations, scipy_loss, scipy_evaluations = _scipy_run(model, x, y, result.evaluations)
        # SciPy stops at an iteration's end once it has spent the budget: its seconds are scaled
        # to the same number of evaluations.
        scipy_equal_seconds = scipy_seconds * result.evaluations / scipy_evaluations
        row.update(
            scipy_loss=scipy_loss,
            scipy_iterations=scipy_iterations,
            scipy_evaluations=scipy_evaluations,
            scipy_seconds=scipy_seconds,
            scipy_loss_ratio=result.loss / scipy_loss,
            scipy_seconds_ratio=seconds / scipy_equal_seconds,
        )
        text += (f"; SciPy L-BFGS-B {scipy_iterations} iterations in {scipy_evaluations} evaluations, best loss "
                 f"of the first {result.evaluations} {scipy_loss:.4g} (ratio {row['scipy_loss_ratio']:.3f}), "
                 f"seconds ratio {row['scipy_seconds_ratio']:.3f}")
    print(text, flush=True)
    return row, (model, x, y, optimizer)


def _measure_model(name, sizes, segment_seconds):
    rows = []
    for size in sizes:
        row, (model, x, y, optimizer) = _measure_size(name, size)
        rows.append(row)
        if size == sizes[0]:
            # Per-iteration progress against silent runs, alternating, after a traced warm-up.
            _timed_minimize(optimizer, model, x, y, 2, verbose=1)
            times = {0: [], 1: []}
            for _ in range(2):
                for verbose in (0, 1):
                    times[verbose].append(_timed_minimize(optimizer, model, x, y, FLAGS.iterations, verbose)[0])
            direct = float(np.median(times[1]) / np.median(times[0]) - 1.0)
        if size == sizes[-1]:
            fit_rate, fit_batch = _fit_examples_per_second(model, x, y)
            dropin = _dropin_seconds_per_evaluation(model, x, y)
    eval_rate = sizes[-1] / rows[-1]["t_eval"]
    slope = float(np.polyfit(np.log(sizes), np.log([r["seconds_per_iteration"] for r in rows]), 1)[0])
    (small, small_before, small_data), (large, large_before, large_data) = (
        _peak_rss_mib(name, sizes[0]), _peak_rss_mib(name, 10 * sizes[0])
    )
    figures = {
        "overhead_ratio": max(r["overhead_ratio"] for r in rows),
        "evaluations_per_iteration": max(r["evaluations_per_iteration"] for r in rows),
        "throughput_ratio": eval_rate / fit_rate,
        "memory_growth": large / small,
        "working_memory_growth": (large - large_data) / (small - small_data),
        "scaling_exponent": slope,
        "progress_overhead": segment_seconds / rows[0]["seconds_per_iteration"],
        "progress_overhead_direct": direct,
        "full_batch_examples_per_second": eval_rate,
        "fit_examples_per_second": fit_rate,
        "fit_best_batch_size": fit_batch,
        "dropin_seconds_per_evaluation": dropin,
        "dropin_ratio": dropin / rows[-1]["t_eval"],
        "peak_rss_mib": {str(sizes[0]): small, str(10 * sizes[0]): large},
        "rss_before_minimize_mib": {str(sizes[0]): small_before, str(10 * sizes[0]): large_before},
        "data_mib": {str(sizes[0]): small_data, str(10 * sizes[0]): large_data},
        "runs": rows,
    }
    if FLAGS.scipy:
        figures["scipy_loss_ratio"] = max(r["scipy_loss_ratio"] for r in rows)
        figures["scipy_loss_ratio_geometric_mean"] = float(np.exp(np.mean([np.log(r["scipy_loss_ratio"]) for r in rows])))
        figures["scipy_seconds_ratio"] = max(r["scipy_seconds_ratio"] for r in rows)
    print(f"{name}: full-batch {eval_rate:.0f} examples/s, fit {fit_rate:.0f} examples/s (batch {fit_batch}); "
          f"peak RSS while minimizing {small:.0f} MiB at K={sizes[0]}, {large:.0f} MiB at K={10 * sizes[0]} "
          f"({small - small_before:.0f} and {large - large_before:.0f} MiB above the RSS before; data "
          f"{small_data:.0f} and {large_data:.0f} MiB); working memory growth "
          f"{figures['working_memory_growth']:.3f}; time per iteration ~ K^{slope:.3f}; per-iteration progress "
          f"+{100 * figures['progress_overhead']:.2f} % (direct: {100 * direct:+.1f} %); model.fit with LBFGS: "
          f"{dropin:.3f} s per full-batch step ({figures['dropin_ratio']:.2f} x one evaluation)", flush=True)
    return figures


def _chunk_sweep(size):
    """Examples per second of one evaluation at each chunk size, interleaved over the repeats."""
    sweep = {}
    for name in FLAGS.models:
        model, x, y = _model_and_data(name, size)
        chunks = list(FLAGS.chunk_sweep)
        timers = {c: _evaluation_timer(model, x, y, chunk_size=_chunk(c)) for c in chunks}
        times = {c: [] for c in chunks}
        for _ in range(FLAGS.repeats):
            for c in chunks:
                times[c] += timers[c](1)
        sweep[name] = {str(c): size / float(np.median(times[c])) for c in chunks}
        auto = chunking.auto_chunk_size(model)
        shown = ", ".join(f"{'one pass' if c == '0' else c}: {rate:.0f}" for c, rate in zip(chunks, sweep[name].values()))
        shown += f" (auto: {auto})"
        sweep[name]["auto_chunk_size"] = auto
        print(f"{name} K={size}, examples/s of one evaluation by chunk size: {shown}", flush=True)
    return sweep


def main(argv):
    del argv
    if FLAGS.memory_probe:
        _memory_probe()
        return
    sizes = sorted(map(int, FLAGS.sizes))
    if FLAGS.chunk_sweep:
        print(json.dumps({"chunk_sweep": _chunk_sweep(sizes[-1])}))
        return
    segment_seconds = _segment_seconds()
    print(f"one progress update costs {1000 * segment_seconds:.2f} ms", flush=True)
    if not FLAGS.models:  # `--models=`: only the engine's own cost, measured on the small model
        return
    per_model = {name: _measure_model(name, sizes, segment_seconds) for name in FLAGS.models}
    scipy = {}
    if FLAGS.scipy:
        scipy = {
            "scipy_loss_ratio": max(m["scipy_loss_ratio"] for m in per_model.values()),
            "scipy_seconds_ratio": max(m["scipy_seconds_ratio"] for m in per_model.values()),
        }
    summary = {
        **scipy,
        "overhead_ratio": max(m["overhead_ratio"] for m in per_model.values()),
        "evaluations_per_iteration": max(m["evaluations_per_iteration"] for m in per_model.values()),
        "throughput_ratio": min(m["throughput_ratio"] for m in per_model.values()),
        "memory_growth": max(m["memory_growth"] for m in per_model.values()),
        "working_memory_growth": max(m["working_memory_growth"] for m in per_model.values()),
        "scaling_exponent": max(m["scaling_exponent"] for m in per_model.values()),
        "progress_overhead": max(m["progress_overhead"] for m in per_model.values()),
        "progress_segment_seconds": segment_seconds,
        "chunk_size": FLAGS.chunk_size,
        "line_search": FLAGS.line_search,
        "iterations": FLAGS.iterations,
        "models": per_model,
    }
    print(json.dumps(summary))


if __name__ == "__main__":
    define_flags()
    app.run(main)
