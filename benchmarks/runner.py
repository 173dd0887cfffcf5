"""Runs of a benchmark: their kinds, phases, points and costs.

A benchmark compares, for one dataset and model, with the same initial
weights and the same seed, the run kinds `--runs` lists:

- `conventional`: Adam with minibatches of `--batch_size` on the full
  training set, stopped by the stopping rule (below) or after `--epochs`;
  `conventional_b<B>`: the same at each batch size B of
  `--adam_batch_sizes`, learning rate scaled by sqrt(B / `--batch_size`).
- `lbfgs_full`: full-batch L-BFGS on the whole training set
  (`keras_subset.pretrain(fraction=1.0)`), one continuous run of at most
  `--lbfgs_full_iterations` iterations, a point every `--lbfgs_points_every`
  iterations (the curvature history is kept across points).
- `progressive`: `keras_subset.pretrain` with growing nested subsets (first
  Q = `--progressive_ratio`, times `--growth` a stage) up to the full set,
  each stage below the full set ended by the held-out rule (`--check_every`,
  `--check_patience`, `--check_tolerance`, `--carry_history`,
  `--weight_decay`, defaults from `keras_subset.pretrain`), each stage at
  most `--lbfgs_full_iterations` iterations; a point after every segment of
  `--check_every` iterations, phase `stage<k>`.
- `progressive_adam`: the same up to `--progressive_max_fraction` of the
  training set, then Adam on the full set at `--batch_size` with the stopping
  rule (at most `--finetune_epochs`, 0: `--epochs`).
- `paper` runs `paper_q<Q>`, one per `--paper_ratios` value whose subset
  leaves examples out: the paper's protocol, `pretrain(size=K, growth=N/K,
  stop_rule="minimum")`: one subset fitted by L-BFGS until its own loss
  levels off, then L-BFGS on the full set from there (its curvature pairs
  carried); a point after every `--lbfgs_points_every` iterations.
- `subset` runs, one per subset optimizer (`--subset_optimizer`) and subset
  size (`--ratios`: target Q = K*M/P; `--fractions` of the training set): a
  random (or class-balanced) subset of K examples fitted by full-batch L-BFGS
  (`keras_subset.LBFGS`) or by Adam for `--subset_epochs` epochs, then Adam
  fine-tuning on the full set with the stopping rule (at most
  `--finetune_epochs`, 0: `--epochs`).
- `sweep` runs `sweep_q<Q>`, one per `--sweep_ratios` value whose subset
  fits in the training set (the others are skipped, saying so): one subset
  fitted by L-BFGS to its minimum (`pretrain(ratio=Q, growth=None,
  stop_rule="none")`, at most `--sweep_iterations` iterations, no weight
  decay), no fine-tuning; its points measure the training loss and accuracy
  on the whole training set.

With `--levelled_stop` (`benchmarks.stops`), `lbfgs_full` runs until it
levels off (`--lbfgs_full_iterations` then a cap), and the progressive and
paper runs end their stage on the full set at their seed's targets, at the
same plateau, or at `--route_cost_cap` times `lbfgs_full`'s cost to its
target: so the seed's `conventional` and `lbfgs_full` runs come first.

Stopping rule of every Adam phase on the full set: after each epoch, it stops
when the test accuracy has not improved on the best earlier epoch end of the
phase by at least `--plateau_tolerance` percentage points for
`--plateau_patience` epochs in a row (`stats.should_stop`), or at its epoch
cap. The phase's starting point does not count: a fine-tuning phase is then
stopped as a conventional run is (whose start, the initial weights, never
mattered), however good its pretrained start (the rule used to count it, and
stopped MNIST fine-tuning after 3 augmented epochs that stayed below the
pretrained point).

`run_benchmark` runs them all for every seed; its steps are `run_specs` (the
runs), `plan_runs` (K of every subset, the progressive sizes and the sweep
values that fit, all checked before the first run starts), `prepare_seed`
(the model, its initial weights and the evaluators of a seed), `run_one` (one
run: its header, its subset, its `Runner`) and `report.write_reports` after
every run.

Cost accounting. The cost of training is counted in *example-gradients*:
one example passed forward and backward once.

- An Adam epoch on the full set costs N (the training set size); a point
  inside an epoch counts the examples of the batches done.
- An L-BFGS phase costs `evaluations * K` per stage: every objective
  evaluation (line searches, each stage's starting evaluation and the final
  gradient included) is one forward and backward pass over all K examples of
  the stage (`keras_subset.PretrainResult.example_gradients`, or
  `LBFGSResult.evaluations * K` for a subset run).
- The held-out checks of the progressive stages, and the dead-model check
  of a stage whose end claims a minimum (up to 256 examples), pass examples
  forward only (`PretrainResult.example_forwards`): they are counted apart
  (`example_forwards` of every point) AND included in the cost as whole
  example-gradients, conservatively (a forward pass costs about a third).
- An Adam subset phase costs `subset_epochs * K`.
- Evaluations of test and training metrics are not counted; their time is
  recorded separately (`eval_seconds`) and is excluded from `seconds`, which
  is training wall-clock time only (graph tracing included).

Points. Test and training metrics (the training metrics on a fixed sample of
`--train_eval_examples` un-augmented training examples; sweep runs on all of
them) are recorded at the start of every run, `--evals_per_epoch` times per
Adam epoch on the full set, at `--subset_eval_points` points of an Adam
subset phase, after each of the `--lbfgs_segments` L-BFGS calls of a subset
run, after every segment of a `pretrain` call (`lbfgs_full`, progressive;
the last point of each stage is marked `stage_end`) and at the end of a sweep
run. Every run ends with one measurement on the whole training set
(`full_train` of the record).

Augmentation (`--augment`): random translations (and horizontal flips for
CIFAR) by Keras preprocessing layers inside `tf.data`, for every Adam phase on
the full set. L-BFGS needs a fixed, deterministic objective, so the L-BFGS
phases never see fresh random augmentation. With `--augment_copies=c` every
L-BFGS phase (`lbfgs_full`, the progressive stages, a subset run's L-BFGS
phase, the sweep) fits each of its examples together with c fixed augmented
copies (`keras_subset`'s `augment=`/`copies=`, the same augmentation layers,
copy j of example i a fixed function of the run seed, i and j): K examples
count as K*(1 + c) in Q, in the sizes a Q asks for (the sweep's, the first
progressive stage's, `--ratios`) and in the cost. With `--augment_copies=0`
those phases fit the original examples, or, in a subset run, every subset
example augmented once, up front (`--subset_augment=once`). The Adam subset
phase uses the subset's fixed examples (without the copies).

Outputs in `--output_dir`: `run_<name>_seed<k>.json` (written, atomically,
when the run completes; until then the run is rewritten after every point in
`run_<name>_seed<k>.partial.json`, so an interrupted rerun leaves an earlier
complete result intact), and, rewritten atomically after every completed
run, `summary.json`, `summary.md` (saying how many of the planned runs they
cover), `accuracy_vs_cost.png`, `gap_vs_q.png`.
"""

