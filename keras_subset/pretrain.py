"""`pretrain`: fit a subset of the training set, or a sequence of growing subsets, before training on all of it.

One subset (`growth=None`) is the idea of Spörer et al. (KDIR 2024): the minimum of
a subset whose overdetermination ratio Q = K*M/P clearly exceeds 1 approximates the
full set's. Progressive subsets (`growth > 1`) follow Ada Newton (Eisen, Mokhtari,
Ribeiro 2017) and the sample-growing L-BFGS of Byrd et al. (2012) and Bollapragada
et al. (2018): nested subsets grow by `growth` each stage, every stage starts from
the weights (and, with L-BFGS, the curvature pairs) of the one before, and each
stage stops at its statistical accuracy instead of at its minimum, because a
small subset's cross-entropy minimum lies at ever larger weights and fits the
subset, not the data.

The statistical-accuracy rule: every `check_every` L-BFGS iterations (every epoch
with a Keras optimizer) the loss is measured on examples outside the stage's
subset: the next stage's new examples (at most as many as the subset holds). The
stage ends when that held-out loss has not improved by `check_tolerance`
(relative) for `patience` checks in a row, and the model keeps the weights of
the best held-out loss. The optimizer's own limits (`max_iterations`,
`max_evaluations`, tolerances; `epochs`) cap every stage. A stage with no example
outside it (the full training set) runs to those limits.

The defaults come from a measurement on Fashion-MNIST with a 784-32-10 MLP
(P = 25,450), stages from Q = 1 doubling to the 60,000 examples, three seeds:
stopping a stage at the first check that improves the held-out loss by less than
1 % (`patience=1`, `check_tolerance=1e-2`) reached full-set L-BFGS's final test
accuracy minus 0.3 pp at 0.67 and 0.73 of its cost (two seeds; 0.59 to 0.71 in
five runs with or without the carried curvature pairs or an L2 penalty of 1e-4),
where `patience=2` with 0.1 % needed 0.65 to 0.89 (three seeds). Carrying the
pairs and the penalty made no difference beyond the seeds' spread.
"""

import dataclasses
import math
import time

import numpy as np
import tensorflow as tf
import keras

from keras_subset import checks
from keras_subset import chunking
from keras_subset import data as data_lib
from keras_subset import dead_model
from keras_subset import subset as subset_lib
from keras_subset.lbfgs import LBFGS
from keras_subset.minimize import Minimization, example_free, not_fitting
from keras_subset.augment import check_copies
from keras_subset.keras_loss import KerasLoss, check_loss_argument
from keras_subset.objective import Objective, check_targets

STOP_RULES = ("held_out", "minimum", "none")


@dataclasses.dataclass
class Stage:
    """One stage of `pretrain`: one subset fitted.

    Attributes:
        size: K, examples in the subset.
        ratio: Its overdetermination ratio Q = K*(1 + copies)*M/P: the
            augmented copies count as examples.
        iterations: L-BFGS iterations (or minibatch steps of a Keras optimizer).
        evaluations: Full-subset objective evaluations (L-BFGS, line searches
            and the stage's starting point included), or epochs of a Keras
            optimizer.
        loss: The subset's loss at the weights the stage ended with (weight
            decay included when it is on).
        held_out_loss: The loss on the held-out check examples there, or `None`
            when the stage had none.
        held_out_size: The number of held-out check examples.
        reason: Why the stage ended, in words.
        seconds: Wall-clock seconds of the stage.
        example_gradients: Examples through a forward and backward pass:
            `evaluations * size * (1 + copies)` for L-BFGS, `epochs * size` for a
            Keras optimizer.
        example_forwards: Examples through a forward pass only (held-out checks,
            their copies included, and the dead-model check of a stage whose end
            claims a minimum: up to 256).
        copies: Augmented copies fitted with every subset example.
        dead_model: Whether the stage ended at a dead model: its outputs the same for
            every example checked (`keras_subset.dead_model`; a `DeadModelWarning` said so).
            Checked only where its end claims a minimum; `False` elsewhere.
    """

    size: int
    ratio: float
    iterations: int
    evaluations: int
    loss: float
    held_out_loss: float
    held_out_size: int
    reason: str
    seconds: float
    example_gradients: int
    example_forwards: int
    copies: int = 0
    dead_model: bool = False


@dataclasses.dataclass
class PretrainResult:
    """What `pretrain` did.

    Attributes:
        stages: One `Stage` per subset, smallest first.
        example_gradients: The training cost: examples through a forward and
            backward pass, summed over the stages (every L-BFGS evaluation, line
            searches included).
        example_forwards: Examples through a forward pass only (the held-out
            checks of the stage rule, and the stages' dead-model checks).
        seconds: Wall-clock seconds of the whole call.
        initial_loss: The first subset's loss at the starting weights.
        subset_indices: The sorted indices of the last stage's subset.
        num_examples: N, the size of the training set given.
        q_full: The overdetermination ratio of all N examples given (with their
            copies): Q_full = N*(1 + copies)*M/P.
        stopped_by_callback: Whether a callback ended the call early by setting
            `model.stop_training` (as `keras.callbacks.EarlyStopping` does in `fit`).
    """

    stages: list
    example_gradients: int
    example_forwards: int
    seconds: float
    initial_loss: float
    subset_indices: np.ndarray
    num_examples: int
    q_full: float = None
    stopped_by_callback: bool = False

    @property
    def loss(self):
        """The last stage's subset loss."""
        return self.stages[-1].loss

    def as_logs(self, prefix=""):
        """The figures as a flat dict of numbers (for Keras `logs`)."""
        last = self.stages[-1]
        q_full = {} if self.q_full is None else {f"{prefix}q_full": self.q_full}
        return {
            f"{prefix}loss": last.loss,
            f"{prefix}initial_loss": self.initial_loss,
            f"{prefix}stages": len(self.stages),
            f"{prefix}iterations": sum(s.iterations for s in self.stages),
            f"{prefix}evaluations": sum(s.evaluations for s in self.stages),
            f"{prefix}example_gradients": self.example_gradients,
            f"{prefix}example_forwards": self.example_forwards,
            f"{prefix}seconds": self.seconds,
            f"{prefix}subset_size": last.size,
            f"{prefix}ratio": last.ratio,
            **q_full,
        }


