"""`LBFGS`: TensorFlow Probability's L-BFGS minimiser for Keras models, full batch."""

import dataclasses
import sys
import warnings

import numpy as np
import tensorflow as tf
import keras

from keras_subset import checks
from keras_subset import chunking
from keras_subset import data as data_lib
from keras_subset import dead_model
from keras_subset import stepwise
from keras_subset.minimize import Minimization, Progress
from keras_subset.objective import assign_flat, check_targets, flatten, random_preprocessing_layers

_DTYPES = ("float32", "float64")
LINE_SEARCHES = ("initial_step", "hager_zhang")


_FROZEN_SINCE_BUILT = (
    "LBFGS (model.compile route): layers were frozen (`trainable = False`) since the model was "
    "compiled with this LBFGS, whose state is a flat vector over the variables trainable then; "
    "Keras would go on training them with the step it traced. No weights were changed. Compile the "
    "model again with a new LBFGS() after freezing or unfreezing layers."
)


# Callbacks that set `model.optimizer.learning_rate`: under `LBFGS.fit` that is the compiled
# optimizer, which L-BFGS does not use (and L-BFGS has no learning rate).
_LEARNING_RATE_CALLBACKS = (keras.callbacks.ReduceLROnPlateau, keras.callbacks.LearningRateScheduler)


def _without_learning_rate_callbacks(callbacks):
    """`callbacks` less those that set a learning rate, each left out with a warning."""
    kept = []
    for callback in callbacks or []:
        if isinstance(callback, _LEARNING_RATE_CALLBACKS):
            warnings.warn(
                f"LBFGS.fit: {type(callback).__name__} has no effect on L-BFGS, whose step lengths come from "
                "its line search, not from a learning rate. It is not run, so the compiled optimizer's "
                "learning rate stays as it is; remove it (to stop early use EarlyStopping or `max_iterations`).",
                UserWarning,
                stacklevel=3,
            )
        else:
            kept.append(callback)
    return kept


def _traced_by_keras_fit():
    """`(model, data adapter)` of the Keras `model.fit` whose training step is being traced, or `(None, None)`.

    A Keras 3 optimizer is told neither the model nor the data; `fit`'s frame,
    up the stack while its step is traced, holds both (`keras.Model.fit`'s
    `self` and `epoch_iterator`). `(None, None)` in a custom training loop.
    """
    frame = sys._getframe(1)
    while frame is not None:
        if frame.f_code.co_name == "fit" and "epoch_iterator" in frame.f_locals:
            found = frame.f_locals
            return found.get("self"), getattr(found["epoch_iterator"], "data_adapter", None)
        frame = frame.f_back
    return None, None


def _warn_about_the_fit_call():
    """Warns, while `model.fit`'s step is traced, when it is not full-batch L-BFGS on fixed data."""
    model, adapter = _traced_by_keras_fit()
    with tf.init_scope():  # (a dataset's size is read eagerly, outside the step's graph)
        batches = getattr(adapter, "num_batches", None)  # batches in one pass over the data; None: unknown
    if batches is not None and batches > 1:
        warnings.warn(
            f"LBFGS (model.compile route): model.fit splits the data into {batches} batches per pass, so each "
            "L-BFGS step sees another batch: mini-batch L-BFGS, whose line search compares the losses of "
            "different batches, without L-BFGS's guarantees. For L-BFGS give all the data in one batch: "
            "model.fit(x, y, batch_size=len(x)) (Keras's default is 32), a dataset of one batch, or "
            "LBFGS().minimize / LBFGS().fit (chunked, any size).",
            UserWarning,
            stacklevel=2,
        )
    random_layers = "" if model is None else random_preprocessing_layers(model)
    if random_layers:
        warnings.warn(
            f"LBFGS (model.compile route): the model holds random preprocessing layers ({random_layers}), which "
            "model.fit redraws at every step, so the line search compares losses of differently augmented "
            "data. For augmentation with L-BFGS use LBFGS().minimize, LBFGS().fit or keras_subset.pretrain "
            "with those layers as `augment=` and `copies=` (fixed augmented copies of every example).",
            UserWarning,
            stacklevel=2,
        )


def _enclosing_xla_context():
    """The XLA context the current graph is traced in (under `jit_compile=True`), or `None`.

    Assumes XLA when TensorFlow does not say, so that no host callback is put where XLA
    cannot compile it.
    """
    get = getattr(getattr(tf, "__internal__", None), "get_enclosing_xla_context", None)
    return True if get is None else get()


