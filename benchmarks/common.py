"""Shared code of the benchmark scripts: flags, runs, cost accounting, reports.

A benchmark compares, for one dataset and model, with the same initial
weights and the same seed:

- `conventional`: Adam with minibatches on the full training set for
  `--epochs` epochs;
- subset runs, one per subset optimizer (`--subset_optimizer`) and subset
  size (`--ratios`, target overdetermination ratios Q = K*M/P, or
  `--fractions` of the training set): a random (or class-balanced) subset of
  K examples is fitted first, by full-batch L-BFGS (`keras_subset.LBFGS`) or
  by Adam for `--subset_epochs` epochs over the subset, and the network is
  then fine-tuned with a fresh Adam on the full set for `--finetune_epochs`.

Cost accounting. The cost of training is counted in *example-gradients*:
one example passed forward and backward once.

- A conventional or fine-tuning epoch costs N (the training set size).
- An L-BFGS subset phase costs `result.evaluations * K`: every objective
  evaluation (the line-search ones, the initial check and the final gradient
  included) is one forward and backward pass over all K subset examples.
- An Adam subset phase costs `subset_epochs * K`.
- Evaluations of test and training metrics are not counted; their time is
  recorded separately (`eval_seconds`) and is excluded from `seconds`, which
  is training wall-clock time only (graph tracing included).

Points. Test and training metrics (the training metrics on a fixed sample of
`--train_eval_examples` un-augmented training examples) are recorded at the
start of every run, `--evals_per_epoch` times per Adam epoch on the full
set, at `--subset_eval_points` points of an Adam subset phase, and after each
of the `--lbfgs_segments` L-BFGS calls. L-BFGS restarted for a new segment
loses its curvature history, so the default is a single call (one point at
its end).

Augmentation (`--augment`): random translations (and horizontal flips for
CIFAR) by Keras preprocessing layers inside `tf.data`, for the conventional
run and for fine-tuning. L-BFGS needs a fixed, deterministic objective, so the
subset phase never sees fresh random augmentation: with
`--subset_augment=none` (default) the subset phase fits the K original
examples; with `--subset_augment=once` every subset example is augmented
once, up front, into a fixed set of K examples. The Adam subset phase uses the
same fixed examples, so both subset optimizers minimise the same objective.

Time-to-target. The target of a seed is the conventional run's final test
accuracy minus `--target_tolerance` percentage points. A run's time-to-target
is its first recorded point whose test accuracy reaches the target, in
example-gradients and in seconds; a subset run's ratio is that divided by the
conventional run's. The conventional run has levelled off when its last epoch
improved the test accuracy by less than `--plateau_tolerance` percentage
points over the best earlier epoch; the summary says when it has not.

Outputs in `--output_dir`: `run_<name>_seed<k>.json` (rewritten after every
point, atomically), `summary.json`, `summary.md`, `accuracy_vs_cost.png`,
`gap_vs_q.png`.
"""

import dataclasses
import json
import math
import os
import platform
import sys
import tempfile
import time

import keras
import keras_subset
import numpy as np
import tensorflow as tf
from absl import app
from absl import flags

from benchmarks import datasets

SUBSET_OPTIMIZERS = ("lbfgs", "adam")


# ----------------------------------------------------------------------------
# Configuration and flags
# ----------------------------------------------------------------------------