def stage_sizes(first, last, growth):
    """The subset sizes of the stages: `first`, then times `growth` (rounded up) until `last`.

    Args:
        first: The first subset's size.
        last: The last subset's size (>= `first`); ignored when `growth` is `None`.
        growth: The factor between stages, > 1, or `None` for one stage.

    Returns:
        A list of increasing ints ending with `last` (or `[first]`).
    """
    if growth is None:
        return [first]
    sizes = [first]
    while sizes[-1] < last:
        sizes.append(min(last, max(sizes[-1] + 1, math.ceil(sizes[-1] * growth))))
    return sizes


def pretrain(
    model,
    x,
    y=None,
    *,
    sample_weight=None,
    class_weight=None,
    loss=None,
    augment=None,
    copies=0,
    size=None,
    fraction=None,
    ratio=None,
    growth=None,
    max_size=None,
    max_fraction=None,
    max_ratio=None,
    strategy="random",
    optimizer=None,
    epochs=None,
    batch_size=32,
    seed=None,
    num_outputs=None,
    weight_decay=0.0,
    stop_rule="held_out",
    check_every=5,
    patience=1,
    check_tolerance=1e-2,
    carry_history=True,
    training=None,
    callbacks=None,
    verbose=0,
):
    """Fits a subset of the training data, or nested growing subsets, before training on all of it.

    The first subset's size is given by exactly one of `size`, `fraction` or
    `ratio` (the overdetermination ratio Q = K*M/P: K examples, M outputs per
    example, P trainable parameters). With `growth=None` that one subset is
    fitted. With `growth > 1` the subsets are nested prefixes of one random (or
    class-balanced) order of the examples, each `growth` times the previous one
    (rounded up), up to the size given by at most one of `max_size`,
    `max_fraction` or `max_ratio` (default: all the examples). Each stage starts
    from the weights the previous one ended with; with L-BFGS
    (`line_search="initial_step"`) and `carry_history=True` also from its
    curvature pairs.

    Each stage with examples outside it stops at its statistical accuracy (see
    the module docstring): with `stop_rule="held_out"` when the loss on the next
    stage's new examples stops improving, keeping the weights of its best value.
    With `stop_rule="minimum"` each such stage is fitted to its own minimum, as
    the paper fits its subset: it ends when its own loss improved by less than
    `check_tolerance` (relative) over `check_every` iterations, `patience`
    times in a row (no held-out examples are passed); it is not the default
    because the Q-curve (docs/results_q_curve.md) measured it worse: on
    Fashion-MNIST at Q_full = 255.8 a subset of a quarter of the set or less
    needed more iterations to reach its own minimum than the full set needed
    to level off, and the paper's protocol built on it never reached the
    full set's target there, where `"held_out"` saved half (three seeds).
    With `stop_rule="none"` every stage runs to the optimizer's limits. The
    stage on all the examples always runs to the optimizer's limits. The model
    ends with the weights of the last stage.

    Whether it can save compute: a subset matches the full set only from some
    Q* (256 where this library's benchmarks measured one, with the subset at
    its minimum and a levelled full-set run: Fashion-MNIST's Q-curve, one
    seed; on CIFAR-10's a subset at Q = 128 came within 0.3 pp in one seed of
    three, not on average; none fitted to its minimum came within 0.3 pp at
    Q = 32 or below), so a subset's evaluations cost about Q*/Q_full of the
    full set's and the saving is bounded near Q_full / Q*, where Q_full =
    N*M/P of all the examples given
    (`PretrainResult.q_full`, printed first with `verbose`). Below
    Q_full = 114.1, the smallest at which this library's benchmarks measured
    a saving of half against full-set L-BFGS run to its minimum (MNIST's
    `cpu`-preset CNN: 0.154-0.360 of its cost over three seeds;
    `keras_subset.subset.SAVING_Q_FULL`, docs/results_no_augmentation.md,
    docs/results_q_curve.md), a `SavingWarning` says that subset pretraining
    is unlikely to save compute; it never changes what is done. Above it a
    saving is not assured: on Fashion-MNIST the Q-curve measured none on
    average at Q_full = 542.5 and none in every seed at 1111.1, where a
    subset's test accuracy would come within 0.3 pp of the full set's only at
    Q of the order of Q_full, nor on CIFAR-10 in every seed at 646.0.

    A callback that sets `model.stop_training = True` (as
    `keras.callbacks.EarlyStopping` does in `fit`) ends the call after the
    current segment: the stage ends there and no later stage runs. The flag
    is put back as it was before the call, so a `fit` that runs `pretrain`
    from a callback goes on.

    An error in a stage (one a later, larger subset meets first, as a label
    outside the model's outputs behind a custom loss) puts back the weights the
    call started with, and its message says so; NaN or Inf in `x`, `y` or the
    weights is refused before any stage (the message names the first such
    example).

    Ctrl-C (`KeyboardInterrupt`) ends the current stage in the same way, within
    about a second or one L-BFGS iteration (one minibatch step of a Keras
    optimizer): the stage keeps its weights as its rule says, no later stage
    runs, and the `KeyboardInterrupt` propagates, its message saying where it
    stopped and its `result` attribute holding the `PretrainResult` of the
    stages so far (the interrupted one last), or `None` before any.

    A stage whose end claims a minimum (L-BFGS converged or its line search
    found no decrease left, or `stop_rule="minimum"`'s plateau) is checked for
    a dead model: the outputs of its first 256 examples all the same (a layer
    whose units the first steps switched off, which L-BFGS reports as
    converged). One found says so: the stage's `dead_model` is `True`, its
    `reason` ends "a dead model, not a minimum", and one `DeadModelWarning`
    per call names the first such stage (`keras_subset.dead_model`). The
    check's forward pass counts in the stage's `example_forwards`; nothing
    else changes.

    Batch normalisation and dropout: with `training=None` the subset objective
    runs the model in training mode when it has `BatchNormalization` or
    `Dropout` layers (batch statistics as `fit` uses them, fixed dropout masks
    so the objective stays deterministic), and every `BatchNormalization`
    layer's moving statistics are set to the population statistics of the last
    subset at the end, so `fit` and inference continue from consistent
    statistics. `training=False` evaluates in inference mode throughout.

    Args:
        model: A compiled (with a loss), built Keras model.
        x: Inputs: arrays, tensors (or a list/dict of them), a Python list of
            numbers, or a source of batches of `(x, y)` or `(x, y,
            sample_weight)` (a finite `tf.data.Dataset`, a
            `keras.utils.PyDataset`, a generator that ends), as
            `LBFGS.minimize` takes them.
        y: Targets (`None` when `x` is a source of batches).
        sample_weight: Optional non-negative per-example weights, of shape
            `(N,)` or `(N, 1)`.
        class_weight: Optional dict `{class index: weight}`, turned into
            per-example weights as `model.fit` does (not together with
            `sample_weight`; one output only).
        loss: A loss (name, function, `keras.losses.Loss`, or a list/dict of
            them for several outputs) to fit instead of the compiled one;
            by default the compiled loss, exactly as `model.evaluate`
            computes it (`compute_loss`, `loss_weights`, masks,
            `model.losses`).
        augment: A Keras random preprocessing layer (or a `keras.Sequential`
            of them), or a function `(images, seed) -> images`, that makes the
            augmented copies (see `LBFGS.minimize`).
        copies: Augmented copies fitted with every subset example (L-BFGS
            only; 0: none). Copy j of example i is a fixed function of
            `(seed, i, j)`, i its position in `x`, so the stages stay nested
            on the extended set; Q and the cost count the copies, and the
            held-out checks use the held-out examples with their copies.
        size, fraction, ratio: The first subset's size (exactly one): `size`
            and `fraction` in original examples; `ratio` is Q of the subset
            with its copies, so K = ceil(ratio * P / (M * (1 + copies))).
        growth: The factor between stage sizes (> 1), or `None` for one subset.
        max_size, max_fraction, max_ratio: The last stage's size (at most one;
            only with `growth`; `max_ratio` counts the copies as `ratio` does);
            default: every example.
        strategy: `"random"` or `"stratified"` (class-balanced subsets; needs
            class labels as `y`).
        optimizer: A `keras_subset.LBFGS` (default `LBFGS()`), or a Keras
            optimizer instance or name, run for at most `epochs` epochs of
            minibatches of `batch_size` per stage. It must not be the model's
            compiled optimizer.
        epochs: Epochs per stage for a Keras optimizer; `None` with L-BFGS.
        batch_size: Minibatch size for a Keras optimizer.
        seed: Seed of the subset order and the minibatch shuffling.
        num_outputs: M, when the model's output shape does not tell it (only
            needed with `ratio` and `max_ratio`).
        weight_decay: L2 penalty `weight_decay / 2 * |w|^2` added to the
            objective of every stage but one on all the examples (L-BFGS only;
            for a Keras optimizer set its own `weight_decay`). It gives a small
            subset's cross-entropy a finite minimum.
        stop_rule: `"held_out"` (the statistical-accuracy stop), `"minimum"`
            (each stage below all the examples to its own loss's plateau) or
            `"none"` (each stage to the optimizer's limits).
        check_every: L-BFGS iterations between checks of the stage rule (a
            Keras optimizer checks after every epoch).
        patience: Checks without improvement that end a stage.
        check_tolerance: The relative decrease of the checked loss (held-out
            or, with `"minimum"`, the stage's own) that counts as an improvement.
        carry_history: Whether each L-BFGS stage starts with the previous
            stage's curvature pairs.
        training: Whether the subset objective runs the model in training mode;
            `None`: when it has `BatchNormalization` or `Dropout` layers.
        callbacks: `keras.callbacks.Callback`s told after every segment (every
            `check_every` L-BFGS iterations, every epoch of a Keras optimizer):
            `on_epoch_end(segment, logs)` with `stage`, `subset_size`, `ratio`,
            `stage_iterations`, `stage_evaluations`, `example_gradients` and
            `example_forwards` (cumulative over the stages), `loss` (the
            subset's) and `stage_end`; the model holds the current weights
            then. After each stage one more call, with `stage_end=True` and
            `held_out_loss`, reports the weights the stage kept, at the same
            cost as its last segment.
        verbose: 0 silent, 1 one line per stage and progress bars, 2 one line
            per stage.

    Returns:
        A `PretrainResult`.

    Example:

    ```python
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    result = keras_subset.pretrain(model, x, y, ratio=1.0, growth=2.0, max_fraction=0.5, seed=0)
    for stage in result.stages:
        print(stage.size, stage.ratio, stage.evaluations, stage.loss, stage.reason)
    model.fit(x, y, epochs=2)  # the compiled optimizer goes on from the pretrained weights
    ```
    """
    start_time = time.perf_counter()
    plan = _Plan(
        model, x, y, sample_weight, class_weight, loss, augment, copies, size, fraction, ratio, growth, max_size, max_fraction, max_ratio, strategy,
        optimizer, epochs, batch_size, seed, num_outputs, weight_decay, stop_rule, check_every, patience,
        check_tolerance, carry_history, training, callbacks, verbose,
    )
    if verbose:
        with_copies = f" with {plan.copies} copies each" if plan.copies else ""
        print(
            f"Subset pretraining: N = {plan.n} examples{with_copies}, P = {plan.p} trainable parameters, "
            f"Q_full = {plan.q_full:.3g}; stages of K = {', '.join(map(str, plan.sizes))}",
            flush=True,
        )
    stop_training = getattr(model, "stop_training", False)
    model.stop_training = False
    initial_weights = model.get_weights()
    try:
        _run_stages(plan, verbose)
    except KeyboardInterrupt as interrupt:
        plan.interrupt = interrupt  # outside a stage's iterations: the stages finished stand
    except Exception as error:
        # What only a later stage can meet (a label or loss its subset holds first): no result is
        # returned, so no half-trained weights are left either.
        model.set_weights(initial_weights)
        if isinstance(error, tf.errors.InvalidArgumentError):
            error = not_fitting(error)  # (a held-out check meets the next stage's examples first)
        elif not isinstance(error, ValueError):
            raise
        raise ValueError(
            f"{error} (in stage {len(plan.done) + 1}/{len(plan.sizes)}; the model's weights were put back to "
            "those pretrain started with)"
        ) from error
    finally:
        stopped_by_callback = bool(model.stop_training)
        model.stop_training = stop_training
    stages = plan.done
    result = None if not stages else PretrainResult(
        stages=stages,
        example_gradients=sum(s.example_gradients for s in stages),
        example_forwards=sum(s.example_forwards for s in stages),
        seconds=time.perf_counter() - start_time,
        initial_loss=plan.initial_loss,
        subset_indices=np.sort(plan.order[: stages[-1].size]),
        num_examples=plan.n,
        q_full=plan.q_full,
        stopped_by_callback=stopped_by_callback,
    )
    if plan.interrupt is not None:
        raise _interrupted(plan, result)
    return result