import dataclasses
import json
import math
import os
import platform
import time

import keras
import keras_subset
import keras_subset.subset
import tensorflow as tf

from benchmarks import config as config_lib
from benchmarks import datasets
from benchmarks import models
from benchmarks import provenance
from benchmarks import report
from benchmarks import runlog
from benchmarks import stats
from benchmarks import stops
from benchmarks.config import ConfigError


def _log(message):
    print(message, flush=True)


STOPPING_RULE = "phase_epoch_ends"
"""The stopping rule of the Adam phases on the full set, recorded in every run: its epoch
ends, the phase's starting point not counted (`PointCallback`). Runs recorded before
2026-12-01 counted the starting point and carry no such entry."""

REUSE_FREE = ("output_dir", "runs", "seeds", "seed", "sweep_ratios", "paper_ratios", "ratios", "fractions",
              "adam_batch_sizes", "subset_optimizer", "verbose", "reuse", "data_dir",
              "local_data_dir", "tfds_download")
"""`Config` fields that choose which runs an invocation makes, or where, without changing
any run: a complete run recorded under other values of these may be reused (`--reuse`)."""

ADAM_ONLY = ("epochs", "learning_rate", "batch_size", "evals_per_epoch", "finetune_epochs",
             "finetune_learning_rate", "subset_epochs", "subset_learning_rate",
             "subset_batch_size", "subset_eval_points")
"""`Config` fields that only the Adam phases read. `LBFGS_ONLY_KINDS` runs have none, so a
complete one of them stays reusable when only these differ: a longer `--epochs` for Adam
re-runs the runs with an Adam phase, not full-set L-BFGS, progressive L-BFGS or the sweep."""

LBFGS_ONLY_KINDS = ("lbfgs_full", "progressive", "paper", "sweep")
"""The run kinds without an Adam phase; the others (`conventional`, `subset`,
`progressive_adam`) end with Adam on the full set."""

FULL_SET_STOP_KINDS = ("progressive", "paper")
"""The run kinds whose full-set L-BFGS stage `--levelled_stop` ends at the targets of their seed
(`RouteStop`): they need the seed's `lbfgs_full` and `conventional` runs before them."""

ROUTE_ONLY = ("route_cost_cap",)
"""`Config` fields that only the `FULL_SET_STOP_KINDS` runs read: the other runs stay reusable
when only these differ."""

PAPER_ONLY = ("paper_iterations",)
"""`Config` fields that only the paper runs read: the other runs stay reusable when only these
differ."""


def reusable(record, config):
    """Whether a complete run `record` was made under the settings of `config` (but the
    `REUSE_FREE` ones, and for the L-BFGS-only kinds the `ADAM_ONLY` ones) and, for a run
    with an Adam phase on the full set, the current stopping rule; runs recorded before
    `--augment_copies` existed had no copies."""
    if not record.get("complete") or record["dataset"] != config.dataset:
        return False
    theirs, ours = dict(record["config"]), dataclasses.asdict(config)
    # A run recorded before a setting existed ran as its default does.
    for field in dataclasses.fields(config_lib.Config):
        theirs.setdefault(field.name, field.default)
    free = (REUSE_FREE + (ADAM_ONLY if record["kind"] in LBFGS_ONLY_KINDS else ())
            + (ROUTE_ONLY if record["kind"] not in FULL_SET_STOP_KINDS else ())
            + (PAPER_ONLY if record["kind"] != "paper" else ()))
    if any(theirs.get(k) != v for k, v in ours.items()
           if k not in free and not (k == "augment_copies" and not config.augment)):
        return False
    if record["kind"] not in LBFGS_ONLY_KINDS:  # an Adam phase on the full set
        return record.get("stopping_rule") == STOPPING_RULE
    return True


def _other_code(record):
    """A warning to append to the reuse message when `record` was made by other code."""
    theirs = provenance.source_label(record)
    ours = provenance.source_label({"source": provenance.source_digest()})
    if theirs == ours:
        return ""
    return (f"; made by other code (sources {theirs}, this code's {ours}): its numbers may "
            "differ from a run of this code; summary.md lists the code of every run")


def reusable_records(config):
    """The complete run records in `config.output_dir` that `reusable` accepts."""
    out = []
    for path in runlog.run_files(config.output_dir):
        with open(path) as f:
            record = json.load(f)
        # Lists come back from JSON as lists; compare them as the config holds them.
        record["config"] = {k: tuple(v) if isinstance(v, list) else v
                            for k, v in record["config"].items()}
        if reusable(record, config):
            out.append(record)
    return out