@dataclasses.dataclass
class Config:
    """Settings of one benchmark invocation.

    Every field but `dataset` is also a flag of the same name; the defaults
    here are overridden by the script's `--preset` table, which is overridden
    by flags given on the command line. Integers documented as "0: ..." use 0
    for "all" or "the same as ...".
    """

    dataset: str = "mnist"
    preset: str = "cpu"
    output_dir: str = ""  # "": results/<dataset>
    data_dir: str = ""
    local_data_dir: str = ""
    tfds_download: bool = True
    train_examples: int = 0  # 0: all
    test_examples: int = 0  # 0: all
    train_eval_examples: int = 10000  # 0: all
    width: int = 16
    batch_size: int = 128
    epochs: int = 10
    learning_rate: float = 1e-3
    ratios: tuple = ()
    fractions: tuple = ()
    subset_optimizer: tuple = ("lbfgs",)
    subset_strategy: str = "random"
    subset_augment: str = "none"
    lbfgs_iterations: int = 100
    lbfgs_segments: int = 1
    lbfgs_correction_pairs: int = 10
    lbfgs_chunk_size: int = 512  # 0: one pass over the whole subset
    subset_epochs: int = 20
    subset_learning_rate: float = 0.0  # 0: learning_rate
    subset_batch_size: int = 0  # 0: batch_size
    subset_eval_points: int = 5
    finetune_epochs: int = 2
    finetune_learning_rate: float = 0.0  # 0: learning_rate
    augment: bool = False
    translation: float = 0.1
    evals_per_epoch: int = 1
    eval_batch_size: int = 1000
    target_tolerance: float = 0.3
    plateau_tolerance: float = 0.2
    seeds: int = 1
    seed: int = 0
    verbose: int = 0

    def __post_init__(self):
        self.ratios = tuple(float(r) for r in self.ratios)
        self.fractions = tuple(float(f) for f in self.fractions)
        if isinstance(self.subset_optimizer, str):
            self.subset_optimizer = (self.subset_optimizer,)
        self.subset_optimizer = tuple(self.subset_optimizer)
        for opt in self.subset_optimizer:
            if opt not in SUBSET_OPTIMIZERS:
                raise ValueError(
                    f"subset_optimizer {opt!r} is not one of {SUBSET_OPTIMIZERS}"
                )
        if any(not r > 0 for r in self.ratios):
            raise ValueError(f"ratios must be > 0, got {self.ratios}")
        if any(not 0 < f <= 1 for f in self.fractions):
            raise ValueError(f"fractions must be in (0, 1], got {self.fractions}")
        for name in ("epochs", "finetune_epochs", "subset_epochs"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0")
        for name in ("batch_size", "seeds", "evals_per_epoch", "lbfgs_segments",
                     "lbfgs_iterations", "subset_eval_points", "width"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1")
        if not self.output_dir:
            self.output_dir = os.path.join("results", self.dataset)

    @property
    def seed_list(self):
        return [self.seed + i for i in range(self.seeds)]


_FLAG_HELP = {
    "preset": "Preset of the script: smoke (CI, < 2 min), cpu (a 2-core CPU, "
    "about 20 min), paper (full scale, for a GPU). Flags given explicitly "
    "override its values.",
    "output_dir": "Folder for the JSON files, table and plots "
    "(default results/<dataset>).",
    "data_dir": "tensorflow-datasets data folder (used only without a local "
    "data folder).",
    "local_data_dir": "Folder with mnist.npz, cifar10.npz, cifar100.npz "
    "(keras.datasets layout) and fashion-mnist/*.gz; default "
    f"${datasets.ENV_VAR}. When set, tfds is not used.",
    "tfds_download": "Whether tensorflow-datasets may download the data.",
    "train_examples": "Use only this many training examples (0: all).",
    "test_examples": "Use only this many test examples (0: all).",
    "train_eval_examples": "Training examples on which the training loss and "
    "accuracy are measured at each point (0: all).",
    "width": "Width (filters of the first convolution) of the reference CNN.",
    "batch_size": "Adam minibatch size on the full training set.",
    "epochs": "Epochs of the conventional run.",
    "learning_rate": "Adam learning rate of the conventional run.",
    "ratios": "Comma-separated target overdetermination ratios Q = K*M/P of "
    "the subsets (one subset run per value and subset optimizer).",
    "fractions": "Comma-separated subset sizes as fractions of the training "
    "set (instead of, or besides, --ratios).",
    "subset_optimizer": "Comma-separated subset-phase optimizers: lbfgs "
    "(full-batch L-BFGS), adam (minibatch Adam over the subset).",
    "subset_strategy": "Subset selection: random or stratified (class-balanced).",
    "subset_augment": "With --augment: none (the subset phase fits the "
    "original examples) or once (each subset example augmented once, fixed).",
    "lbfgs_iterations": "Maximum L-BFGS iterations of the subset phase (all "
    "segments together).",
    "lbfgs_segments": "Split the L-BFGS phase into this many minimize calls "
    "(one test point after each; every call restarts L-BFGS's history).",
    "lbfgs_correction_pairs": "L-BFGS history size.",
    "lbfgs_chunk_size": "Examples per L-BFGS forward/backward pass (0: all at "
    "once); bounds memory, not the cost.",
    "subset_epochs": "Epochs of Adam over the subset (--subset_optimizer=adam).",
    "subset_learning_rate": "Adam learning rate of the subset phase (0: "
    "--learning_rate).",
    "subset_batch_size": "Adam minibatch size in the subset phase (0: "
    "--batch_size).",
    "subset_eval_points": "Points recorded during an Adam subset phase.",
    "finetune_epochs": "Epochs of Adam fine-tuning on the full set after the "
    "subset phase.",
    "finetune_learning_rate": "Adam learning rate of fine-tuning (0: "
    "--learning_rate).",
    "augment": "Augment the training data (random translations; plus "
    "horizontal flips on CIFAR).",
    "translation": "Largest random translation, as a fraction of height/width.",
    "evals_per_epoch": "Points (test evaluations) per epoch on the full set.",
    "eval_batch_size": "Batch size of the metric evaluations.",
    "target_tolerance": "Target = conventional final test accuracy minus this "
    "many percentage points.",
    "plateau_tolerance": "The conventional run has levelled off when its last "
    "epoch gained less than this many percentage points of test accuracy.",
    "seeds": "Number of seeds (seed, seed+1, ...); reports mean and standard "
    "deviation.",
    "seed": "First seed.",
    "verbose": "Keras verbosity of fit and L-BFGS (0 silent).",
}

_LIST_FIELDS = {"ratios": float, "fractions": float, "subset_optimizer": str}
_ENUM_FIELDS = {
    "preset": ("smoke", "cpu", "paper"),
    "subset_strategy": ("random", "stratified"),
    "subset_augment": ("none", "once"),
}


def define_flags():
    """Defines one absl flag per `Config` field (but `dataset`); idempotent."""
    if "preset" in flags.FLAGS:
        return
    for field in dataclasses.fields(Config):
        name = field.name
        if name == "dataset":
            continue
        help_text = _FLAG_HELP[name]
        if name in _ENUM_FIELDS:
            flags.DEFINE_enum(name, None, _ENUM_FIELDS[name], help_text)
        elif name in _LIST_FIELDS:
            flags.DEFINE_list(name, None, help_text)
        elif field.type is bool:
            flags.DEFINE_boolean(name, None, help_text)
        elif field.type is int:
            flags.DEFINE_integer(name, None, help_text)
        elif field.type is float:
            flags.DEFINE_float(name, None, help_text)
        else:
            flags.DEFINE_string(name, None, help_text)


def make_config(dataset, presets, preset=None, overrides=None):
    """Builds a `Config`: defaults, then `presets[preset]`, then `overrides`.

    Args:
        dataset: Dataset name.
        presets: Dict from preset name to a dict of `Config` field values.
        preset: Preset name (default `"cpu"`).
        overrides: Dict of field values that win over the preset. If it sets
            `ratios` or `fractions`, the preset's values of both are dropped.

    Returns:
        A `Config`.
    """
    preset = preset or "cpu"
    if preset not in presets:
        raise ValueError(f"Unknown preset {preset!r}; expected one of {list(presets)}")
    values = dict(presets[preset])
    overrides = dict(overrides or {})
    if "ratios" in overrides or "fractions" in overrides:
        values.pop("ratios", None)
        values.pop("fractions", None)
    values.update(overrides)
    values.update(dataset=dataset, preset=preset)
    return Config(**values)


def config_from_flags(dataset, presets):
    """Builds a `Config` from the parsed flags (only those given explicitly
    override the preset)."""
    flag_values = flags.FLAGS
    overrides = {}
    for field in dataclasses.fields(Config):
        name = field.name
        if name in ("dataset", "preset") or not flag_values[name].present:
            continue
        value = flag_values[name].value
        if name in _LIST_FIELDS:
            value = tuple(_LIST_FIELDS[name](v) for v in value)
        overrides[name] = value
    return make_config(dataset, presets, flag_values.preset, overrides)


# ----------------------------------------------------------------------------
# Small helpers
# ----------------------------------------------------------------------------


def write_json(path, data):
    """Writes `data` as JSON to `path` atomically (temporary file, then
    `os.replace`), so an interrupted write leaves the previous file intact."""
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=".tmp_", suffix=".json")
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(data, f, indent=1, default=_json_default)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


def _json_default(value):
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, tuple):
        return list(value)
    raise TypeError(f"Not JSON serializable: {type(value)}")