def _interrupted(plan, result):
    """`plan`'s `KeyboardInterrupt`, its message saying where `pretrain` stopped, `result` the stages so far."""
    stages = plan.done
    if stages and stages[-1].reason.startswith("interrupted"):
        last = stages[-1]
        where = (
            f"in stage {len(stages)}/{len(plan.sizes)} (K = {last.size}) after {last.iterations} iterations: the "
            f"model holds the weights that stage kept (subset loss {last.loss:.6g}), after {len(stages) - 1} "
            "finished stage(s)"
        )
    elif stages:
        where = (
            f"before the iterations of stage {len(stages) + 1}/{len(plan.sizes)}: the model holds the weights "
            f"of the {len(stages)} finished stage(s)"
        )
    else:
        where = "before the first stage's iterations: the model holds the weights it started with"
    held = "; the `result` attribute of this KeyboardInterrupt holds the PretrainResult so far" if result else ""
    plan.interrupt.args = (f"pretrain interrupted {where}{held}.",)
    plan.interrupt.result = result
    return plan.interrupt


def _run_stages(plan, verbose):
    """The stages of `plan`, smallest first, into `plan.done`, until the last, a callback's
    `model.stop_training` or a `KeyboardInterrupt` (`plan.interrupt`) in a stage's iterations."""
    if plan.callbacks:
        plan.callbacks.on_train_begin()
    previous = None
    for k, stage_size in enumerate(plan.sizes):
        stage, previous, first_loss = plan.run_stage(k, stage_size, previous)
        plan.initial_loss = first_loss if plan.initial_loss is None else plan.initial_loss
        if verbose:
            print(
                f"Stage {k + 1}/{len(plan.sizes)}: K = {stage.size}, Q = {stage.ratio:.3g}, "
                f"{stage.iterations} iterations, {stage.evaluations} evaluations, loss {stage.loss:.4g}"
                + ("" if stage.held_out_loss is None else f", held-out loss {stage.held_out_loss:.4g}")
                + f"; {stage.reason}",
                flush=True,
            )
        if plan.model.stop_training or plan.interrupt is not None:
            break
    plan.finish()
    if plan.callbacks:
        plan.callbacks.on_train_end()