@dataclasses.dataclass
class RunSpec:
    """One run of a benchmark.

    `kind` is one of `config.RUN_KINDS`; `optimizer` the subset optimizer of a
    subset run; `ratio` / `fraction` its requested size (a sweep's Q, the
    first Q of a progressive run); `batch_size` and `learning_rate` those of a
    conventional run.
    """

    name: str
    kind: str
    optimizer: str = None
    ratio: float = None
    fraction: float = None
    batch_size: int = None
    learning_rate: float = None


def run_specs(config):
    """Returns the runs of a benchmark, in the order of `config.RUN_KINDS`."""
    c, specs = config, []
    if "conventional" in c.runs:
        specs.append(RunSpec("conventional", "conventional", "adam",
                             batch_size=c.batch_size, learning_rate=c.learning_rate))
        for b in c.adam_batch_sizes:
            if b != c.batch_size:
                specs.append(RunSpec(
                    f"conventional_b{b}", "conventional", "adam", batch_size=b,
                    learning_rate=c.learning_rate * math.sqrt(b / c.batch_size),
                ))
    if "lbfgs_full" in c.runs:
        specs.append(RunSpec("lbfgs_full", "lbfgs_full", "lbfgs", fraction=1.0))
    if "progressive" in c.runs:
        specs.append(RunSpec("progressive", "progressive", "lbfgs", ratio=c.progressive_ratio,
                             fraction=1.0))
    if "progressive_adam" in c.runs:
        specs.append(RunSpec("progressive_adam", "progressive_adam", "lbfgs",
                             ratio=c.progressive_ratio, fraction=c.progressive_max_fraction))
    if "paper" in c.runs:
        for r in c.paper_ratios:
            specs.append(RunSpec(f"paper_q{r:g}", "paper", "lbfgs", ratio=r))
    if "subset" in c.runs:
        for opt in c.subset_optimizer:
            for r in c.ratios:
                specs.append(RunSpec(f"{opt}_q{r:g}", "subset", opt, ratio=r))
            for f in c.fractions:
                specs.append(RunSpec(f"{opt}_f{f:g}", "subset", opt, fraction=f))
    if "sweep" in c.runs:
        for r in c.sweep_ratios:
            specs.append(RunSpec(f"sweep_q{r:g}", "sweep", "lbfgs", ratio=r))
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
        full_evaluator: The evaluator over the whole training set of the run's
            last measurement (default: `evaluator`).
        copier: The augmentation (Keras layers) that makes the fixed copies of
            the L-BFGS phases, with `config.copies` > 0.
        stop: A callable `(record, point) -> reason or None` asked after every
            point of the run's `pretrain` phase; a reason ends it there
            (`benchmarks.stops`, `--levelled_stop`).
    """

    def __init__(self, config, data, model, evaluator, log, seed, full_evaluator=None,
                 copier=None, stop=None):
        self.config = config
        # `--levelled_stop`'s rule for the points of the run's `pretrain` phase (`benchmarks.stops`).
        self.stop = stop
        self.copier = copier  # makes the L-BFGS phases' fixed copies (`--augment_copies`)
        self.copies = config.copies
        self.data = data
        self.model = model
        self.evaluator = evaluator
        self.full_evaluator = full_evaluator or evaluator
        self.log = log
        self.seed = seed
        self.meter = runlog.CostMeter()
        self.n_train = len(data.x_train)

    def run(self, spec, subset=None, augmenter=None, size=None):
        """Runs the phases of `spec` from the initial point; returns the record.

        Args:
            spec: The `RunSpec`.
            subset: `(x, y)`, the K examples of a subset run.
            augmenter: Augmentation of the Adam phases on the full set, or `None`.
            size: K of a paper run's subset.

        Returns:
            The completed run record (`log.data`).
        """
        c = self.config
        self.record("initial", phase_epoch=0.0)
        if spec.kind == "conventional":
            self.adam_phase(
                "train", self.data.x_train, self.data.y_train, c.epochs,
                spec.learning_rate, spec.batch_size, augmenter,
                points_per_epoch=c.evals_per_epoch, stop_rule=True,
            )
        elif spec.kind == "subset":
            if spec.optimizer == "lbfgs":
                self.lbfgs_phase(*subset)
            else:
                self.adam_subset_phase(*subset)
            self.finetune_phase(augmenter)
        elif spec.kind == "lbfgs_full":
            self.pretrain_phase(
                lambda stage: "full", c.lbfgs_full_iterations, fraction=1.0,
                check_every=c.lbfgs_points_every,
            )
        elif spec.kind in ("progressive", "progressive_adam"):
            extra = {}
            if spec.kind == "progressive_adam":
                extra["max_fraction"] = c.progressive_max_fraction
            self.pretrain_phase(
                lambda stage: f"stage{stage}", c.lbfgs_full_iterations,
                ratio=c.progressive_ratio, growth=c.growth, **c.pretrain_options(), **extra,
            )
            if spec.kind == "progressive_adam":
                self.finetune_phase(augmenter)
        elif spec.kind == "paper":
            # Two stages: the subset of K = `size` examples to its own plateau, then all of them
            # (growth N/K), the curvature pairs carried as in the progressive runs.
            segments = max(1, c.loss_window // c.lbfgs_points_every)
            self.pretrain_phase(
                lambda stage: f"stage{stage}", c.paper_iterations or c.lbfgs_full_iterations, size=size,
                growth=self.n_train / size, stop_rule="minimum", check_every=c.lbfgs_points_every,
                patience=segments, check_tolerance=c.loss_tolerance / segments,
                carry_history=c.carry_history, weight_decay=0.0,
            )
        elif spec.kind == "sweep":
            self.pretrain_phase(
                None, c.sweep_iterations, ratio=spec.ratio, growth=None, stop_rule="none",
                weight_decay=0.0,
            )
        else:
            raise ValueError(f"Unknown run kind {spec.kind!r}.")
        self.measure_full_train()
        self.log.data["total_evaluations"] = self.meter.evaluations
        self.log.data["total_example_forwards"] = self.meter.forwards
        self.log.data["total_seconds"] = self.meter.seconds
        self.log.data["total_eval_seconds"] = self.meter.eval_seconds
        self.log.finish()
        return self.log.data

    def evaluate(self, evaluator):
        """The metrics of `evaluator`, its time added to `eval_seconds` (the
        training clock must be stopped)."""
        start = time.perf_counter()
        metrics = evaluator()
        self.meter.eval_seconds += time.perf_counter() - start
        return metrics

    def record(self, phase, phase_epoch=None, iterations=None, **extra):
        """Stops the clock, evaluates, writes a point, restarts the clock.

        `extra` items are stored in the point too."""
        self.meter.pause()
        metrics = self.evaluate(self.evaluator)
        point = {
            "phase": phase,
            "phase_epoch": phase_epoch,
            "iterations": iterations,
            "evaluations": int(self.meter.evaluations),
            "example_forwards": int(self.meter.forwards),
            "epochs_equivalent": self.meter.evaluations / self.n_train,
            "seconds": self.meter.seconds,
            "eval_seconds": self.meter.eval_seconds,
            "train_measured": self.evaluator.sizes["train"],
            **extra,
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

    def measure_full_train(self):
        """Stores the loss and accuracy over the whole training set at the end of
        the run (`full_train`): the last point's when it measured all of it."""
        last = self.log.data["points"][-1]
        if last["train_measured"] == self.n_train:
            metrics = last
        else:
            self.meter.pause()
            metrics = self.evaluate(self.full_evaluator)
        self.log.data["full_train"] = {
            "loss": metrics["train_loss"],
            "accuracy": metrics["train_accuracy"],
            "examples": self.n_train,
        }

    def adam_phase(self, phase, x, y, epochs, learning_rate, batch_size,
                   augmenter, points_per_epoch=1, record_epochs=None, stop_rule=False):
        """Adam with minibatches over `(x, y)` for at most `epochs` epochs; cost
        `len(x)` per epoch run.

        With `stop_rule`, the phase stops earlier by the stopping rule
        (`--plateau_tolerance`, `--plateau_patience`; see `stats.should_stop`)
        on the test accuracies at its epoch ends, its starting point included.
        """
        if epochs == 0:
            return
        c, n = self.config, len(x)
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
        rule = (c.plateau_tolerance, c.plateau_patience) if stop_rule else None
        callback = PointCallback(
            self, phase, n, batch_size, epochs, base, points_per_epoch, record_epochs, rule
        )
        self.model.fit(
            ds, epochs=epochs, steps_per_epoch=math.ceil(n / batch_size),
            verbose=c.verbose, callbacks=[callback], shuffle=False,
        )
        self.meter.pause()
        self.meter.evaluations = base + callback.epochs_done * n
        info = {
            "phase": phase,
            "optimizer": "adam",
            "examples": n,
            "epochs": callback.epochs_done,
            "max_epochs": epochs,
            "learning_rate": learning_rate,
            "batch_size": batch_size,
            "evaluations": callback.epochs_done * n,
            "seconds": self.meter.seconds - start_seconds,
        }
        if stop_rule:
            info.update(
                stopped_by_rule=callback.stopped,
                reason=(
                    f"stopping rule: no gain of {c.plateau_tolerance:g} pp for "
                    f"{c.plateau_patience} epochs" if callback.stopped
                    else f"epoch cap ({epochs}) reached"
                ),
            )
        self.log.add_phase(info)

    def finetune_phase(self, augmenter):
        """Adam on the full set after a subset phase, with the stopping rule
        (at most `--finetune_epochs`, 0: `--epochs`)."""
        c = self.config
        self.adam_phase(
            "finetune", self.data.x_train, self.data.y_train, c.finetune_epoch_cap,
            c.finetune_learning_rate or c.learning_rate, c.batch_size, augmenter,
            points_per_epoch=c.evals_per_epoch, stop_rule=True,
        )

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

    def lbfgs_optimizer(self, max_iterations):
        """A fresh `keras_subset.LBFGS` with the config's history and chunk size
        (fresh: every run pays its own graph tracing)."""
        c = self.config
        return keras_subset.LBFGS(
            max_iterations=max_iterations,
            num_correction_pairs=c.lbfgs_correction_pairs,
            chunk_size=config_lib.lbfgs_chunk_size(c.lbfgs_chunk_size),
            jit_compile=False,
            dtype="float32",
        )

    def copy_options(self, seed=True):
        """The fixed-copies arguments of `keras_subset.LBFGS.minimize` (with `seed`) or
        `pretrain` (whose `seed` seeds them too); none without `--augment_copies`."""
        if not self.copies:
            return {}
        return dict(augment=self.copier, copies=self.copies, **({"seed": self.seed} if seed else {}))

    def lbfgs_phase(self, x, y):
        """Full-batch L-BFGS over `(x, y)` (with `--augment_copies`, and their copies); cost
        `result.evaluations * len(x) * (1 + copies)`."""
        c = self.config
        segments = c.lbfgs_segments
        optimizer = self.lbfgs_optimizer(max(1, math.ceil(c.lbfgs_iterations / segments)))
        k = len(x)
        iterations = 0
        for segment in range(segments):
            start_seconds = self.meter.seconds
            self.meter.resume()
            result = optimizer.minimize(
                self.model, x, y, loss=loss_function(), verbose=c.verbose,
                **self.copy_options(),
            )
            self.meter.pause()
            cost = int(result.evaluations) * k * (1 + self.copies)  # the copies are examples
            self.meter.evaluations += cost
            iterations += int(result.iterations)
            info = dataclasses.asdict(result)
            info.update(
                phase="subset",
                optimizer="lbfgs",
                segment=segment,
                examples=k,
                copies=self.copies,
                evaluations_cost=cost,
                seconds_measured=self.meter.seconds - start_seconds,
            )
            self.log.add_phase(info)
            _log(
                f"  [{self.log.data['run']} seed {self.seed}] L-BFGS segment "
                f"{segment}: {result.iterations} iterations, {result.evaluations} "
                f"evaluations of {k * (1 + self.copies)} examples, loss {result.initial_loss:.4g} -> "
                f"{result.loss:.4g}, {result.reason}"
            )
            self.record("subset", iterations=iterations)
            if result.converged or result.failed:
                break
        self.meter.pause()

    def pretrain_phase(self, phase_of_stage, max_iterations, **options):
        """`keras_subset.pretrain` on the training set (with `--augment_copies`, extended by its
        fixed copies), seeded by the run.

        Args:
            phase_of_stage: Callable from a stage index to the phase name of its
                points, recorded after every segment (`PretrainPoints`); `None`:
                one point at the end only (phase `subset`).
            max_iterations: L-BFGS iterations per stage at most.
            **options: `pretrain`'s subset sizes and stage-rule arguments.

        The cost is `PretrainResult.example_gradients + example_forwards` (the
        held-out and dead-model checks' forward passes as whole example-gradients; they are
        counted apart too).
        """
        c = self.config
        base, base_forwards = self.meter.evaluations, self.meter.forwards
        start_seconds, start_eval = self.meter.seconds, self.meter.eval_seconds
        self.model.compile(loss=loss_function())  # pretrain reads the compiled loss
        points = None if phase_of_stage is None else PretrainPoints(self, phase_of_stage, self.stop)
        self.meter.resume()
        result = keras_subset.pretrain(
            self.model, self.data.x_train, self.data.y_train,
            optimizer=self.lbfgs_optimizer(max_iterations), strategy=c.subset_strategy,
            seed=self.seed, callbacks=None if points is None else [points],
            verbose=c.verbose, **self.copy_options(seed=False), **options,
        )
        self.meter.pause()
        self.meter.evaluations = base + result.example_gradients + result.example_forwards
        self.meter.forwards = base_forwards + result.example_forwards
        logs = result.as_logs()
        stage_eval = {} if points is None else points.eval_seconds
        stages = []
        for k, stage in enumerate(result.stages):
            info = dataclasses.asdict(stage)
            info.update(stage=k, training_seconds=stage.seconds - stage_eval.get(k, 0.0))
            stages.append(info)
        if points is not None and points.stopped_by:  # the callback's stop, in the benchmark's words
            stages[-1]["reason"] = f"--levelled_stop: {points.stopped_by}"
        self.log.add_phase({
            "phase": "pretrain",
            "optimizer": "lbfgs",
            "options": dict(options),
            "stopped_by": None if points is None else points.stopped_by,
            "copies": self.copies,
            "max_iterations": max_iterations,
            "stages": stages,
            "iterations": logs["iterations"],
            "evaluations": logs["evaluations"],
            "example_gradients": int(result.example_gradients),
            "example_forwards": int(result.example_forwards),
            "subset_size": int(logs["subset_size"]),
            "seconds_measured": self.meter.seconds - start_seconds,
            "eval_seconds": self.meter.eval_seconds - start_eval,
        })
        for stage in result.stages:
            _log(
                f"  [{self.log.data['run']} seed {self.seed}] stage K = {stage.size:,d} "
                f"(Q = {stage.ratio:.2f}): {stage.iterations} iterations, "
                f"{stage.evaluations} evaluations, loss {stage.loss:.4g}"
                + ("" if stage.held_out_loss is None
                   else f", held-out loss {stage.held_out_loss:.4g} ({stage.held_out_size:,d} examples)")
                + f"; {stage.reason}"
            )
        # With points, pretrain's stage-end report gave the last one, at the weights it kept.
        if points is None:
            self.record(
                "subset", iterations=logs["iterations"],
                stage=len(result.stages) - 1, subset_size=int(logs["subset_size"]),
                stage_end=True,
            )
            self.meter.pause()
        return result