def _mean_std(values):
    values = [v for v in values if v is not None]
    if not values:
        return None, None
    mean = float(np.mean(values))
    std = float(np.std(values, ddof=1)) if len(values) > 1 else None
    return mean, std


def _log(message):
    print(message, flush=True)


# ----------------------------------------------------------------------------
# Runs
# ----------------------------------------------------------------------------


@dataclasses.dataclass
class RunSpec:
    """One run of a benchmark: conventional, or a subset run."""

    name: str
    kind: str  # "conventional" or "subset"
    optimizer: str = None  # subset optimizer
    ratio: float = None  # requested Q
    fraction: float = None  # requested fraction


def run_specs(config):
    """Returns the runs of a benchmark: conventional first, then subset runs."""
    specs = [RunSpec("conventional", "conventional")]
    for opt in config.subset_optimizer:
        for r in config.ratios:
            specs.append(RunSpec(f"{opt}_q{r:g}", "subset", opt, ratio=r))
        for f in config.fractions:
            specs.append(RunSpec(f"{opt}_f{f:g}", "subset", opt, fraction=f))
    return specs


class RunLog:
    """A run's record, rewritten to its JSON file after every change.

    Args:
        path: JSON file path.
        header: Dict of run metadata; `points` and `phases` lists and a
            `complete` flag are added.
    """

    def __init__(self, path, header):
        self.path = path
        self.data = dict(header)
        self.data.update(points=[], phases=[], complete=False)
        self.write()

    def add_point(self, point):
        self.data["points"].append(point)
        self.write()

    def add_phase(self, phase):
        self.data["phases"].append(phase)
        self.write()

    def finish(self):
        self.data["complete"] = True
        self.write()

    def write(self):
        write_json(self.path, self.data)


class CostMeter:
    """Cumulative training cost of a run: example-gradients and seconds.

    `seconds` counts training wall-clock time only: the clock is stopped
    (`pause`) while metrics are evaluated and restarted (`resume`) after.
    """

    def __init__(self):
        self.evaluations = 0
        self.seconds = 0.0
        self.eval_seconds = 0.0
        self._mark = None

    def resume(self):
        self._mark = time.perf_counter()

    def pause(self):
        if self._mark is not None:
            self.seconds += time.perf_counter() - self._mark
            self._mark = None