class _Plan:
    """The checked arguments of one `pretrain` call, its stage sizes and subset order, and the stages' work."""

    def __init__(
        self, model, x, y, sample_weight, class_weight, loss, augment, copies, size, fraction, ratio, growth, max_size, max_fraction, max_ratio,
        strategy, optimizer, epochs, batch_size, seed, num_outputs, weight_decay, stop_rule, check_every,
        patience, check_tolerance, carry_history, training, callbacks, verbose,
    ):
        # Everything that needs neither the data nor the model is checked first.
        check_arguments(
            size=size, fraction=fraction, ratio=ratio, growth=growth, max_size=max_size,
            max_fraction=max_fraction, max_ratio=max_ratio, strategy=strategy, optimizer=optimizer,
            epochs=epochs, batch_size=batch_size, seed=seed, num_outputs=num_outputs, weight_decay=weight_decay,
            stop_rule=stop_rule, check_every=check_every, patience=patience, check_tolerance=check_tolerance,
            carry_history=carry_history, training=training, verbose=verbose, class_weight=class_weight, loss=loss,
            augment=augment, copies=copies,
        )
        optimizer = resolve_optimizer(optimizer)
        self.augment, self.copies = augment, int(copies)
        if optimizer is getattr(model, "optimizer", None):
            raise ValueError("`optimizer` must not be the model's compiled optimizer: pass a new instance.")
        self.p = subset_lib.num_trainable_parameters(model)  # refuses an unbuilt model
        self.x, self.y, self.sample_weight = data_lib.to_arrays(x, y, sample_weight)
        if self.y is None:
            raise ValueError("`y` is None: pass the training targets (or a dataset of (x, y)).")
        self.sample_weight = data_lib.apply_class_weight(self.y, self.sample_weight, class_weight)
        self.loss = loss
        KerasLoss(model, loss)  # no loss at all is refused here, before any work
        check_targets(model, self.y, loss)
        self.n = data_lib.num_examples(self.x)
        first = subset_lib.resolve_subset_size(self.n, size, fraction, ratio, model, num_outputs, copies=self.copies)
        last = self.n
        if any(v is not None for v in (max_size, max_fraction, max_ratio)):
            last = subset_lib.resolve_subset_size(
                self.n, max_size, max_fraction, max_ratio, model, num_outputs, names=("max_size", "max_fraction", "max_ratio"),
                copies=self.copies,
            )
            if last < first:
                raise ValueError(
                    f"The last stage ({last} examples, from max_size/max_fraction/max_ratio) is smaller than "
                    f"the first ({first}): it must be at least as large."
                )
        self.sizes = stage_sizes(first, last, growth)
        subset_lib.warn_if_underdetermined(model, first * (1 + self.copies), num_outputs)
        self.q_full = subset_lib.overdetermination_ratio(model, self.n * (1 + self.copies), num_outputs)
        subset_lib.warn_if_no_saving(self.q_full)
        self.model, self.num_outputs = model, num_outputs
        if strategy == "stratified" and not isinstance(self.y, np.ndarray):
            raise ValueError(
                'strategy="stratified" needs the class labels of one output (one array `y`); with several '
                'outputs use strategy="random".'
            )
        # The number of examples, not len(y): y may be a list or dict of several outputs' targets.
        self.order = subset_lib.nested_order(self.y if strategy == "stratified" else self.n, strategy, seed)
        self.optimizer, self.epochs, self.batch_size, self.seed = optimizer, epochs, int(batch_size), seed
        self.weight_decay = float(weight_decay)
        self.stop_rule, self.check_every, self.patience = stop_rule, int(check_every), int(patience)
        self.check_tolerance, self.carry_history, self.verbose = float(check_tolerance), carry_history, verbose
        if training is None:
            training = any(
                isinstance(layer, (keras.layers.BatchNormalization, keras.layers.Dropout))
                for layer in chunking.all_layers(model)
            )
        self.training = bool(training)
        self.last_subset = None
        self._options = {}  # one LBFGS per (training, weight decay), so its traced graphs are reused
        self._value_functions = {}
        self.callbacks = (
            keras.callbacks.CallbackList(list(callbacks), model=model) if callbacks else None
        )
        self.done, self.cost, self.segments = [], [0, 0], 0
        self.initial_loss = None  # the first subset's loss at the starting weights
        self.interrupt = None  # a KeyboardInterrupt (Ctrl-C) that ended a stage's iterations

    # -- one stage -------------------------------------------------------------------------
    def run_stage(self, k, size, previous):
        """Fits the stage-`k` subset; returns `(Stage, what the next stage may warm-start from, first loss)`."""
        start = time.perf_counter()
        indices = np.sort(self.order[:size])
        subset = tuple(data_lib.take(a, indices) for a in (self.x, self.y, self.sample_weight))
        self.last_subset = subset
        held_out, check_indices = None, None
        if self.stop_rule == "held_out" and size < self.n:
            following = self.sizes[k + 1] if k + 1 < len(self.sizes) else self.n
            check_size = min(max(following, size + 1) - size, size, self.n - size)
            check_indices = np.sort(self.order[size : size + check_size])
            held_out = tuple(data_lib.take(a, check_indices) for a in (self.x, self.y, self.sample_weight))
        decay = self.weight_decay if size < self.n else 0.0
        if isinstance(self.optimizer, LBFGS):
            figures, previous, first_loss = self._lbfgs_stage(subset, held_out, decay, previous, indices, check_indices)
        else:
            figures, first_loss = self._keras_stage(subset, held_out)
        # A stage whose end claims a minimum is checked for a dead model (its forwards counted);
        # one found says so in its reason (and once in a warning).
        dead = False
        if figures.pop("claims_minimum"):
            dead, forwarded = dead_model.examine(self.model, subset[0])
            figures["example_forwards"] += forwarded
        if dead:
            figures["reason"] += "; " + dead_model.REASON
            if not any(s.dead_model for s in self.done):
                # stacklevel 4: the caller of `pretrain` (through `_run_stages` and this method)
                dead_model.warn_dead(f"pretrain's stage {k + 1}/{len(self.sizes)}", forwarded, stacklevel=4)
        extended = size * (1 + self.copies)  # examples in the objective, augmented copies included
        q = subset_lib.overdetermination_ratio(self.model, extended, self.num_outputs)
        self.cost[0] += figures["evaluations_cost"] * extended
        self.cost[1] += figures["example_forwards"]
        stage = Stage(
            size=size,
            ratio=q,
            seconds=time.perf_counter() - start,
            example_gradients=figures["evaluations_cost"] * extended,
            copies=self.copies,
            dead_model=dead,
            held_out_size=0 if held_out is None else data_lib.num_examples(held_out[0]),
            **{key: figures[key] for key in ("iterations", "evaluations", "loss", "held_out_loss", "reason", "example_forwards")},
        )
        # The stage's end, at the weights it kept (a held-out stop goes back to its best check).
        self._report(
            size, stage.iterations, stage.evaluations, 0, 0, stage.loss,
            stage_end=True, held_out_loss=stage.held_out_loss,
        )
        self.done.append(stage)
        return stage, previous, first_loss

    def _lbfgs_stage(self, subset, held_out, decay, previous, indices, check_indices):
        size = data_lib.num_examples(subset[0])
        options = self._lbfgs_options(decay)
        history = previous if self.carry_history else None
        run = Minimization(
            options, self.model, *subset, self.loss, history=history, augment=self.augment, copies=self.copies,
            seed=self.seed, ids=indices,
        )
        checker = None if held_out is None else _HeldOut(
            run.objective, held_out, run.run.value, ids=check_indices
        )
        progress = keras.utils.Progbar(options.max_iterations, verbose=self.verbose, unit_name="iteration") if self.verbose == 1 else None
        plateau = self._plateau(size, run.initial_value)
        stopped_by_rule = stopped_by_callback = False
        # Segments of `check_every` iterations: a check of the stage rule (held-out examples, or the
        # stage's own loss) and a report to the callbacks after each; without either, one segment.
        checked = checker is not None or plateau is not None or self.callbacks
        segment = self.check_every if checked else options.max_iterations
        try:
            while not run.done:
                run.advance(min(options.max_iterations, run.iterations + segment))
                if progress is not None:
                    progress.update(run.iterations, values=[("loss", run.best_value)])
                bad_checks = 0
                if checker is not None:
                    bad_checks = checker.check(run.best_position, run.best_value, run.iterations, self.check_tolerance)
                if plateau is not None:
                    bad_checks = plateau.check(run.best_value)
                if self.callbacks:
                    run.assign_best()  # the callbacks see the current weights
                forwards = 0 if checker is None else checker.forwards
                self._report(
                    size, run.iterations, run.evaluations, run.evaluations * size * (1 + self.copies), forwards,
                    run.best_value,
                )
                if self.model.stop_training:
                    stopped_by_callback = True
                    break
                if bad_checks >= self.patience:
                    stopped_by_rule = True
                    break
        except KeyboardInterrupt as interrupt:
            # Ctrl-C: the stage ends here as if stopped (its kept weights, its figures), no later
            # stage runs, and `pretrain` raises the interrupt again.
            self.interrupt, run.interrupted = interrupt, True
        if checker is not None and checker.last_iteration != run.iterations:
            checker.check(run.best_position, run.best_value, run.iterations, self.check_tolerance)
        result = run.finish()
        figures = {
            "iterations": run.iterations,
            "evaluations": run.evaluations,
            "evaluations_cost": run.evaluations,
            "loss": result.loss,
            "held_out_loss": None,
            "reason": result.reason,
            "example_forwards": 0,
            # L-BFGS's own end at a minimum, or the plateau of stop_rule="minimum"; a cap, a
            # held-out stop, a callback or Ctrl-C claims none.
            "claims_minimum": not run.interrupted and not stopped_by_callback and (
                plateau is not None and stopped_by_rule
                or not stopped_by_rule and (result.converged or result.failed)),
        }
        if checker is not None:
            if checker.best_iteration != run.iterations:
                # Keep the weights where the held-out loss was lowest.
                run.objective.assign(checker.best_position)
                figures["loss"] = checker.best_subset_loss
                if self.training:
                    run.objective.refresh_batch_norm_statistics(run.tensors[0])
            if stopped_by_rule:
                figures["reason"] = (
                    f"statistical accuracy: the held-out loss did not improve by {self.check_tolerance:g} for "
                    f"{self.patience} checks; kept the weights of iteration {checker.best_iteration}"
                )
            figures["held_out_loss"] = checker.best_value
            figures["example_forwards"] = checker.forwards
        if plateau is not None and stopped_by_rule:
            figures["reason"] = plateau.reason(run.iterations)
        if stopped_by_callback:
            figures["reason"] = f"stopped by a callback (model.stop_training) after {run.iterations} iterations"
        return figures, run, run.initial_value

    def _plateau(self, size, value):
        """The check of `stop_rule="minimum"` for a stage of `size` examples (`None` on all of them)."""
        if self.stop_rule != "minimum" or size >= self.n:
            return None
        return _Plateau(value, self.check_tolerance, self.check_every, self.patience)

    def _report(self, size, iterations, evaluations, example_gradients, example_forwards, loss, **extra):
        """Tells the callbacks where the current stage stands (an "epoch" of `pretrain` is a segment)."""
        if not self.callbacks:
            return
        logs = {
            "stage": len(self.done),
            "subset_size": size,
            "ratio": subset_lib.overdetermination_ratio(self.model, size * (1 + self.copies), self.num_outputs),
            "stage_iterations": iterations,
            "stage_evaluations": evaluations,
            "example_gradients": self.cost[0] + example_gradients,
            "example_forwards": self.cost[1] + example_forwards,
            "loss": loss,
            "stage_end": False,
            **extra,
        }
        self.callbacks.on_epoch_end(self.segments, logs)
        self.segments += 1

    def _value_function(self, objective):
        """The compiled forward-only loss of `objective` (a Keras-optimizer stage's), traced once per objective."""
        if id(objective) not in self._value_functions:
            self._value_functions[id(objective)] = (objective, example_free(objective.value, 1))
        return self._value_functions[id(objective)][1]

    def _lbfgs_options(self, weight_decay):
        """The user's LBFGS, or one copy of it per (training mode, weight decay) that differs."""
        config = self.optimizer.get_config()
        config.update(training=self.training, weight_decay=weight_decay)
        if config == self.optimizer.get_config():
            return self.optimizer
        key = (self.training, weight_decay)
        if key not in self._options:
            self._options[key] = LBFGS.from_config(config)
        return self._options[key]

    def _keras_stage(self, subset, held_out):
        """Minibatch epochs of a Keras optimizer over the subset, with a held-out check after each."""
        model, optimizer = self.model, self.optimizer
        optimizer.build(model.trainable_variables)
        x, y, w = subset
        objective = Objective(model, loss=self.loss, chunk_size="auto", training=False)
        keras_loss = objective.keras_loss

        @tf.function
        def step(xb, yb, wb):
            # One minibatch step as `fit` takes it: Keras's loss of the batch (compute_loss, model.losses).
            with tf.GradientTape() as tape:
                y_pred = model(xb, training=True)
                value = keras_loss.chunk(xb, yb, y_pred, wb, tf.ones([]), None, True)
            gradients = tape.gradient(value, model.trainable_variables)
            optimizer.apply(gradients, model.trainable_variables)
            return value

        tensors = tuple(None if a is None else tf.nest.map_structure(data_lib.to_tensor, a) for a in subset)
        tensors = objective.data(*tensors)
        first_loss = float(objective.value(objective.position(), *tensors))
        checker = None if held_out is None else _HeldOut(objective, held_out, self._value_function(objective))
        # tf.data reads a list as one tensor: the targets of several outputs go in as a tuple.
        as_tuples = lambda a: tuple(as_tuples(b) for b in a) if isinstance(a, list) else a
        parts = (as_tuples(x), as_tuples(y)) + (() if w is None else (w,))
        size = data_lib.num_examples(x)
        dataset = tf.data.Dataset.from_tensor_slices(parts).shuffle(size, seed=self.seed, reshuffle_each_iteration=True)
        dataset = dataset.batch(self.batch_size)
        steps, epochs_run, reason = 0, 0, f"epochs ({self.epochs}) done"
        at_plateau = False  # stop_rule="minimum" stopped it: the one end that claims a minimum
        plateau = self._plateau(size, first_loss)
        if plateau is not None:
            plateau.every, plateau.unit = 1, "epoch(s)"
        try:
            for epoch in range(self.epochs):
                for batch in dataset:
                    step(batch[0], batch[1], batch[2] if len(batch) > 2 else None)
                    steps += 1
                epochs_run += 1
                measured = checker or plateau or self.callbacks
                subset_loss = float(objective.value(objective.position(), *tensors)) if measured else None
                bad_checks = 0
                if checker is not None:
                    bad_checks = checker.check(objective.position(), subset_loss, epoch + 1, self.check_tolerance)
                if plateau is not None:
                    bad_checks = plateau.check(subset_loss)
                forwards = 0 if checker is None else checker.forwards
                self._report(size, steps, epochs_run, epochs_run * size, forwards, subset_loss)
                if self.model.stop_training:
                    reason = f"stopped by a callback (model.stop_training) after {epochs_run} epochs"
                    break
                if bad_checks >= self.patience:
                    if checker is not None:
                        reason = (
                            f"statistical accuracy: the held-out loss did not improve by {self.check_tolerance:g} "
                            f"for {self.patience} epochs; kept the weights of epoch {checker.best_iteration}"
                        )
                    else:
                        reason, at_plateau = plateau.reason(epochs_run), True
                    break
        except KeyboardInterrupt as interrupt:  # as in `_lbfgs_stage`
            self.interrupt = interrupt
            reason = f"interrupted (KeyboardInterrupt) after {steps} steps ({epochs_run} epochs)"
        figures = {
            "iterations": steps,
            "evaluations": epochs_run,
            "evaluations_cost": epochs_run,
            "loss": float(objective.value(objective.position(), *tensors)),
            "held_out_loss": None,
            "reason": reason,
            "example_forwards": 0 if checker is None else checker.forwards,
            "claims_minimum": at_plateau,
        }
        if checker is not None and checker.best_position is not None:  # (none when interrupted in epoch 1)
            objective.assign(checker.best_position)
            figures.update(loss=checker.best_subset_loss, held_out_loss=checker.best_value)
        return figures, first_loss

    def finish(self):
        """Population statistics of the last subset for every BatchNormalization layer (training mode)."""
        if self.training and not isinstance(self.optimizer, LBFGS) and self.last_subset is not None:
            objective = Objective(self.model, loss=self.loss, chunk_size="auto", training=True)
            objective.refresh_batch_norm_statistics(tf.nest.map_structure(data_lib.to_tensor, self.last_subset[0]))


