"""Runs of a benchmark: conventional and subset runs, their phases, points and costs.

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

`run_benchmark` runs them all for every seed; its steps are `run_specs` (the
runs), `subset_sizes` (K of every subset run, all checked before the first
run starts), `prepare_seed` (the model, its initial weights and the
evaluator of a seed), `run_one` (one run: its header, its subset, its
`Runner`) and `report.write_reports` after every run.

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

Outputs in `--output_dir`: `run_<name>_seed<k>.json` (written, atomically,
when the run completes; until then the run is rewritten after every point in
`run_<name>_seed<k>.partial.json`, so an interrupted rerun leaves an earlier
complete result intact), and, rewritten atomically after every completed
run, `summary.json`, `summary.md` (saying how many of the planned runs they
cover), `accuracy_vs_cost.png`, `gap_vs_q.png`.
"""

import dataclasses
import math
import os
import platform
import time

import keras
import keras_subset
import keras_subset.subset
import tensorflow as tf

from benchmarks import datasets
from benchmarks import report
from benchmarks import runlog
from benchmarks.config import ConfigError


def _log(message):
    print(message, flush=True)


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


class Runner:
    """Executes the phases of one run, recording points and costs.

    Args:
        config: The `Config`.
        data: The `datasets.Dataset`.
        model: The model, at the run's initial weights.
        evaluator: Callable returning the metrics of a point (an `Evaluator`).
        log: The run's `runlog.RunLog`.
        seed: The run's seed.
    """

    def __init__(self, config, data, model, evaluator, log, seed):
        self.config = config
        self.data = data
        self.model = model
        self.evaluator = evaluator
        self.log = log
        self.seed = seed
        self.meter = runlog.CostMeter()
        self.n_train = len(data.x_train)

    def run(self, spec, subset=None, augmenter=None):
        """Runs the phases of `spec` from the initial point; returns the record.

        Args:
            spec: The `RunSpec`.
            subset: `(x, y)`, the K examples of a subset run.
            augmenter: Augmentation of the full-set phases, or `None`.

        Returns:
            The completed run record (`log.data`).
        """
        c = self.config
        self.record("initial", phase_epoch=0.0)
        if spec.kind == "conventional":
            self.adam_phase(
                "train", self.data.x_train, self.data.y_train, c.epochs,
                c.learning_rate, c.batch_size, augmenter,
                points_per_epoch=c.evals_per_epoch,
            )
        else:
            if spec.optimizer == "lbfgs":
                self.lbfgs_phase(*subset)
            else:
                self.adam_subset_phase(*subset)
            self.adam_phase(
                "finetune", self.data.x_train, self.data.y_train, c.finetune_epochs,
                c.finetune_learning_rate or c.learning_rate, c.batch_size, augmenter,
                points_per_epoch=c.evals_per_epoch,
            )
        self.log.data["total_evaluations"] = self.meter.evaluations
        self.log.data["total_seconds"] = self.meter.seconds
        self.log.data["total_eval_seconds"] = self.meter.eval_seconds
        self.log.finish()
        return self.log.data

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
        callback = PointCallback(
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

    def adam_subset_phase(self, x, y):
        """Adam over the subset for `subset_epochs`, with `subset_eval_points` points."""
        c = self.config
        every = max(1, math.ceil(c.subset_epochs / c.subset_eval_points))
        self.adam_phase(
            "subset", x, y, c.subset_epochs,
            c.subset_learning_rate or c.learning_rate,
            c.subset_batch_size or c.batch_size, None,
            points_per_epoch=1,
            record_epochs=range(every - 1, c.subset_epochs, every),
        )

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


class PointCallback(keras.callbacks.Callback):
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


def default_evaluator(model, data, config):
    """The evaluator `run_benchmark` uses unless given another: an `Evaluator`
    with the config's `train_eval_examples` and `eval_batch_size`."""
    return Evaluator(model, data, config.train_eval_examples, config.eval_batch_size)


def subset_sizes(specs, model, n_train, num_classes):
    """Returns `{run name: K}` for the subset runs of `specs`.

    K comes from `keras_subset.subset.resolve_subset_size`: ceil(Q*P/M) for a
    ratio, round(fraction*N) for a fraction.

    Raises:
        ConfigError: naming the flag and the run, when a ratio needs more
            examples than the training set holds.
    """
    sizes = {}
    for spec in specs:
        if spec.kind != "subset":
            continue
        try:
            sizes[spec.name] = keras_subset.subset.resolve_subset_size(
                n_train, fraction=spec.fraction, ratio=spec.ratio, model=model,
                num_outputs=num_classes,
            )
        except ValueError as e:
            raise ConfigError(
                f"`--ratios` value {spec.ratio:g} (run {spec.name}) is too large for "
                f"this training set: {e}"
            ) from None
    return sizes


@dataclasses.dataclass
class SeedSetup:
    """What the runs of one seed share: the model, its initial weights, the evaluator."""

    seed: int
    model: keras.Model
    parameters: int  # P
    q_full: float  # Q of the full training set
    initial_weights: list
    evaluator: object


def prepare_seed(config, data, build_model, seed, evaluator_factory=default_evaluator):
    """Builds the model of a seed (after seeding), records its initial weights
    and makes its evaluator; returns a `SeedSetup`."""
    keras.utils.set_random_seed(seed)
    n_train, m = len(data.x_train), data.num_classes
    model = build_model(width=config.width, input_shape=data.input_shape, num_classes=m)
    setup = SeedSetup(
        seed=seed,
        model=model,
        parameters=keras_subset.subset.num_trainable_parameters(model),
        q_full=keras_subset.overdetermination_ratio(model, n_train, num_outputs=m),
        initial_weights=model.get_weights(),
        evaluator=evaluator_factory(model, data, config),
    )
    _log(
        f"{data.name} seed {seed}: model {model.name}, P = {setup.parameters:,d} trainable "
        f"parameters, M = {m}, N = {n_train:,d} training examples, Q of the "
        f"full set = {setup.q_full:.2f}; {len(data.x_test):,d} test examples"
    )
    return setup


def run_header(config, data, setup, spec):
    """Returns the metadata of a run record (its `subset` entry still `None`)."""
    model = setup.model
    return {
        "dataset": data.name,
        "run": spec.name,
        "kind": spec.kind,
        "seed": setup.seed,
        "model": model.name,
        "parameters": setup.parameters,
        "outputs": data.num_classes,
        "train_examples": len(data.x_train),
        "test_examples": len(data.x_test),
        "train_eval_examples": setup.evaluator.sizes["train"],
        "q_full": setup.q_full,
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


def choose_subset(config, data, setup, spec, size, augmenter):
    """Selects the K = `size` examples of a subset run (`keras_subset.select_subset`,
    seeded by the run seed), augmented once with `--subset_augment=once`.

    Returns:
        `(x, y, info)`: the subset and the record's `subset` entry.
    """
    n_train, m = len(data.x_train), data.num_classes
    indices = keras_subset.select_subset(
        data.y_train, size, config.subset_strategy, seed=setup.seed
    )
    x, y = data.x_train[indices], data.y_train[indices]
    if config.augment and config.subset_augment == "once":
        x = datasets.augment_once(x, augmenter)
    q = keras_subset.overdetermination_ratio(setup.model, size, num_outputs=m)
    info = {
        "optimizer": spec.optimizer,
        "size": size,
        "ratio": q,
        "requested_ratio": spec.ratio,
        "requested_fraction": spec.fraction,
        "fraction": size / n_train,
        "strategy": config.subset_strategy,
        "augment": config.subset_augment if config.augment else "none",
    }
    _log(
        f"run {spec.name} seed {setup.seed}: subset of K = {size:,d} examples "
        f"({size / n_train:.1%}), Q = {q:.2f}, optimizer {spec.optimizer}"
    )
    return x, y, info


def run_one(config, data, setup, spec, subset_size=None):
    """Runs one run from the seed's initial weights, reseeded; returns its record.

    Args:
        config: The `Config`.
        data: The `datasets.Dataset`.
        setup: The seed's `SeedSetup`.
        spec: The `RunSpec`.
        subset_size: K of a subset run (from `subset_sizes`).
    """
    seed = setup.seed
    keras.utils.set_random_seed(seed)
    setup.model.set_weights(setup.initial_weights)
    # A fresh augmenter per run: every run sees the same random stream.
    augmenter = (
        datasets.make_augmenter(data.flip, config.translation, seed=seed)
        if config.augment else None
    )
    header = run_header(config, data, setup, spec)
    subset = None
    if spec.kind == "subset":
        x, y, header["subset"] = choose_subset(config, data, setup, spec, subset_size, augmenter)
        subset = (x, y)
    else:
        _log(f"run {spec.name} seed {seed}: Adam on all {len(data.x_train):,d} examples")
    log = runlog.RunLog(
        os.path.join(config.output_dir, f"run_{spec.name}_seed{seed}.json"), header
    )
    runner = Runner(config, data, setup.model, setup.evaluator, log, seed)
    return runner.run(spec, subset, augmenter)


def run_benchmark(config, data, build_model, evaluator_factory=None):
    """Runs all runs of a benchmark for every seed and writes the reports.

    Args:
        config: A `Config`.
        data: A `datasets.Dataset`.
        build_model: Callable `(width=, input_shape=, num_classes=)` returning
            a built Keras model that outputs logits.
        evaluator_factory: Callable `(model, data, config)` returning the
            evaluator of a seed's runs: a callable that returns the metrics of
            a point (`train_loss`, `train_accuracy`, `test_loss`,
            `test_accuracy`), with a `sizes` dict (`sizes["train"]`: the
            training examples measured). It is called once per point, while
            the training clock is stopped. Default: `default_evaluator`.

    Returns:
        `(records, summary)`: the list of run records (as written to the JSON
        files) and the summary dict (as written to `summary.json`).

    Raises:
        ConfigError: before the first run starts, when a subset run asks for
            more examples than the training set holds.
    """
    os.makedirs(config.output_dir, exist_ok=True)
    specs = run_specs(config)
    planned = [(spec.name, seed) for seed in config.seed_list for spec in specs]
    records, sizes = [], None
    for seed in config.seed_list:
        setup = prepare_seed(
            config, data, build_model, seed, evaluator_factory or default_evaluator
        )
        if sizes is None:  # P is the same for every seed: checked once, before any run
            sizes = subset_sizes(specs, setup.model, len(data.x_train), data.num_classes)
        for spec in specs:
            records.append(run_one(config, data, setup, spec, sizes.get(spec.name)))
            summary = report.write_reports(config, records, planned)
    _log(f"Wrote {config.output_dir}/summary.md")
    print(report.summary_markdown(summary), flush=True)
    return records, summary