class PretrainPoints(keras.callbacks.Callback):
    """Records a point after every segment of `keras_subset.pretrain` (its
    `on_epoch_end`), at the cost its logs give: example-gradients plus the
    held-out checks' example-forwards, both cumulative over the stages.

    After each stage `pretrain` reports its end at the weights the stage kept:
    that point gets `stage_end` (at the cost of the stage's last segment, or
    of one held-out check more); the points carry `stage`, `subset_size`,
    `stage_iterations`, `stage_evaluations` and `stage_loss` (the stage's own
    objective: the full training loss on the full set). `eval_seconds` holds
    the evaluation seconds spent in each stage's points. With `stop`, a reason
    it gives after a point (not a stage-end report) sets `model.stop_training`,
    which ends `pretrain` there; `stopped_by` keeps the reason.
    """

    def __init__(self, runner, phase_of_stage, stop=None):
        super().__init__()
        self.runner = runner
        self.phase_of_stage = phase_of_stage
        self.stop, self.stopped_by = stop, None
        self.base = runner.meter.evaluations
        self.base_forwards = runner.meter.forwards
        self.stage, self.done_iterations, self.stage_iterations = None, 0, 0
        self.eval_seconds = {}

    def on_epoch_end(self, segment, logs=None):
        runner, logs = self.runner, logs or {}
        stage = int(logs["stage"])
        if self.stage is not None and stage != self.stage:
            self.done_iterations += self.stage_iterations
        # After its last segment each stage reports its end, at the weights it kept (a held-out
        # stop goes back to its best check): a point at the same cost, or one held-out check more.
        stage_end = bool(logs.get("stage_end"))
        self.stage, self.stage_iterations = stage, int(logs["stage_iterations"])
        forwards = int(logs["example_forwards"])
        runner.meter.evaluations = self.base + int(logs["example_gradients"]) + forwards
        runner.meter.forwards = self.base_forwards + forwards
        before = runner.meter.eval_seconds
        runner.record(
            self.phase_of_stage(stage),
            iterations=self.done_iterations + self.stage_iterations,
            stage=stage,
            subset_size=int(logs["subset_size"]),
            stage_iterations=self.stage_iterations,
            stage_evaluations=int(logs["stage_evaluations"]),
            stage_loss=float(logs["loss"]),
            stage_end=stage_end,
        )
        self.eval_seconds[stage] = (
            self.eval_seconds.get(stage, 0.0) + runner.meter.eval_seconds - before
        )
        if self.stop is not None and not stage_end and self.stopped_by is None:
            record = runner.log.data
            reason = self.stop(record, record["points"][-1])
            if reason:
                self.stopped_by = reason
                record["stopped_by"] = reason
                _log(f"  [{record['run']} seed {runner.seed}] stops: {reason}")
                self.model.stop_training = True