class _Plateau:
    """The rule of `stop_rule="minimum"`: checks in a row whose stage loss improved on the
    previous check's by less than `tolerance` (relative)."""

    def __init__(self, value, tolerance, every, patience, unit="iterations"):
        self.last, self.tolerance, self.every, self.patience = value, tolerance, every, patience
        self.unit, self.bad_checks = unit, 0

    def check(self, value):
        """Takes the stage's loss at a check; returns the checks in a row without improvement."""
        improved = math.isfinite(value) and value < self.last - self.tolerance * abs(self.last)
        self.bad_checks = 0 if improved else self.bad_checks + 1
        self.last = value
        return self.bad_checks

    def reason(self, done):
        return (
            f"its own minimum: the stage's loss improved by less than {self.tolerance:g} (relative) over "
            f"{self.every} {self.unit}, {self.patience} time(s) in a row, after {done} {self.unit}"
        )


class _HeldOut:
    """The held-out loss of the stage rule: measured at given weights, the best one kept."""

    def __init__(self, objective, held_out, value_function, ids=None):
        self.objective = objective
        tensors = tuple(None if a is None else tf.nest.map_structure(data_lib.to_tensor, a) for a in held_out)
        ids = None if objective.copies is None or ids is None else tf.constant(np.asarray(ids, np.int64))
        strategy = tf.distribute.get_strategy()
        if strategy.num_replicas_in_sync > 1:
            tensors = tuple(Objective.shard(strategy, t) for t in tensors)
            ids = None if ids is None else Objective.shard(strategy, ids)
        self.tensors = objective.data(*tensors, ids=ids)
        # Examples forwarded by one check: the held-out ones with their copies (the same objective).
        self.size = data_lib.num_examples(held_out[0]) * objective.factor
        self._value = value_function
        self.best_value, self.best_position, self.best_subset_loss, self.best_iteration = math.inf, None, None, 0
        self.bad_checks, self.forwards, self.history, self.last_iteration = 0, 0, [], None

    def check(self, position, subset_loss, iteration, tolerance):
        """Measures the held-out loss at `position`; returns the checks in a row without improvement."""
        value = float(self._value(tf.cast(position, self.objective.dtype), *self.tensors))
        self.forwards += self.size
        self.history.append((iteration, value))
        self.last_iteration = iteration
        improved = math.isfinite(value) and (
            self.best_position is None or value < self.best_value - tolerance * abs(self.best_value)
        )
        if math.isfinite(value) and (self.best_position is None or value < self.best_value):
            self.best_value, self.best_position = value, position
            self.best_subset_loss, self.best_iteration = subset_loss, iteration
        self.bad_checks = 0 if improved else self.bad_checks + 1
        return self.bad_checks