class Evaluator:
    """Test and training loss and accuracy of a logits model, uncounted.

    Args:
        model: The model (outputs logits).
        data: The `datasets.Dataset`.
        train_eval_examples: Training examples to measure on (0: all).
        batch_size: Evaluation batch size.
    """

    def __init__(self, model, data, train_eval_examples=0, batch_size=1000):
        self.model = model
        n = len(data.x_train)
        k = n if not train_eval_examples else min(int(train_eval_examples), n)
        self.sets = {
            "test": datasets.eval_pipeline(data.x_test, data.y_test, batch_size),
            "train": datasets.eval_pipeline(
                data.x_train[:k], data.y_train[:k], batch_size
            ),
        }
        self.sizes = {"test": len(data.x_test), "train": k}
        self._step = tf.function(self._batch, reduce_retracing=True)

    def _batch(self, x, y):
        logits = self.model(x, training=False)
        loss = keras.losses.sparse_categorical_crossentropy(y, logits, from_logits=True)
        predicted = tf.argmax(logits, axis=-1, output_type=tf.int32)
        correct = tf.cast(tf.equal(predicted, tf.cast(y, tf.int32)), tf.float32)
        return tf.reduce_sum(loss), tf.reduce_sum(correct)

    def __call__(self):
        """Returns a dict of `train_loss`, `train_accuracy`, `test_loss`,
        `test_accuracy`."""
        out = {}
        for name, ds in self.sets.items():
            total_loss, total_correct = 0.0, 0.0
            for x, y in ds:
                loss, correct = self._step(x, y)
                total_loss += float(loss)
                total_correct += float(correct)
            out[f"{name}_loss"] = total_loss / self.sizes[name]
            out[f"{name}_accuracy"] = total_correct / self.sizes[name]
        return out


class _Runner:
    """Executes the phases of one run, recording points and costs."""

    def __init__(self, config, data, model, evaluator, log, seed):
        self.config = config
        self.model = model
        self.evaluator = evaluator
        self.log = log
        self.seed = seed
        self.meter = CostMeter()
        self.n_train = len(data.x_train)

    def record(self, phase, phase_epoch=None, iterations=None):
        """Stops the clock, evaluates, writes a point, restarts the clock."""
        self.meter.pause()
        start = time.perf_counter()
        metrics = self.evaluator()
        self.meter.eval_seconds += time.perf_counter() - start
        point = {
            "phase": phase,
            "phase_epoch": phase_epoch,
            "iterations": iterations,
            "evaluations": int(self.meter.evaluations),
            "epochs_equivalent": self.meter.evaluations / self.n_train,
            "seconds": self.meter.seconds,
            "eval_seconds": self.meter.eval_seconds,
            **metrics,
        }
        self.log.add_point(point)
        _log(
            f"  [{self.log.data['run']} seed {self.seed}] {phase:<12} "
            + (f"epoch {phase_epoch:6.2f} " if phase_epoch is not None else "")
            + (f"iter {iterations:4d} " if iterations is not None else "")
            + f"test acc {metrics['test_accuracy']:.4f} loss "
            f"{metrics['test_loss']:.4f} | train acc {metrics['train_accuracy']:.4f}"
            f" | cost {self.meter.evaluations:,d} ex-grads "
            f"({point['epochs_equivalent']:.3f} epochs), {self.meter.seconds:.1f} s"
        )
        self.meter.resume()

    def adam_phase(self, phase, x, y, epochs, learning_rate, batch_size,
                   augmenter, points_per_epoch=1, record_epochs=None):
        """Adam with minibatches over `(x, y)`; cost `epochs * len(x)`."""
        if epochs == 0:
            return
        n = len(x)
        base = self.meter.evaluations
        start_seconds = self.meter.seconds
        self.meter.resume()
        self.model.compile(
            optimizer=keras.optimizers.Adam(learning_rate),
            loss=loss_function(),
            jit_compile=False,  # XLA was several times slower on CPUs
        )
        ds = datasets.train_pipeline(
            x, y, batch_size, seed=self.seed, augmenter=augmenter, repeat=True
        )
        callback = _PointCallback(
            self, phase, n, batch_size, epochs, base, points_per_epoch, record_epochs
        )
        self.model.fit(
            ds, epochs=epochs, steps_per_epoch=math.ceil(n / batch_size),
            verbose=self.config.verbose, callbacks=[callback], shuffle=False,
        )
        self.meter.pause()
        self.meter.evaluations = base + epochs * n
        self.log.add_phase({
            "phase": phase,
            "optimizer": "adam",
            "examples": n,
            "epochs": epochs,
            "learning_rate": learning_rate,
            "batch_size": batch_size,
            "evaluations": epochs * n,
            "seconds": self.meter.seconds - start_seconds,
        })

    def lbfgs_phase(self, x, y):
        """Full-batch L-BFGS over `(x, y)`; cost `result.evaluations * len(x)`."""
        c = self.config
        segments = c.lbfgs_segments
        per_segment = max(1, math.ceil(c.lbfgs_iterations / segments))
        optimizer = keras_subset.LBFGS(
            max_iterations=per_segment,
            num_correction_pairs=c.lbfgs_correction_pairs,
            chunk_size=c.lbfgs_chunk_size or None,
            jit_compile=False,
            dtype="float32",
        )
        k = len(x)
        iterations = 0
        for segment in range(segments):
            start_seconds = self.meter.seconds
            self.meter.resume()
            result = optimizer.minimize(
                self.model, x, y, loss=loss_function(), verbose=c.verbose
            )
            self.meter.pause()
            self.meter.evaluations += int(result.evaluations) * k
            iterations += int(result.iterations)
            info = dataclasses.asdict(result)
            info.update(
                phase="subset",
                optimizer="lbfgs",
                segment=segment,
                examples=k,
                evaluations_cost=int(result.evaluations) * k,
                seconds_measured=self.meter.seconds - start_seconds,
            )
            self.log.add_phase(info)
            _log(
                f"  [{self.log.data['run']} seed {self.seed}] L-BFGS segment "
                f"{segment}: {result.iterations} iterations, {result.evaluations} "
                f"evaluations of {k} examples, loss {result.initial_loss:.4g} -> "
                f"{result.loss:.4g}, {result.reason}"
            )
            self.record("subset", iterations=iterations)
            if result.converged or result.failed:
                break
        self.meter.pause()