class PointCallback(keras.callbacks.Callback):
    """Keras callback recording points during `fit` at fixed batches, and
    applying the stopping rule.

    Records `points_per_epoch` evenly spaced points per epoch (always at the
    last batch of an epoch), in the epochs listed in `record_epochs` (all when
    `None`; the last epoch always). The cost of a point is exact: the examples
    of all batches done so far (the last batch of an epoch may be smaller).
    With `stop_rule = (tolerance_pp, patience)`, training stops after the
    epoch at which `stats.should_stop` holds for the test accuracies at the
    phase's epoch ends (its starting point not counted).
    """

    def __init__(self, runner, phase, n, batch_size, epochs, base,
                 points_per_epoch, record_epochs, stop_rule=None):
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
        self.epochs_done = 0
        self.stop_rule = stop_rule
        self.stopped = False
        # The rule looks at this phase's epoch ends only, not at its starting point: a
        # fine-tuning phase then gets the same chance as Adam from the initial weights (whose
        # start never counts, being far below), however good the pretrained start is.
        self.epoch_ends = []

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

    def on_epoch_end(self, epoch, logs=None):
        self.epochs_done = epoch + 1
        if self.stop_rule is None:
            return
        point = self.runner.log.data["points"][-1]  # recorded at the epoch's last batch
        assert point["phase"] == self.phase and point["phase_epoch"] == epoch + 1, point
        self.epoch_ends.append(point["test_accuracy"])
        if stats.should_stop(self.epoch_ends, *self.stop_rule):
            self.stopped = True
            self.model.stop_training = True