def _all_trainable(variables):
    """A boolean tensor, computed as the step runs: whether every one of `variables` is still trainable."""

    def check():
        return np.bool_(all(v.trainable for v in variables))

    flag = tf.numpy_function(check, [], tf.bool, stateful=True)
    flag.set_shape([])
    return flag


@keras.saving.register_keras_serializable(package="keras_subset")
class LBFGS(keras.optimizers.Optimizer):
    """Full-batch L-BFGS for Keras models, with TensorFlow Probability's line search at its core.

    Minimises a model's loss over all given examples at once, using the exact
    loss and gradient of the whole set (computed `chunk_size` examples at a
    time). By default (`line_search="initial_step"`) each iteration first
    evaluates its initial step and keeps it when it meets the Wolfe conditions,
    which costs one evaluation; otherwise one interpolated or extrapolated
    trial, then TFP's Hager-Zhang line search from the points already evaluated
    (`keras_subset.lbfgs_loop`). `line_search="hager_zhang"` runs TFP's
    `lbfgs_minimize` as it is (about three evaluations per iteration). The
    whole optimisation runs as compiled TensorFlow graphs (on the GPU when
    TensorFlow sees one); Python is only re-entered every `progress_every`
    iterations when `verbose` shows progress.

    The objective is the loss `model.evaluate` computes on one batch holding
    every example: Keras's `compute_loss` for the compiled model (several
    outputs, `loss_weights`, masks, `sample_weight`/`class_weight`, a
    `compute_loss` override) plus `model.losses` (regularisation), or `loss=`
    instead of the compiled loss; summed over chunks of `chunk_size`
    examples exactly (`keras_subset.keras_loss`). By default the model
    is evaluated in inference mode (dropout off, batch normalisation using its
    fixed moving statistics): the objective is deterministic, as a line search
    needs, and the chunked value equals the single-pass one. With
    `training=True`, see `keras_subset.objective.Objective`.

    If the loss or gradient becomes non-finite or the line search finds no
    decrease, L-BFGS restarts from the best point found with a fresh history,
    at most `max_restarts` times. The model always ends holding the best
    (lowest-loss, finite) weights found; it is never left with NaN weights.

    It is also a Keras optimizer: after `model.compile(optimizer=LBFGS())`,
    `model.fit(x, y, batch_size=len(x), epochs=E)` trains with L-BFGS, one
    full-batch loss-and-gradient evaluation per training step, the line
    search spread over the steps (see `apply`); `fit_results` holds its
    figures. `minimize`, `fit`, `max_iterations`, `chunk_size`, `jit_compile`, `training`,
    `x_tolerance`, `f_relative_tolerance`, `max_restarts` and
    `progress_every` belong to the TFP route; `model.fit` computes the loss
    as it always does (with `batch_size` examples per pass).

    Args:
        max_iterations: Maximum L-BFGS iterations.
        num_correction_pairs: Past position/gradient differences kept for the
            inverse-Hessian estimate.
        tolerance: Stop when the largest absolute gradient entry is at most this.
        x_tolerance: Stop when the position changes by at most this (largest
            absolute entry).
        f_relative_tolerance: Stop when the loss changes by at most this times
            its magnitude (|loss| taken every `progress_every` iterations, so it
            works for negative losses too, unlike TFP's own check).
        max_line_search_iterations: Maximum line-search iterations per L-BFGS
            iteration (of the Hager-Zhang search; of trial points in the
            `model.compile` route).
        dtype: `"float32"` or `"float64"`: the dtype of the optimiser's own
            arithmetic (position, history, line search). The model keeps its
            own dtype; the loss and gradient are cast. For bfloat16, build the
            model under Keras's `"mixed_bfloat16"` policy
            (`keras.config.set_dtype_policy`): its layers compute in bfloat16,
            its weights, the chunk sums and the optimiser stay float32 (on a
            CPU with AMX about 0.7 times the seconds of float32 for the same
            evaluations and accuracy; see docs/engine.md, "bfloat16").
        chunk_size: Examples per forward/backward pass: `"auto"` (the default:
            the largest power of two whose layer outputs fit 32 MiB, see
            `keras_subset.chunking`), a number, or `None` for one pass over all
            examples. Bounds memory; does not change the result (with
            `training=False`) beyond float round-off. On a GPU larger chunks
            are likely faster: measure with
            `python -m benchmarks.engine --chunk_sweep=auto,1024,0`.
        jit_compile: Compile the loss-and-gradient with XLA. Measure first: on
            CPUs it was several times slower for convolutional networks.
        training: Evaluate the model in training mode (fixed dropout masks,
            per-chunk batch statistics, moving statistics refreshed at the end).
        max_restarts: Restarts from the best point after a failure.
        progress_every: Iterations between progress updates when `verbose` is on.
        max_evaluations: A budget of objective evaluations (SciPy's `maxfun`),
            or `None`. Every evaluation of the whole set counts, line-search
            ones included. `minimize` and `fit` start no iteration once it is
            spent (with `line_search="initial_step"` the last line search is
            also limited to what remains, as its iteration count; with
            `"hager_zhang"` TFP's loop runs in short segments near the end);
            the `model.compile` route evaluates exactly this many times, then
            holds its best point. `LBFGSResult.reason` says when it stopped a run.
        line_search: `"initial_step"` (the default): each iteration evaluates
            its initial step (the L-BFGS step, or the scaled first step) and
            accepts it when it meets the strong Wolfe conditions; otherwise
            TFP's Hager-Zhang line search continues from the points already
            evaluated (`keras_subset.lbfgs_loop`). `"hager_zhang"`: TFP's
            `tfp.optimizer.lbfgs_minimize` as it is, whose line search always
            brackets (about three evaluations per iteration).

        name: The optimizer's name (Keras).

    Example:

    ```python
    model.compile(loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    result = keras_subset.LBFGS(max_iterations=200).minimize(model, x, y)
    print(result.reason, result.loss, result.evaluations)

    # The same optimizer through model.fit: one full batch per step.
    model.compile(optimizer=keras_subset.LBFGS(), loss="sparse_categorical_crossentropy")
    model.fit(x, y, batch_size=len(x), epochs=300)
    print(model.optimizer.fit_results)
    ```
    """

    def __init__(
        self,
        max_iterations=100,
        num_correction_pairs=10,
        tolerance=1e-8,
        x_tolerance=0.0,
        f_relative_tolerance=0.0,
        max_line_search_iterations=50,
        dtype="float32",
        chunk_size="auto",
        jit_compile=False,
        training=False,
        max_restarts=2,
        progress_every=10,
        max_evaluations=None,
        line_search="initial_step",
        weight_decay=0.0,
        name="lbfgs",
    ):
        # Every argument is checked before anything is built.
        checked = dict(
            max_iterations=checks.check_int("max_iterations", max_iterations, minimum=1),
            num_correction_pairs=checks.check_int("num_correction_pairs", num_correction_pairs, minimum=1),
            tolerance=checks.check_number("tolerance", tolerance, minimum=0),
            x_tolerance=checks.check_number("x_tolerance", x_tolerance, minimum=0),
            f_relative_tolerance=checks.check_number("f_relative_tolerance", f_relative_tolerance, minimum=0),
            max_line_search_iterations=checks.check_int(
                "max_line_search_iterations", max_line_search_iterations, minimum=1
            ),
            dtype=checks.check_choice("dtype", dtype, _DTYPES),
            chunk_size=chunking.check_chunk_size(chunk_size),
            jit_compile=checks.check_bool("jit_compile", jit_compile),
            training=checks.check_bool("training", training),
            max_restarts=checks.check_int("max_restarts", max_restarts, minimum=0),
            progress_every=checks.check_int("progress_every", progress_every, minimum=1),
            max_evaluations=checks.check_int("max_evaluations", max_evaluations, minimum=1, allow_none=True),
            line_search=checks.check_choice("line_search", line_search, LINE_SEARCHES),
            weight_decay=checks.check_number("weight_decay", weight_decay, minimum=0),
        )
        # The Keras optimizer state (see `apply`); a learning rate means nothing to L-BFGS.
        super().__init__(learning_rate=1.0, name=name)
        for key, value in checked.items():
            setattr(self, key, value)
        # The loss of the current training step, handed over by `scale_loss` (see `apply`).
        self._step_loss = self.add_variable((), initializer="zeros", dtype=dtype, name="step_loss")
        self._step_loss_given = False  # set by `scale_loss` while the step is traced, cleared by `apply`
        self._step_state = None
        self._learning_rate_set = True  # from here on, a new learning rate is a user's mistake

    @property
    def learning_rate(self):
        """Always 1.0: L-BFGS takes its step lengths from the line search, not from a learning rate."""
        return super().learning_rate

    @learning_rate.setter
    def learning_rate(self, value):
        if getattr(self, "_learning_rate_set", False):
            # ReduceLROnPlateau and LearningRateScheduler set this; it would change a logged number only.
            warnings.warn(
                "LBFGS has no learning rate: its step lengths come from the line search, so setting "
                "`learning_rate` (e.g. by ReduceLROnPlateau or LearningRateScheduler) has no effect. "
                "Remove such callbacks; to stop early use EarlyStopping or `max_iterations`.",
                stacklevel=2,
            )
            return
        keras.optimizers.Optimizer.learning_rate.fset(self, value)

    def get_config(self):
        """Returns the constructor arguments (Keras serialisation)."""
        return {
            "max_iterations": self.max_iterations,
            "num_correction_pairs": self.num_correction_pairs,
            "tolerance": self.tolerance,
            "x_tolerance": self.x_tolerance,
            "f_relative_tolerance": self.f_relative_tolerance,
            "max_line_search_iterations": self.max_line_search_iterations,
            "dtype": self.dtype,
            "chunk_size": self.chunk_size,
            "jit_compile": self.jit_compile,
            "training": self.training,
            "max_restarts": self.max_restarts,
            "progress_every": self.progress_every,
            "max_evaluations": self.max_evaluations,
            "line_search": self.line_search,
            "weight_decay": self.weight_decay,
            "name": self.name,
        }

    @classmethod
    def from_config(cls, config):
        """Creates an `LBFGS` from `get_config()`'s output."""
        return cls(**config)

    def __repr__(self):
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items())
        return f"LBFGS({args})"

    # -- model.compile(optimizer=LBFGS(...)) and model.fit ---------------------------------
    def build(self, variables):
        """Creates the state of `model.fit` training for `variables` (Keras calls it once)."""
        if self.built:
            return
        if tf.distribute.get_strategy().num_replicas_in_sync > 1:
            raise ValueError(
                "model.compile(optimizer=LBFGS()) supports one replica: under a tf.distribute "
                "strategy with several replicas, use LBFGS().minimize(...) or LBFGS().fit(...)."
            )
        if self.dtype == "float32" and any(keras.backend.standardize_dtype(v.dtype) == "float64" for v in variables):
            warnings.warn(
                "LBFGS(dtype='float32') rounds this model's float64 weights to float32 at every step; "
                "pass dtype='float64'.",
                stacklevel=2,
            )
        super().build(variables)
        self._built_variables = [id(v) for v in variables]
        num_parameters = sum(int(np.prod(v.shape)) for v in variables)
        state = {}
        for key, value in stepwise.initial_state(num_parameters, self.num_correction_pairs, self.dtype).items():
            state[key] = self.add_variable(
                value.shape, initializer=lambda shape, dtype, value=value: value, dtype=value.dtype.name, name=key
            )
        self._step_state = state

    def scale_loss(self, loss):
        """Keeps the training step's loss for `apply` (every Keras `train_step` calls this)."""
        self._step_loss.assign(tf.cast(loss, self._step_loss.dtype))
        self._step_loss_given = True
        return super().scale_loss(loss)

    def apply(self, grads, trainable_variables=None):
        """One `model.fit` step: one evaluation of the loss and gradient, and the next trial weights.

        Keras 3 hands an optimizer the gradient of each training step (and, through
        `scale_loss`, its loss), never a way to evaluate the loss again, so the line
        search cannot run inside one step. Here each step is one evaluation: it either
        accepts the weights it was evaluated at (weak Wolfe conditions) and moves on to
        the next L-BFGS direction, or picks the next trial step length; see
        `keras_subset.stepwise`. The loss is the one `fit` computes, in training mode:
        with dropout it changes from step to step (use `minimize(..., training=False)`
        or a model without dropout), and batch normalisation's moving statistics
        follow the trial points. Between steps the model holds the pending trial
        weights, so epoch-end callbacks (validation, `ModelCheckpoint`,
        `TerminateOnNaN`) see those; `fit` ends at the best accepted weights.

        This is L-BFGS only when every step sees the same, whole training set:
        `model.fit(x, y, batch_size=len(x))`, or a dataset of that one batch repeated
        with `steps_per_epoch`: L-BFGS needs the full batch. With minibatches the line
        search compares the losses of different batches and has no guarantee, and
        `fit_results["loss"]` is the loss on the batch of the step that accepted the
        point, not over the whole training set. A Keras 3 optimizer never sees the
        dataset's size; `model.fit`'s frame does, and with more than one batch per
        pass over the data a warning says so while the step is traced (at the
        first `fit` after `compile`, or for data of a new shape), as it does for
        random preprocessing layers, which `fit` redraws at every step.

        The first step of a run (and the first after a `fit` has ended) evaluates the
        starting weights: when its loss or gradient is not finite (NaN inputs, labels
        out of range), the step stops `fit` with an `InvalidArgumentError` saying so,
        before any weight changes (under XLA, which drops assertions, the weights stay
        as they are, `fit_results` reports a NaN loss and `fit` warns at its end).
        Keras traces the step once per `compile` and goes on running it after
        `layer.trainable` changes, so every step also checks, as it runs, that the
        variables it trains are still trainable, and stops `fit` the same way when a
        layer was frozen since (not under XLA; there, and for layers unfrozen since,
        `finalize_variable_values` warns at the end of `fit`).

        Args:
            grads: The gradients of the step's loss, one per variable.
            trainable_variables: The model's trainable variables, in the order of
                the first call.
        """
        _warn_about_the_fit_call()  # (runs while the step is traced)
        if trainable_variables is None:
            if not self.built:
                raise ValueError("Call `optimizer.build(trainable_variables)` first, or pass `trainable_variables`.")
            trainable_variables = self._trainable_variables
        trainable_variables = list(trainable_variables)
        if not self.built:
            self.build(trainable_variables)
        if [id(v) for v in trainable_variables] != self._built_variables:
            raise ValueError(
                "`trainable_variables` differ from those LBFGS was built with (layers frozen or "
                "unfrozen since?): its state is a flat vector over those variables. Compile the "
                "model again with a new LBFGS()."
            )
        if not self._step_loss_given:
            raise ValueError(
                "LBFGS.apply needs the step's loss, which it takes from `scale_loss`: Keras's "
                "`train_step` calls `optimizer.scale_loss(loss)` before the gradients, a custom "
                "training step must do the same. A LossScaleOptimizer (mixed precision) does not "
                "pass it on: LBFGS does not support mixed precision."
            )
        self._step_loss_given = False
        dtype = self._step_loss.dtype
        position = flatten([v.value for v in trainable_variables], dtype)
        gradient = flatten(
            [tf.zeros_like(v.value) if g is None else tf.convert_to_tensor(g) for g, v in zip(grads, trainable_variables)],
            dtype,
        )
        loss = self._step_loss.value
        if self.weight_decay:
            loss += 0.5 * self.weight_decay * tf.tensordot(position, position, 1)
            gradient += self.weight_decay * position
        state = {key: variable.value for key, variable in self._step_state.items()}
        value = loss
        # The first step of a run (the step rule has not started) evaluates the starting weights:
        # there a non-finite loss or gradient means the inputs or weights are broken, and no step
        # can follow. (Under XLA, which drops assertions, the weights stay as they are instead.)
        starting_point_ok = tf.debugging.Assert(
            (state["started"] > 0) | (tf.math.is_finite(value) & tf.reduce_all(tf.math.is_finite(gradient))),
            [
                "LBFGS (model.compile route): the loss or its gradient at the starting weights is not "
                "finite (NaN or Inf), so L-BFGS cannot start; the weights were left as they were. Check "
                "the inputs (NaN or Inf values, labels out of range) and the model's initial weights. Loss:",
                value,
            ],
        )
        checks_ok = [starting_point_ok]
        # Keras traces the training step once per compile and reuses it after `layer.trainable`
        # changes, so the id check above runs only while tracing; frozen variables would go on
        # training. Their `trainable` flags are Python state: read them as the step runs (not under
        # XLA, which cannot call Python; `finalize_variable_values` then warns at the end).
        if _enclosing_xla_context() is None:
            checks_ok.append(tf.debugging.Assert(_all_trainable(trainable_variables), [_FROZEN_SINCE_BUILT]))
        with tf.control_dependencies(checks_ok):
            value = tf.identity(value)
            state, next_position = stepwise.step(
                state, position, value, gradient, self.tolerance, self.max_line_search_iterations,
                self.max_evaluations,
            )
            for key, variable in self._step_state.items():
                variable.assign(state[key])
            assign_flat(trainable_variables, next_position)
            self._iterations.assign_add(1)

    def finalize_variable_values(self, var_list):
        """At the end of `model.fit`: the model takes the best accepted weights, not a pending trial.

        `var_list` holds the model's trainable variables now. When layers were
        frozen or unfrozen since LBFGS was built, Keras has gone on running the
        step it traced with the variables of then: those take the best weights,
        and a warning says to compile again (a frozen layer is refused at the
        first step already, except under XLA). A fit that never accepted a
        point (under XLA, a non-finite loss at the starting weights) leaves the
        weights as they are and warns.
        """
        var_list = list(var_list)
        if self.built and [id(v) for v in var_list] != self._built_variables:
            built = self._trainable_variables
            frozen = [v.path for v in built if id(v) not in {id(w) for w in var_list}]
            unfrozen = [v.path for v in var_list if id(v) not in set(self._built_variables)]
            warnings.warn(
                "The model's trainable variables changed since LBFGS was built (when `fit` first ran "
                "after `compile`): Keras went on with the training step it traced then, so "
                + (f"the variables unfrozen since ({', '.join(unfrozen)}) were not trained" if unfrozen else "")
                + (" and " if unfrozen and frozen else "")
                + (f"the variables frozen since ({', '.join(frozen)}) were trained" if frozen else "")
                + ". Compile the model again with a new LBFGS() after freezing or unfreezing layers.",
                stacklevel=2,
            )
            var_list = built
        if self._step_state is not None and int(self._step_state["started"].value) > 0:
            assign_flat(var_list, self._step_state["position"].value)
            # The next `fit` starts afresh at the weights it finds; the curvature history is kept.
            self._step_state["started"].assign(0)
        elif self._step_state is not None and not self.fit_results["budget_spent"]:
            # Only under XLA, which drops the assertion in `apply`, does a fit get here.
            warnings.warn(
                "LBFGS: no step of this fit had a finite loss and gradient at the starting weights, "
                "so L-BFGS never started and the weights were left as they were. Check the inputs "
                "(NaN or Inf values, labels out of range) and the model's initial weights.",
                stacklevel=2,
            )
        super().finalize_variable_values(var_list)

    @property
    def fit_results(self):
        """The figures of `model.fit` training so far: a dict of Python numbers (empty before it).

        Keys: `iterations` (accepted L-BFGS steps), `evaluations` (training steps
        until convergence or a stall; later steps re-evaluate the final point),
        `loss`, `restarts` (line searches that failed and dropped the history),
        `converged` (largest gradient entry at most `tolerance`), `stalled` (a line
        search failed without history to drop) and `budget_spent` (`max_evaluations`
        evaluations were made; the model then holds the best accepted point).

        `loss` is the loss at the best accepted weights as `fit` computed it in the
        step that accepted them, on that step's batch: the loss of the whole training
        set only with a full batch (`batch_size=len(x)`, which L-BFGS needs anyway);
        with minibatches, one batch's loss. It is NaN while no point has been
        accepted (e.g. when the first step's loss was not finite).
        """
        if self._step_state is None:
            return {}
        state = {key: variable.value.numpy() for key, variable in self._step_state.items()}
        return {
            "iterations": int(state["iterations"]),
            "evaluations": int(state["evaluations"]),
            "loss": float(state["value"]),
            "restarts": int(state["restarts"]),
            "converged": bool(state["converged"]),
            "stalled": bool(state["stalled"]),
            "budget_spent": self.max_evaluations is not None and int(state["evaluations"]) >= self.max_evaluations,
        }

    def minimize(
        self, model, x, y=None, sample_weight=None, loss=None, verbose=0, class_weight=None,
        augment=None, copies=0, seed=None,
    ):
        """Minimises the model's loss over all of `x`, `y`; the model ends at the best weights.

        Args:
            model: A built Keras model, compiled with a loss unless `loss` is given.
            x: Inputs: arrays, tensors (or a list/dict of them), a Python list
                of numbers (one array), or a source of batches of `(x, y)` or
                `(x, y, sample_weight)` read whole first: a finite, batched
                `tf.data.Dataset`, a `keras.utils.PyDataset` or a generator that
                ends (`keras_subset.data.to_arrays`). NaN or Inf is refused.
            y: Targets (`None` when `x` is a source of batches).
            sample_weight: Per-example weights of shape `(N,)` or `(N, 1)`, or `None`.
            loss: A loss to use instead of the compiled one: a name, function,
                `keras.losses.Loss`, or a list/dict of them for several outputs.
            verbose: 0 silent, 1 a progress bar, 2 one line per progress update.
            class_weight: A dict `{class index: weight}`, as `model.fit` takes
                it (instead of `sample_weight`; one output only).
            augment: A Keras random preprocessing layer (or a
                `keras.Sequential` of them), or a function `(images, seed) ->
                images` for a batch of one image and a shape-[2] stateless seed,
                that makes the augmented copies (`copies` > 0).
            copies: Augmented copies fitted with every example (0: none). Copy j
                of example i is a fixed function of `(seed, i, j)`: made once and
                stored when the extended inputs fit
                `keras_subset.augment.MATERIALIZE_BYTES` (4 GiB), else inside every
                chunk of every evaluation (memory bounded by one chunk); the
                objective is the loss over all `N * (1 + copies)` examples.
            seed: The copies' seed (an int >= 0; `None` is 0).

        Returns:
            An `LBFGSResult`. When a run that converged (or whose line search
            found no decrease left) ends at a dead model (its outputs the same
            for the first 256 examples: a layer whose units the steps switched
            off), its `dead_model` is `True`, its `reason` says so and a
            `DeadModelWarning` is issued; the check's one forward pass is not
            counted in `evaluations`.

        Raises:
            ValueError: for a model without trainable weights, inputs that do
                not fit, or a loss that is not finite at the starting weights.
            KeyboardInterrupt: at Ctrl-C, within about a second or one
                iteration, whichever is longer (the compiled loop runs in
                segments of about `keras_subset.minimize.SEGMENT_SECONDS`). The
                model holds the best weights reached; the message says after
                how many iterations and at which loss, and the interrupt's
                `result` attribute holds the `LBFGSResult` so far.
        """
        run = Minimization(
            self, model, x, y, sample_weight, loss, class_weight=class_weight, augment=augment, copies=copies,
            seed=seed,
        )
        progress = Progress(verbose, self.max_iterations)
        try:
            while not run.done:
                # Segments also refresh the |loss| that f_relative_tolerance is relative to.
                step = self.progress_every if verbose or self.f_relative_tolerance else self.max_iterations
                run.advance(min(self.max_iterations, run.iterations + step))
                progress.update(run.iterations, run.best_value, run.evaluations)
        except KeyboardInterrupt as interrupt:
            run.interrupt(interrupt, "LBFGS.minimize")
            raise
        progress.finish(run.iterations, run.best_value, run.evaluations)
        result = run.finish()
        # Only an end that claims a minimum is checked (a cap or budget claims none).
        dead, checked = dead_model.examine(model, run.x) if result.converged or result.failed else (False, 0)
        if dead:
            dead_model.warn_dead("LBFGS.minimize", checked, stacklevel=2)
            result = dataclasses.replace(result, dead_model=True, reason=f"{result.reason}; {dead_model.REASON}")
        return result

    def fit(
        self,
        model,
        x,
        y=None,
        sample_weight=None,
        *,
        epochs=1,
        iterations_per_epoch=10,
        loss=None,
        validation_data=None,
        callbacks=None,
        verbose=1,
        class_weight=None,
        augment=None,
        copies=0,
        seed=None,
    ):
        """Full-batch L-BFGS in `model.fit`'s shape: epochs of iterations, Keras callbacks, History.

        Unlike `model.compile(optimizer=LBFGS())` + `model.fit` (one objective
        evaluation per training step, Keras's own one-pass forward over the
        batch), this route runs each L-BFGS iteration with its whole line
        search inside one compiled graph over chunked evaluations, as
        `minimize` does. It runs `iterations_per_epoch` L-BFGS iterations per
        epoch (keeping the curvature history across epochs) and drives a
        `keras.callbacks.CallbackList`, so `History`, `EarlyStopping`,
        `ModelCheckpoint`, `CSVLogger` and `TensorBoard` work as with `fit`
        (`model.stop_training` ends the run). At each epoch's end the model
        holds the best weights so far, and the logs hold the compiled loss and
        metrics over all of `x` (one forward pass, `model.evaluate`), the
        same for `validation_data` with the prefix `val_`, and the L-BFGS
        `iterations` and `evaluations` so far. `max_iterations` caps the total.
        At Ctrl-C the `KeyboardInterrupt` comes within about a second or one
        iteration and propagates, as in `model.fit`; the model then holds the
        best weights reached, and the message says where it stopped.

        Args:
            model: A compiled, built Keras model.
            x, y, sample_weight: As for `minimize`.
            epochs: Number of epochs.
            iterations_per_epoch: L-BFGS iterations per epoch.
            loss: A loss to minimise instead of the compiled one.
            validation_data: `(x_val, y_val)`, `(x_val, y_val, sample_weight)`
                or a source of batches of those (as `x`), as `model.fit`
                takes it; checked (converted, and one small batch evaluated)
                before the first iteration.
            callbacks: A list of `keras.callbacks.Callback`. Those that set a
                learning rate (`ReduceLROnPlateau`, `LearningRateScheduler`)
                are left out with a warning: L-BFGS has none, and they would
                change the compiled optimizer's.
            verbose: 0 silent, 1 progress bar, 2 one line per epoch.
            class_weight, augment, copies, seed: As for `minimize`.

        Returns:
            The `keras.callbacks.History` of the run (also `model.history`).

        Example:

        ```python
        history = keras_subset.LBFGS(max_iterations=500).fit(
            model, x, y, epochs=50, iterations_per_epoch=10,
            callbacks=[keras.callbacks.EarlyStopping("loss", min_delta=1e-4)])
        ```
        """
        checks.check_int("epochs", epochs, minimum=1)
        checks.check_int("iterations_per_epoch", iterations_per_epoch, minimum=1)
        verbose = checks.check_verbose(verbose)
        if not getattr(model, "compiled", False):
            raise ValueError(
                "`model` must be compiled (`model.compile(loss=..., metrics=...)`): LBFGS.fit reports "
                "the compiled loss and metrics at every epoch's end."
            )
        run = Minimization(
            self, model, x, y, sample_weight, loss, class_weight=class_weight, augment=augment, copies=copies,
            seed=seed,
        )
        # Keras's `evaluate` reuses the function it traced for earlier data, relaxing the targets'
        # shapes where they differ ((N,) then (N, 1): unknown rank, which its losses cannot take;
        # Keras 3.15 fails so on its own). The epochs' logs trace it anew for this call's data.
        model.test_function = None
        validation = None
        if validation_data is not None:
            # Checked before the first iteration: a failure after an epoch would lose the History.
            validation = data_lib.validation_arrays(validation_data)
            try:
                check_targets(model, validation[1], name="validation_data")
                # One small batch finds what only the model can tell (shapes, dtypes).
                model.evaluate(*(data_lib.take(part, np.arange(min(8, data_lib.num_examples(validation[0]))))
                                 for part in validation[:2]), verbose=0)
            except (ValueError, tf.errors.OpError) as error:
                raise ValueError(f"`validation_data` cannot be evaluated by the model: {error}") from error
        callback_list = keras.callbacks.CallbackList(
            _without_learning_rate_callbacks(callbacks), add_history=True, add_progbar=verbose != 0, model=model,
            verbose=verbose, epochs=epochs, steps=1,
        )
        model.stop_training = False
        callback_list.on_train_begin()
        logs = {}
        try:
            for epoch in range(epochs):
                callback_list.on_epoch_begin(epoch)
                callback_list.on_train_batch_begin(0)
                run.advance(min(self.max_iterations, run.iterations + iterations_per_epoch))
                run.assign_best()
                logs = model.evaluate(run.x, run.y, sample_weight=run.sample_weight, verbose=0, return_dict=True)
                logs.update(iterations=run.iterations, evaluations=run.evaluations)
                callback_list.on_train_batch_end(0, logs)
                if validation is not None:
                    val_x, val_y, val_w = validation
                    val = model.evaluate(val_x, val_y, sample_weight=val_w, verbose=0, return_dict=True)
                    logs.update({"val_" + k: v for k, v in val.items()})
                callback_list.on_epoch_end(epoch, logs)
                if model.stop_training or run.done:
                    break
        except KeyboardInterrupt as interrupt:
            run.interrupt(interrupt, "LBFGS.fit")
            raise
        run.finish()
        callback_list.on_train_end(logs)
        return model.history