class _PointCallback(keras.callbacks.Callback):
    """Keras callback recording points during `fit` at fixed batches.

    Records `points_per_epoch` evenly spaced points per epoch (always at the
    last batch of an epoch), in the epochs listed in `record_epochs` (all when
    `None`; the last epoch always). The cost of a point is exact: the examples
    of all batches done so far (the last batch of an epoch may be smaller).
    """

    def __init__(self, runner, phase, n, batch_size, epochs, base,
                 points_per_epoch, record_epochs):
        super().__init__()
        self.runner = runner
        self.phase = phase
        self.n = n
        self.batch_size = batch_size
        self.base = base
        steps = math.ceil(n / batch_size)
        k = max(1, min(points_per_epoch, steps))
        self.at = {round(j * steps / k) - 1 for j in range(1, k + 1)}
        self.record_epochs = (
            None if record_epochs is None else set(record_epochs) | {epochs - 1}
        )
        self.epoch = 0

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        if batch not in self.at:
            return
        if self.record_epochs is not None and self.epoch not in self.record_epochs:
            return
        done = min((batch + 1) * self.batch_size, self.n)
        self.runner.meter.evaluations = self.base + self.epoch * self.n + done
        self.runner.record(self.phase, phase_epoch=self.epoch + done / self.n)


def loss_function():
    """The training loss of every phase (the models output logits)."""
    return keras.losses.SparseCategoricalCrossentropy(from_logits=True)


def _subset_size(spec, model, n_train, num_classes):
    if spec.ratio is not None:
        k = keras_subset.subset_size_for_ratio(model, spec.ratio, num_outputs=num_classes)
    else:
        k = max(1, int(round(spec.fraction * n_train)))
    if k > n_train:
        _log(
            f"WARNING: run {spec.name} asks for {k} subset examples; the "
            f"training set has {n_train}: using all of them."
        )
        k = n_train
    return k


def run_benchmark(config, data, build_model):
    """Runs all runs of a benchmark for every seed and writes the reports.

    Args:
        config: A `Config`.
        data: A `datasets.Dataset`.
        build_model: Callable `(width=, input_shape=, num_classes=)` returning
            a built Keras model that outputs logits.

    Returns:
        `(records, summary)`: the list of run records (as written to the JSON
        files) and the summary dict (as written to `summary.json`).
    """
    os.makedirs(config.output_dir, exist_ok=True)
    n_train, m = len(data.x_train), data.num_classes
    specs = run_specs(config)
    records = []
    for seed in config.seed_list:
        keras.utils.set_random_seed(seed)
        model = build_model(width=config.width, input_shape=data.input_shape, num_classes=m)
        p = int(sum(int(np.prod(v.shape)) for v in model.trainable_variables))
        q_full = keras_subset.overdetermination_ratio(model, n_train, num_outputs=m)
        initial_weights = model.get_weights()
        evaluator = Evaluator(model, data, config.train_eval_examples, config.eval_batch_size)
        _log(
            f"{data.name} seed {seed}: model {model.name}, P = {p:,d} trainable "
            f"parameters, M = {m}, N = {n_train:,d} training examples, Q of the "
            f"full set = {q_full:.2f}; {len(data.x_test):,d} test examples"
        )
        for spec in specs:
            keras.utils.set_random_seed(seed)
            model.set_weights(initial_weights)
            # A fresh augmenter per run: every run sees the same random stream.
            augmenter = (
                datasets.make_augmenter(data.flip, config.translation, seed=seed)
                if config.augment else None
            )
            header = {
                "dataset": data.name,
                "run": spec.name,
                "kind": spec.kind,
                "seed": seed,
                "model": model.name,
                "parameters": p,
                "outputs": m,
                "train_examples": n_train,
                "test_examples": len(data.x_test),
                "train_eval_examples": evaluator.sizes["train"],
                "q_full": q_full,
                "augment": config.augment,
                "data_source": data.source,
                "config": dataclasses.asdict(config),
                "versions": {
                    "python": platform.python_version(),
                    "tensorflow": tf.__version__,
                    "keras": keras.__version__,
                    "keras_subset": getattr(keras_subset, "__version__", None),
                },
                "machine": {"platform": platform.platform(), "cpus": os.cpu_count()},
                "started": time.strftime("%Y-%m-%dT%H:%M:%S"),
                "subset": None,
            }
            subset_x = subset_y = None
            if spec.kind == "subset":
                k = _subset_size(spec, model, n_train, m)
                if config.subset_strategy == "stratified":
                    indices = keras_subset.select_subset(data.y_train, k, "stratified", seed=seed)
                else:
                    indices = keras_subset.select_subset(n_train, k, "random", seed=seed)
                subset_x, subset_y = data.x_train[indices], data.y_train[indices]
                if config.augment and config.subset_augment == "once":
                    subset_x = datasets.augment_once(subset_x, augmenter)
                q = keras_subset.overdetermination_ratio(model, k, num_outputs=m)
                header["subset"] = {
                    "optimizer": spec.optimizer,
                    "size": k,
                    "ratio": q,
                    "requested_ratio": spec.ratio,
                    "requested_fraction": spec.fraction,
                    "fraction": k / n_train,
                    "strategy": config.subset_strategy,
                    "augment": config.subset_augment if config.augment else "none",
                }
                _log(
                    f"run {spec.name} seed {seed}: subset of K = {k:,d} examples "
                    f"({k / n_train:.1%}), Q = {q:.2f}, optimizer {spec.optimizer}"
                )
            else:
                _log(f"run {spec.name} seed {seed}: Adam on all {n_train:,d} examples")
            log = RunLog(
                os.path.join(config.output_dir, f"run_{spec.name}_seed{seed}.json"), header
            )
            runner = _Runner(config, data, model, evaluator, log, seed)
            runner.record("initial", phase_epoch=0.0)
            if spec.kind == "conventional":
                runner.adam_phase(
                    "train", data.x_train, data.y_train, config.epochs,
                    config.learning_rate, config.batch_size, augmenter,
                    points_per_epoch=config.evals_per_epoch,
                )
            else:
                if spec.optimizer == "lbfgs":
                    runner.lbfgs_phase(subset_x, subset_y)
                else:
                    every = max(1, math.ceil(config.subset_epochs / config.subset_eval_points))
                    runner.adam_phase(
                        "subset", subset_x, subset_y, config.subset_epochs,
                        config.subset_learning_rate or config.learning_rate,
                        config.subset_batch_size or config.batch_size, None,
                        points_per_epoch=1,
                        record_epochs=range(every - 1, config.subset_epochs, every),
                    )
                runner.adam_phase(
                    "finetune", data.x_train, data.y_train, config.finetune_epochs,
                    config.finetune_learning_rate or config.learning_rate,
                    config.batch_size, augmenter,
                    points_per_epoch=config.evals_per_epoch,
                )
            log.data["total_evaluations"] = runner.meter.evaluations
            log.data["total_seconds"] = runner.meter.seconds
            log.data["total_eval_seconds"] = runner.meter.eval_seconds
            log.finish()
            records.append(log.data)
            summary = write_reports(config, records)
    _log(f"Wrote {config.output_dir}/summary.md")
    print(summary_markdown(summary), flush=True)
    return records, summary