def loss_function():
    """The training loss of every phase (the models output logits)."""
    return keras.losses.SparseCategoricalCrossentropy(from_logits=True)


def default_evaluator(model, data, config):
    """The evaluator `run_benchmark` uses unless given another: an `Evaluator`
    with the config's `train_eval_examples` and `eval_batch_size`."""
    return Evaluator(model, data, config.train_eval_examples, config.eval_batch_size)


def _size_error(flag, value, run, error):
    return ConfigError(
        f"`{flag}` value {value:g} (run {run}) is too large for this training set: {error}"
    )


@dataclasses.dataclass
class Plan:
    """The runs of a benchmark that fit the training set, and their subset sizes.

    Attributes:
        specs: The `RunSpec`s to run (sweep values that do not fit left out).
        sizes: `{run name: K}` of the subset and sweep runs; `(first K, last K)`
            of the progressive runs.
        skipped: Why each sweep value left out was left out, in words.
    """

    specs: list
    sizes: dict
    skipped: list


def plan_runs(specs, model, n_train, num_classes, copies=0):
    """Resolves the subset sizes of `specs` for `model` and `n_train` examples.

    K comes from `keras_subset.subset.resolve_subset_size`: ceil(Q*P/(M*(1 + copies)))
    for a ratio (the fixed augmented copies count in Q), round(fraction*N) for a
    fraction.

    Returns:
        A `Plan`.

    Raises:
        ConfigError: naming the flag and the run, when a subset run's or the
            progressive runs' first ratio needs more examples than the training
            set holds, or when progressive_adam's last subset is smaller than
            its first. A sweep value that needs more is skipped instead.
    """

    def size(ratio=None, fraction=None):
        return keras_subset.subset.resolve_subset_size(
            n_train, fraction=fraction, ratio=ratio, model=model, num_outputs=num_classes,
            copies=copies,
        )

    kept, sizes, skipped = [], {}, []
    for spec in specs:
        if spec.kind == "subset":
            try:
                sizes[spec.name] = size(spec.ratio, spec.fraction)
            except ValueError as e:
                raise _size_error("--ratios", spec.ratio, spec.name, e) from None
        elif spec.kind in ("sweep", "paper"):
            k = keras_subset.subset_size_for_ratio(
                model, spec.ratio, num_outputs=num_classes, copies=copies)
            # A paper run's subset must leave examples out: on all of them it is lbfgs_full.
            if k > n_train or (spec.kind == "paper" and k >= n_train):
                with_copies = f" (with {copies} copies each)" if copies else ""
                than = "more than" if k > n_train else "all"
                skipped.append(
                    f"{spec.name}: Q = {spec.ratio:g} needs K = {k:,d} examples{with_copies}, "
                    f"{than} the {n_train:,d} of the training set"
                )
                _log(f"Skipping {skipped[-1]}.")
                continue
            sizes[spec.name] = k
        elif spec.kind in ("progressive", "progressive_adam"):
            try:
                first = size(spec.ratio)
            except ValueError as e:
                raise _size_error("--progressive_ratio", spec.ratio, spec.name, e) from None
            last = size(fraction=spec.fraction)
            if last < first:
                raise ConfigError(
                    f"`--progressive_max_fraction` ({spec.fraction:g}: {last:,d} examples) is "
                    f"smaller than the first subset of --progressive_ratio={spec.ratio:g} "
                    f"({first:,d} examples); it must be at least as large."
                )
            sizes[spec.name] = (first, last)
        kept.append(spec)
    return Plan(kept, sizes, skipped)