def resolve_optimizer(optimizer):
    """`LBFGS()` for `None`, `keras.optimizers.get(name)` for a name, else `optimizer` itself."""
    if optimizer is None:
        return LBFGS()
    if isinstance(optimizer, str):
        return keras.optimizers.get(optimizer)
    return optimizer


def check_arguments(
    *, size, fraction, ratio, growth, max_size, max_fraction, max_ratio, strategy, optimizer, epochs, batch_size,
    seed, num_outputs, weight_decay, stop_rule, check_every, patience, check_tolerance, carry_history, training,
    verbose, class_weight=None, loss=None, augment=None, copies=0,
):
    """Checks every argument of `pretrain` that needs neither the data nor the model; raises `ValueError`."""
    subset_lib.check_size_arguments(size, fraction, ratio)
    if loss is not None:
        check_loss_argument(loss)
    if class_weight is not None:
        data_lib.check_class_weight(class_weight)
    growth = checks.check_number("growth", growth, minimum=1, min_inclusive=False, allow_none=True)
    maxima = [v for v in (max_size, max_fraction, max_ratio) if v is not None]
    if maxima and growth is None:
        raise ValueError("`max_size`, `max_fraction` and `max_ratio` apply with `growth` only (progressive subsets).")
    if len(maxima) > 1:
        raise ValueError("Give at most one of `max_size`, `max_fraction` or `max_ratio`.")
    checks.check_int("max_size", max_size, minimum=1, allow_none=True)
    checks.check_number("max_fraction", max_fraction, minimum=0, maximum=1, min_inclusive=False, allow_none=True)
    checks.check_number("max_ratio", max_ratio, minimum=0, min_inclusive=False, allow_none=True)
    checks.check_choice("strategy", strategy, subset_lib.STRATEGIES)
    optimizer = resolve_optimizer(optimizer)
    if check_copies(augment, copies) and not isinstance(optimizer, LBFGS):
        raise ValueError(
            "`copies` applies to L-BFGS stages (fixed copies, one objective); a Keras optimizer "
            "sees augmentation live: put it in the model (e.g. keras.layers.RandomFlip) instead."
        )
    if isinstance(optimizer, LBFGS):
        if epochs is not None:
            raise ValueError("`epochs` applies to a Keras optimizer only; for LBFGS set `max_iterations`.")
    elif isinstance(optimizer, keras.optimizers.Optimizer):
        checks.check_int("epochs", epochs, minimum=1)
    else:
        raise ValueError(
            "`optimizer` must be a keras_subset.LBFGS, a keras.optimizers.Optimizer or an optimizer name, "
            f"got {optimizer!r}."
        )
    checks.check_int("batch_size", batch_size, minimum=1)
    checks.check_seed("seed", seed)
    checks.check_int("num_outputs", num_outputs, minimum=1, allow_none=True)
    checks.check_number("weight_decay", weight_decay, minimum=0)
    checks.check_choice("stop_rule", stop_rule, STOP_RULES)
    checks.check_int("check_every", check_every, minimum=1)
    checks.check_int("patience", patience, minimum=1)
    checks.check_number("check_tolerance", check_tolerance, minimum=0, maximum=1, max_inclusive=False)
    checks.check_bool("carry_history", carry_history)
    if training is not None:
        checks.check_bool("training", training)
    checks.check_verbose(verbose)
    return optimizer