# ----------------------------------------------------------------------------
# Reports
# ----------------------------------------------------------------------------


def time_to_target(points, target):
    """Returns `(evaluations, seconds)` of the first point whose test accuracy
    reaches `target`, or `(None, None)`."""
    for point in points:
        if point["test_accuracy"] >= target - 1e-12:
            return point["evaluations"], point["seconds"]
    return None, None


def plateau_gain(record):
    """Test-accuracy gain (percentage points) of a conventional run's last
    epoch over its best earlier epoch end; `None` with fewer than 2 epochs."""
    ends = {}
    for point in record["points"]:
        e = point["phase_epoch"]
        if point["phase"] == "train" and abs(e - round(e)) < 1e-9:
            ends[int(round(e))] = point["test_accuracy"]
    if len(ends) < 2:
        return None
    last = max(ends)
    return 100.0 * (ends[last] - max(v for e, v in ends.items() if e < last))


def summarize(config, records):
    """Aggregates run records over seeds into the summary dict.

    Per seed: the target is the conventional final test accuracy minus
    `target_tolerance` points; a run's time-to-target is its first point at or
    above the target; ratios are subset over conventional. Then means and
    sample standard deviations over seeds.
    """
    conventional = {r["seed"]: r for r in records if r["kind"] == "conventional"}
    conv_final = {s: r["points"][-1]["test_accuracy"] for s, r in conventional.items()}
    targets = {s: a - config.target_tolerance / 100.0 for s, a in conv_final.items()}
    conv_ttt = {s: time_to_target(r["points"], targets[s]) for s, r in conventional.items()}
    gains = {s: plateau_gain(r) for s, r in conventional.items()}
    levelled = [g is not None and g < config.plateau_tolerance for g in gains.values()]
    names = []
    for r in records:
        if r["run"] not in names:
            names.append(r["run"])
    runs = []
    for name in names:
        recs = [r for r in records if r["run"] == name]
        per_seed = []
        for r in recs:
            s = r["seed"]
            final = r["points"][-1]["test_accuracy"]
            entry = {
                "seed": s,
                "final_test_accuracy": final,
                "final_test_loss": r["points"][-1]["test_loss"],
                "total_evaluations": r["points"][-1]["evaluations"],
                "total_seconds": r.get("total_seconds", r["points"][-1]["seconds"]),
                "complete": r["complete"],
            }
            if s in targets:
                evals, secs = time_to_target(r["points"], targets[s])
                c_evals, c_secs = conv_ttt[s]
                entry.update(
                    target=targets[s],
                    gap_pp=100.0 * (final - conv_final[s]),
                    ttt_evaluations=evals,
                    ttt_seconds=secs,
                    ttt_evaluations_ratio=(
                        evals / c_evals if evals is not None and c_evals else None
                    ),
                    ttt_seconds_ratio=(
                        secs / c_secs if secs is not None and c_secs else None
                    ),
                )
            per_seed.append(entry)
        subset = recs[0]["subset"] or {}
        run = {
            "run": name,
            "kind": recs[0]["kind"],
            "optimizer": subset.get("optimizer", "adam"),
            "subset_size": subset.get("size"),
            "ratio": subset.get("ratio", recs[0]["q_full"]),
            "fraction": subset.get("fraction", 1.0),
            "seeds": [e["seed"] for e in per_seed],
            "reached_target": sum(e.get("ttt_evaluations") is not None for e in per_seed),
            "per_seed": per_seed,
        }
        for key in ("final_test_accuracy", "gap_pp", "ttt_evaluations", "ttt_seconds",
                    "ttt_evaluations_ratio", "ttt_seconds_ratio", "total_evaluations",
                    "total_seconds"):
            mean, std = _mean_std([e.get(key) for e in per_seed])
            run[key] = {"mean": mean, "std": std}
        runs.append(run)
    first = records[0]
    return {
        "dataset": first["dataset"],
        "model": first["model"],
        "parameters": first["parameters"],
        "outputs": first["outputs"],
        "train_examples": first["train_examples"],
        "test_examples": first["test_examples"],
        "q_full": first["q_full"],
        "augment": first["augment"],
        "preset": config.preset,
        "target_tolerance_pp": config.target_tolerance,
        "plateau_tolerance_pp": config.plateau_tolerance,
        "conventional_epochs": config.epochs,
        "conventional_final_test_accuracy": conv_final,
        "targets": targets,
        "conventional_last_epoch_gain_pp": gains,
        "conventional_levelled_off": bool(levelled) and all(levelled),
        "runs": runs,
    }