@dataclasses.dataclass
class SeedSetup:
    """What the runs of one seed share: the model, its initial weights, the evaluators."""

    seed: int
    model: keras.Model
    parameters: int  # P
    q_full: float  # Q of the full training set
    initial_weights: list
    evaluator: object
    full_evaluator: object  # over the whole training set (`evaluator` itself when it is)


def prepare_seed(config, data, build_model, seed, evaluator_factory=default_evaluator):
    """Builds the model of a seed (after seeding), records its initial weights
    and makes its evaluators; returns a `SeedSetup`.

    The evaluator over the whole training set (of the sweep runs' points and of
    every run's last measurement) comes from `evaluator_factory` with
    `train_eval_examples=0`, unless the points' evaluator measures all of it."""
    keras.utils.set_random_seed(seed)
    n_train, m = len(data.x_train), data.num_classes
    model = models.build_under_policy(
        config.dtype_policy, build_model, width=config.width, input_shape=data.input_shape, num_classes=m
    )
    evaluator = evaluator_factory(model, data, config)
    full_evaluator = evaluator
    if evaluator.sizes["train"] != n_train:
        full_evaluator = evaluator_factory(
            model, data, dataclasses.replace(config, train_eval_examples=0)
        )
    setup = SeedSetup(
        seed=seed,
        model=model,
        parameters=keras_subset.subset.num_trainable_parameters(model),
        q_full=keras_subset.overdetermination_ratio(model, n_train, num_outputs=m),
        initial_weights=model.get_weights(),
        evaluator=evaluator,
        full_evaluator=full_evaluator,
    )
    _log(
        f"{data.name} seed {seed}: model {model.name}, P = {setup.parameters:,d} trainable "
        f"parameters, M = {m}, N = {n_train:,d} training examples, Q of the "
        f"full set = {setup.q_full:.2f}"
        + (f" ({setup.q_full * (1 + config.copies):.2f} with {config.copies} fixed copies of "
           "each in the L-BFGS phases)" if config.copies else "")
        + f"; {len(data.x_test):,d} test examples"
    )
    return setup


def run_header(config, data, setup, spec, evaluator):
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
        "train_eval_examples": evaluator.sizes["train"],
        "q_full": setup.q_full,
        "augment": config.augment,
        "stopping_rule": STOPPING_RULE,
        # Fixed augmented copies of every example in the L-BFGS phases, and Q of the
        # training set with them (`--augment_copies`).
        "copies": config.copies,
        "q_extended": setup.q_full * (1 + config.copies),
        "batch_size": spec.batch_size,
        "learning_rate": spec.learning_rate,
        "data_source": data.source,
        "config": dataclasses.asdict(config),
        "versions": {
            "python": platform.python_version(),
            "tensorflow": tf.__version__,
            "keras": keras.__version__,
            "keras_subset": getattr(keras_subset, "__version__", None),
        },
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count()},
        # The code that made the run (`provenance`): `--reuse` says when it differs.
        "source": provenance.source_digest(),
        "started": time.strftime("%Y-%m-%dT%H:%M:%S"),
        "subset": None,
        "progressive": None,
    }


def subset_info(config, data, setup, spec, size):
    """The record's `subset` entry of a subset of K = `size` examples (Q with their copies)."""
    q = keras_subset.overdetermination_ratio(
        setup.model, size * (1 + config.copies), num_outputs=data.num_classes)
    return {
        "optimizer": spec.optimizer,
        "size": size,
        "ratio": q,
        "requested_ratio": spec.ratio,
        "requested_fraction": spec.fraction if spec.kind == "subset" else None,
        "fraction": size / len(data.x_train),
        "strategy": config.subset_strategy,
        "copies": config.copies,
        "augment": (config.subset_augment if config.augment and spec.kind == "subset"
                    else "none"),
    }


def choose_subset(config, data, setup, spec, size, augmenter):
    """Selects the K = `size` examples of a subset run (`keras_subset.select_subset`,
    seeded by the run seed), augmented once with `--subset_augment=once`.

    Returns:
        `(x, y, info)`: the subset and the record's `subset` entry.
    """
    indices = keras_subset.select_subset(
        data.y_train, size, config.subset_strategy, seed=setup.seed
    )
    x, y = data.x_train[indices], data.y_train[indices]
    if config.augment and config.subset_augment == "once":
        x = datasets.augment_once(x, augmenter)
    info = subset_info(config, data, setup, spec, size)
    _log(
        f"run {spec.name} seed {setup.seed}: subset of K = {size:,d} examples "
        f"({info['fraction']:.1%}), Q = {info['ratio']:.2f}, optimizer {spec.optimizer}"
    )
    return x, y, info


def progressive_info(config, data, setup, spec, sizes):
    """The record's `progressive` entry: the first and last subset of the stages."""
    first, last = sizes
    ratio = lambda k: keras_subset.overdetermination_ratio(  # noqa: E731
        setup.model, k * (1 + config.copies), num_outputs=data.num_classes)
    return {
        "first_size": first,
        "last_size": last,
        "first_ratio": ratio(first),
        "last_ratio": ratio(last),
        "growth": config.growth,
        "copies": config.copies,
        "max_fraction": spec.fraction,
        "strategy": config.subset_strategy,
        "stage_rule": config.pretrain_options(),
    }


def run_stop(config, n_train, spec, records, seed):
    """`--levelled_stop`'s rule for a run (`benchmarks.stops`), or `None`: `lbfgs_full` stops
    when it levels off; the progressive and paper runs at the targets of their seed, from the
    complete runs of that seed in `records`."""
    if not config.levelled_stop:
        return None
    if spec.kind == "lbfgs_full":
        return stops.ReferenceStop(config)
    if spec.kind in FULL_SET_STOP_KINDS:
        return stops.RouteStop.for_seed(config, n_train, records, seed)
    return None


def run_one(config, data, setup, spec, size=None, records=()):
    """Runs one run from the seed's initial weights, reseeded; returns its record.

    Args:
        config: The `Config`.
        data: The `datasets.Dataset`.
        setup: The seed's `SeedSetup`.
        spec: The `RunSpec`.
        size: K of a subset, sweep or paper run, `(first K, last K)` of a
            progressive run (from `plan_runs`).
        records: The complete runs so far (`--levelled_stop` reads the targets
            of the seed's reference runs in them).
    """
    seed = setup.seed
    keras.utils.set_random_seed(seed)
    setup.model.set_weights(setup.initial_weights)
    # A fresh augmenter per run: every run sees the same random stream.
    augmenter = (
        datasets.make_augmenter(data.flip, config.translation, seed=seed)
        if config.augment else None
    )
    # The fixed copies of the L-BFGS phases: the same layers, their randomness drawn per
    # (seed, example, copy) by keras_subset (another instance: tf.data keeps its own).
    copier = (
        datasets.make_augmenter(data.flip, config.translation, seed=seed)
        if config.copies and spec.kind != "conventional" else None
    )
    evaluator = setup.full_evaluator if spec.kind == "sweep" else setup.evaluator
    header = run_header(config, data, setup, spec, evaluator)
    subset = None
    n = len(data.x_train)
    if spec.kind == "subset":
        x, y, header["subset"] = choose_subset(config, data, setup, spec, size, augmenter)
        subset = (x, y)
    elif spec.kind == "sweep":
        header["subset"] = subset_info(config, data, setup, spec, size)
        _log(f"run {spec.name} seed {seed}: one subset of K = {size:,d} examples, "
             f"Q = {header['subset']['ratio']:.2f}, L-BFGS to its minimum")
    elif spec.kind in ("progressive", "progressive_adam"):
        header["progressive"] = progressive_info(config, data, setup, spec, size)
        _log(f"run {spec.name} seed {seed}: subsets of {size[0]:,d} to {size[1]:,d} "
             f"examples, growth {config.growth:g}")
    elif spec.kind == "paper":
        header["subset"] = subset_info(config, data, setup, spec, size)
        _log(f"run {spec.name} seed {seed}: one subset of K = {size:,d} examples, "
             f"Q = {header['subset']['ratio']:.2f}, L-BFGS until its loss levels off, then L-BFGS "
             "on all examples")
    elif spec.kind == "lbfgs_full":
        _log(f"run {spec.name} seed {seed}: L-BFGS on all {n:,d} examples"
             + (f" and {config.copies} fixed copies of each" if config.copies else ""))
    else:
        _log(f"run {spec.name} seed {seed}: Adam on all {n:,d} examples, batch "
             f"{spec.batch_size}, learning rate {spec.learning_rate:.3g}")
    stop = run_stop(config, n, spec, records, seed)
    if stop is not None:
        header["stop_rule"] = stop.describe()
        _log(f"run {spec.name} seed {seed}: --levelled_stop: {stop.describe()}")
    log = runlog.RunLog(
        os.path.join(config.output_dir, f"run_{spec.name}_seed{seed}.json"), header
    )
    runner = Runner(config, data, setup.model, evaluator, log, seed, setup.full_evaluator, copier,
                    stop)
    return runner.run(spec, subset, augmenter, size=size)


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
            the training clock is stopped, and once at the end of a run when
            the points did not measure the whole training set (then on the
            evaluator the factory made for `config.train_eval_examples=0`).
            Default: `default_evaluator`.

    Returns:
        `(records, summary)`: the list of run records (as written to the JSON
        files) and the summary dict (as written to `summary.json`).

    Raises:
        ConfigError: before the first run starts, when a run asks for more
            examples than the training set holds (see `plan_runs`).
    """
    os.makedirs(config.output_dir, exist_ok=True)
    records, plan, planned = [], None, None
    earlier = {(r["run"], r["seed"]): r for r in reusable_records(config)} if config.reuse else {}
    summary = None
    for seed in config.seed_list:
        setup = prepare_seed(
            config, data, build_model, seed, evaluator_factory or default_evaluator
        )
        if plan is None:  # P is the same for every seed: checked once, before any run
            plan = plan_runs(run_specs(config), setup.model, len(data.x_train), data.num_classes,
                             config.copies)
            planned = [(spec.name, s) for s in config.seed_list for spec in plan.specs]
            # Complete runs of earlier invocations this one does not list stay in the report.
            others = [r for key, r in earlier.items() if key not in planned]
            planned += [(r["run"], r["seed"]) for r in others]
            records += others
            for r in others:
                warning = _other_code(r)
                if warning:
                    _log(f"run {r['run']} seed {r['seed']}: kept in the reports from "
                         f"{config.output_dir} (--reuse){warning}")
        for spec in plan.specs:
            if (spec.name, seed) in earlier:
                _log(f"run {spec.name} seed {seed}: reusing the complete run in "
                     f"{config.output_dir} (--reuse)" + _other_code(earlier[(spec.name, seed)]))
                records.append(earlier[(spec.name, seed)])
                summary = None  # the reports must cover it too (written below)
                continue
            records.append(run_one(config, data, setup, spec, plan.sizes.get(spec.name), records))
            summary = report.write_reports(
                config, sorted(records, key=stats.report_order), planned, plan.skipped)
    if summary is None:  # runs reused after the last report (or every run)
        summary = report.write_reports(
            config, sorted(records, key=stats.report_order), planned, plan.skipped)
    _log(f"Wrote {config.output_dir}/summary.md")
    print(report.summary_markdown(summary), flush=True)
    return records, summary