def _fmt(stat, scale=1.0, digits=2, suffix="", missing="not reached"):
    if stat is None or stat["mean"] is None:
        return missing
    text = f"{stat['mean'] * scale:.{digits}f}"
    if stat["std"] is not None:
        text += f" ± {stat['std'] * scale:.{digits}f}"
    return text + suffix


def _ratio(run, key):
    if run["kind"] != "subset":
        return "1"
    if run[key]["mean"] is None:
        return "not reached"
    # Reached, but the conventional run's time-to-target was 0 (its initial
    # point already met the target): the ratio is undefined.
    return _fmt(run[f"{key}_ratio"], 1.0, 3, missing="n/a")


def summary_markdown(summary):
    """Returns the markdown report of a summary dict."""
    n = summary["train_examples"]
    lines = [
        f"# {summary['dataset']}: subset pretraining vs conventional training",
        "",
        f"- Model `{summary['model']}`: P = {summary['parameters']:,d} trainable "
        f"parameters, M = {summary['outputs']} outputs; training set N = {n:,d} "
        f"(Q = N*M/P = {summary['q_full']:.2f}), test set {summary['test_examples']:,d}; "
        f"augmentation {'on' if summary['augment'] else 'off'}; preset "
        f"`{summary['preset']}`.",
        "- Cost: example-gradients (examples times forward+backward passes, L-BFGS "
        f"line-search evaluations included), shown in epochs of N = {n:,d}; seconds "
        "are training wall-clock time only (evaluations excluded).",
        f"- Target per seed: conventional final test accuracy minus "
        f"{summary['target_tolerance_pp']:g} pp. Seeds: "
        f"{', '.join(str(s) for s in summary['targets'])}; mean ± sample std over seeds.",
    ]
    gains = summary["conventional_last_epoch_gain_pp"]
    gain_text = ", ".join(
        "n/a (1 epoch)" if g is None else f"{g:+.2f} pp" for g in gains.values()
    )
    if summary["conventional_levelled_off"]:
        lines.append(
            f"- The conventional run levelled off: its last epoch gained {gain_text} "
            f"(< {summary['plateau_tolerance_pp']:g} pp) over its best earlier epoch."
        )
    else:
        lines.append(
            f"- **The conventional run has NOT levelled off** (last-epoch gain "
            f"{gain_text}, threshold {summary['plateau_tolerance_pp']:g} pp, "
            f"{summary['conventional_epochs']} epochs): its final accuracy, the "
            "target, is not its plateau; time-to-target ratios are not a fair "
            "test of the claim. Use more --epochs."
        )
    low = [r["run"] for r in summary["runs"] if r["kind"] == "subset" and r["ratio"] <= 1]
    if low:
        lines.append(
            f"- Subset runs with Q <= 1 (not overdetermined; outside the claim): "
            f"{', '.join(low)}."
        )
    lines += [
        "",
        "| run | subset opt. | Q | K | final test acc (%) | gap (pp) | cost to target "
        "(epochs) | time to target (s) | ratio (cost) | ratio (time) | reached | total cost "
        "(epochs) | total time (s) |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for run in summary["runs"]:
        is_subset = run["kind"] == "subset"
        lines.append(
            "| "
            + " | ".join([
                run["run"],
                run["optimizer"] if is_subset else "—",
                f"{run['ratio']:.2f}",
                f"{run['subset_size']:,d}" if is_subset else f"{n:,d} (all)",
                _fmt(run["final_test_accuracy"], 100.0),
                _fmt(run["gap_pp"]),
                _fmt(run["ttt_evaluations"], 1.0 / n, 3),
                _fmt(run["ttt_seconds"], 1.0, 1),
                _ratio(run, "ttt_evaluations"),
                _ratio(run, "ttt_seconds"),
                f"{run['reached_target']}/{len(run['seeds'])}",
                _fmt(run["total_evaluations"], 1.0 / n, 3),
                _fmt(run["total_seconds"], 1.0, 1),
            ])
            + " |"
        )
    lines += [
        "",
        "Ratios are per seed (subset run over conventional run, time-to-target), "
        "then averaged; a ratio of 0.1 or less is what the claim under test "
        "predicts. 'not reached': the run never reached the target.",
        "",
    ]
    return "\n".join(lines)


def plot_accuracy_vs_cost(summary, records, path):
    """Plots test accuracy against cumulative cost (example-gradients and
    seconds) for every run and seed."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(13, 5))
    names = [run["run"] for run in summary["runs"]]
    colors = {name: plt.cm.tab10(i % 10) for i, name in enumerate(names)}
    for ax, key, label in (
        (axes[0], "evaluations", "cumulative example-gradients (log)"),
        (axes[1], "seconds", "cumulative training seconds (log)"),
    ):
        labelled = set()
        for r in records:
            pts = [p for p in r["points"] if p[key] > 0]
            if not pts:
                continue
            xs = [p[key] for p in pts]
            ys = [100.0 * p["test_accuracy"] for p in pts]
            name = r["run"]
            ax.plot(xs, ys, "-", marker=".", ms=4, color=colors[name], alpha=0.9,
                    lw=1.3, label=None if name in labelled else name)
            labelled.add(name)
            ends = [p for p in pts if p["phase"] == "subset"]
            if ends:
                ax.plot([ends[-1][key]], [100.0 * ends[-1]["test_accuracy"]], "o",
                        color=colors[name])
        targets = list(summary["targets"].values())
        if targets:
            ax.axhline(100.0 * float(np.mean(targets)), color="gray", ls="--", lw=1,
                       label="target")
        ax.set_xscale("log")
        ax.set_xlabel(label)
        ax.set_ylabel("test accuracy (%)")
        shown = [100.0 * p["test_accuracy"] for r in records for p in r["points"]
                 if p[key] > 0]
        if shown:
            ax.set_ylim(max(0.0, min(shown) - 2.0), min(100.0, max(shown) + 1.0))
        ax.grid(True, which="both", alpha=0.3)
    axes[0].legend(fontsize=8)
    fig.suptitle(
        f"{summary['dataset']}: test accuracy vs training cost "
        f"(dots: end of subset phase)"
    )
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_gap_vs_q(summary, path):
    """Plots the final accuracy gap to the conventional run against Q."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    subset_runs = [r for r in summary["runs"] if r["kind"] == "subset"]
    for opt in SUBSET_OPTIMIZERS:
        runs = sorted((r for r in subset_runs if r["optimizer"] == opt),
                      key=lambda r: r["ratio"])
        runs = [r for r in runs if r["gap_pp"]["mean"] is not None]
        if not runs:
            continue
        ax.errorbar(
            [r["ratio"] for r in runs],
            [r["gap_pp"]["mean"] for r in runs],
            yerr=[r["gap_pp"]["std"] or 0.0 for r in runs],
            marker="o", capsize=3, label=f"subset {opt} + fine-tuning",
        )
    if not subset_runs:
        ax.text(0.5, 0.5, "no subset runs", ha="center", va="center",
                transform=ax.transAxes)
    ax.axhline(0.0, color="black", lw=0.8)
    ax.axhline(-summary["target_tolerance_pp"], color="gray", ls="--", lw=1,
               label=f"-{summary['target_tolerance_pp']:g} pp (target)")
    ax.set_xscale("log")
    ax.set_xlabel("overdetermination ratio Q = K*M/P of the subset (log)")
    ax.set_ylabel("final test accuracy gap to conventional (pp)")
    ax.set_title(f"{summary['dataset']}: final accuracy gap vs Q")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write_reports(config, records):
    """Writes `summary.json`, `summary.md` and the two plots; returns the
    summary dict."""
    summary = summarize(config, records)
    out = config.output_dir
    write_json(os.path.join(out, "summary.json"), summary)
    with open(os.path.join(out, "summary.md"), "w") as f:
        f.write(summary_markdown(summary))
    plot_accuracy_vs_cost(summary, records, os.path.join(out, "accuracy_vs_cost.png"))
    plot_gap_vs_q(summary, os.path.join(out, "gap_vs_q.png"))
    return summary


# ----------------------------------------------------------------------------
# Entry point of the scripts
# ----------------------------------------------------------------------------


def main(dataset, build_model, presets, argv):
    """Body of a benchmark script, after absl parsed the flags."""
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
    config = config_from_flags(dataset, presets)
    _log(f"{dataset} benchmark, preset {config.preset}: {dataclasses.asdict(config)}")
    start = time.perf_counter()
    data = datasets.load_dataset(
        dataset,
        local_data_dir=config.local_data_dir or None,
        data_dir=config.data_dir or None,
        train_examples=config.train_examples or None,
        test_examples=config.test_examples or None,
        download=config.tfds_download,
    )
    _log(
        f"Loaded {dataset} from {data.source} in {time.perf_counter() - start:.1f} s: "
        f"{len(data.x_train):,d} training, {len(data.x_test):,d} test examples"
    )
    run_benchmark(config, data, build_model)


def run_script(dataset, build_model, presets):
    """Defines the flags and runs `main` under `absl.app` (used by the scripts)."""
    define_flags()

    def _main(argv):
        try:
            main(dataset, build_model, presets, argv)
        except datasets.DataNotFoundError as e:
            sys.exit(f"ERROR: {e}")

    app.run(_main)
