"""`LBFGS`: TensorFlow Probability's L-BFGS minimiser for Keras models, full batch."""

import dataclasses
import math
import time
import warnings
import weakref

import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp
import keras

from keras_subset import data as data_lib
from keras_subset import stepwise
from keras_subset.objective import Objective, assign_flat, flatten

_DTYPES = ("float32", "float64")


@dataclasses.dataclass
class LBFGSResult:
    """What one `LBFGS.minimize` call did.

    Attributes:
        iterations: L-BFGS iterations run (over all restarts).
        evaluations: Full-batch objective evaluations (value and gradient over
            all examples), line-search evaluations and the initial check included.
        loss: The objective at the weights the model ends with.
        initial_loss: The objective at the starting weights.
        gradient_norm: Largest absolute gradient entry at the final weights (the
            norm that `tolerance` is compared with).
        converged: Whether a convergence criterion was met.
        failed: Whether the run ended because the line search found no
            decrease or the objective stopped being finite.
        reason: Why the run stopped, in words.
        restarts: How often the optimiser restarted from its best point with a
            fresh history after a failure.
        seconds: Wall-clock seconds of the whole call.
        num_examples: Examples in the objective.
    """

    iterations: int
    evaluations: int
    loss: float
    initial_loss: float
    gradient_norm: float
    converged: bool
    failed: bool
    reason: str
    restarts: int
    seconds: float
    num_examples: int

    def as_logs(self, prefix=""):
        """Returns the figures as a flat dict of numbers (for Keras `logs`)."""
        return {
            f"{prefix}loss": self.loss,
            f"{prefix}iterations": self.iterations,
            f"{prefix}evaluations": self.evaluations,
            f"{prefix}gradient_norm": self.gradient_norm,
            f"{prefix}seconds": self.seconds,
        }


@keras.saving.register_keras_serializable(package="keras_subset")
class LBFGS(keras.optimizers.Optimizer):
    """Full-batch L-BFGS for Keras models (TensorFlow Probability's `lbfgs_minimize`).

    Minimises a model's loss over all given examples at once, using the exact
    loss and gradient of the whole set (computed `chunk_size` examples at a
    time), with TFP's L-BFGS and Hager-Zhang line search. The whole
    optimisation runs as compiled TensorFlow graphs (on the GPU when
    TensorFlow sees one); Python is only re-entered every
    `progress_every` iterations when `verbose` shows progress.

    The objective is the compiled loss of the model (or `loss=`) weighted by
    `sample_weight`, plus `model.losses` (regularisation). By default the model
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
        max_line_search_iterations: Maximum Hager-Zhang line-search iterations
            per L-BFGS iteration.
        dtype: `"float32"` or `"float64"`: the dtype of the optimiser's own
            arithmetic (position, history, line search). The model keeps its
            own dtype; the loss and gradient are cast.
        chunk_size: Examples per forward/backward pass, or `None` for one pass
            over all examples. Bounds memory; does not change the result (with
            `training=False`) beyond float round-off. The default, 128, was
            the fastest or within 7 % of it on a 2-core CPU for the benchmark
            CNNs, and one pass was 33-44 % slower; on a GPU, larger chunks
            are likely faster: measure with
            `python -m benchmarks.engine --chunk_sweep=128,1024,0`.
        jit_compile: Compile the loss-and-gradient with XLA. Measure first: on
            CPUs it was several times slower for convolutional networks.
        training: Evaluate the model in training mode (fixed dropout masks,
            per-chunk batch statistics, moving statistics refreshed at the end).
        max_restarts: Restarts from the best point after a failure.
        progress_every: Iterations between progress updates when `verbose` is on.

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
        chunk_size=128,
        jit_compile=False,
        training=False,
        max_restarts=2,
        progress_every=10,
        name="lbfgs",
    ):
        # The Keras optimizer state (see `apply`); a learning rate means nothing to L-BFGS.
        super().__init__(learning_rate=1.0, name=name)
        _check_int("max_iterations", max_iterations, minimum=1)
        _check_int("num_correction_pairs", num_correction_pairs, minimum=1)
        _check_int("max_line_search_iterations", max_line_search_iterations, minimum=1)
        _check_int("max_restarts", max_restarts, minimum=0)
        _check_int("progress_every", progress_every, minimum=1)
        if chunk_size is not None:
            _check_int("chunk_size", chunk_size, minimum=1)
        for argument, value in (
            ("tolerance", tolerance),
            ("x_tolerance", x_tolerance),
            ("f_relative_tolerance", f_relative_tolerance),
        ):
            if not isinstance(value, (int, float)) or not value >= 0 or not math.isfinite(value):
                raise ValueError(f"`{argument}` must be a finite number >= 0, got {value!r}.")
        if dtype not in _DTYPES:
            raise ValueError(f"`dtype` must be one of {_DTYPES}, got {dtype!r}.")
        self.max_iterations = int(max_iterations)
        self.num_correction_pairs = int(num_correction_pairs)
        self.tolerance = float(tolerance)
        self.x_tolerance = float(x_tolerance)
        self.f_relative_tolerance = float(f_relative_tolerance)
        self.max_line_search_iterations = int(max_line_search_iterations)
        self.dtype = dtype
        self.chunk_size = None if chunk_size is None else int(chunk_size)
        self.jit_compile = bool(jit_compile)
        self.training = bool(training)
        self.max_restarts = int(max_restarts)
        self.progress_every = int(progress_every)
        # The loss of the current training step, handed over by `scale_loss` (see `apply`).
        self._step_loss = self.add_variable((), initializer="zeros", dtype=dtype, name="step_loss")
        self._step_loss_given = False  # set by `scale_loss` while the step is traced, cleared by `apply`
        self._step_state = None

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
        `keras_subset.stepwise`. This is L-BFGS only when every step sees the same,
        whole training set: `model.fit(x, y, batch_size=len(x))`, or a dataset of that
        one batch repeated with `steps_per_epoch`. With minibatches the line search
        compares the losses of different batches and has no guarantee. The loss is the
        one `fit` computes, in training mode: with dropout it changes from step to step
        (use `minimize(..., training=False)` or a model without dropout), and batch
        normalisation's moving statistics follow the trial points. Between steps the
        model holds the pending trial weights, so epoch-end callbacks (validation,
        `ModelCheckpoint`, `TerminateOnNaN`) see those; `fit` ends at the best accepted
        weights.

        Args:
            grads: The gradients of the step's loss, one per variable.
            trainable_variables: The model's trainable variables, in the order of
                the first call.
        """
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
        state = {key: variable.value for key, variable in self._step_state.items()}
        state, next_position = stepwise.step(
            state, position, self._step_loss.value, gradient, self.tolerance, self.max_line_search_iterations
        )
        for key, variable in self._step_state.items():
            variable.assign(state[key])
        assign_flat(trainable_variables, next_position)
        self._iterations.assign_add(1)

    def finalize_variable_values(self, var_list):
        """At the end of `model.fit`: the model takes the best accepted weights, not a pending trial."""
        if self._step_state is not None and int(self._step_state["started"].value) > 0:
            assign_flat(list(var_list), self._step_state["position"].value)
            # The next `fit` starts afresh at the weights it finds; the curvature history is kept.
            self._step_state["started"].assign(0)
        super().finalize_variable_values(var_list)

    @property
    def fit_results(self):
        """The figures of `model.fit` training so far: a dict of Python numbers (empty before it).

        Keys: `iterations` (accepted L-BFGS steps), `evaluations` (training steps
        until convergence or a stall; later steps re-evaluate the final point),
        `loss` (at the best accepted weights), `restarts` (line searches that failed
        and dropped the history), `converged` (largest gradient entry at most
        `tolerance`) and `stalled` (a line search failed without history to drop).
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
        }

    def _compiled_run(self, model, loss):
        """Returns `(objective, compiled graphs)` for `model`, reusing the last call's when they fit.

        Tracing TFP's L-BFGS loop costs seconds, so repeated `minimize` calls on the
        same model, loss and variables reuse the traced graphs (the optimizer keeps a
        reference to the last model it ran on).
        """
        resolved = loss if loss is not None else getattr(model, "loss", None)
        key = (id(resolved), tuple(id(v) for v in model.trainable_variables), len(model.non_trainable_variables))
        cached = getattr(self, "_cache", None)
        if cached is not None and cached[0]() is model and cached[1] == key:
            return cached[2], cached[3]
        objective = Objective(model, loss=loss, chunk_size=self.chunk_size, dtype=self.dtype, training=self.training)
        run = _CompiledRun(objective, self)
        self._cache = (weakref.ref(model), key, objective, run)
        return objective, run

    def minimize(self, model, x, y=None, sample_weight=None, loss=None, verbose=0):
        """Minimises the model's loss over all of `x`, `y`; the model ends at the best weights.

        Args:
            model: A built Keras model, compiled with a loss unless `loss` is given.
            x: Inputs: arrays, tensors (or a list/dict of them), or a finite,
                batched `tf.data.Dataset` of `(x, y)` or `(x, y, sample_weight)`.
            y: Targets (`None` when `x` is a dataset).
            sample_weight: Per-example weights, or `None`.
            loss: A loss to use instead of the compiled one.
            verbose: 0 silent, 1 a progress bar, 2 one line per progress update.

        Returns:
            An `LBFGSResult`.

        Raises:
            ValueError: for a model without trainable weights, inputs that do
                not fit, or a loss that is not finite at the starting weights.
        """
        run = _Minimization(self, model, x, y, sample_weight, loss)
        progress = _Progress(verbose, self.max_iterations)
        while not run.done:
            # Segments also refresh the |loss| that f_relative_tolerance is relative to.
            step = self.progress_every if verbose or self.f_relative_tolerance else self.max_iterations
            run.advance(min(self.max_iterations, run.iterations + step))
            progress.update(run.iterations, run.best_value, run.evaluations)
        progress.finish(run.iterations, run.best_value, run.evaluations)
        return run.finish()

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
    ):
        """Full-batch L-BFGS in `model.fit`'s shape: epochs of iterations, Keras callbacks, History.

        Keras 3 cannot run L-BFGS from `model.compile(optimizer=...)`: an
        optimizer only receives gradients (`Optimizer.apply(grads, variables)`)
        once per batch and never a way to re-evaluate the loss, which a line
        search must do several times per step on the same data. This method is
        the closest public-API route: it runs `iterations_per_epoch` L-BFGS
        iterations per epoch (keeping the curvature history across epochs) and
        drives a `keras.callbacks.CallbackList`, so `History`, `EarlyStopping`,
        `ModelCheckpoint`, `CSVLogger` and `TensorBoard` work as with `fit`
        (`model.stop_training` ends the run). At each epoch's end the model
        holds the best weights so far, and the logs hold the compiled loss and
        metrics over all of `x` (one forward pass, `model.evaluate`), the
        same for `validation_data` with the prefix `val_`, and the L-BFGS
        `iterations` and `evaluations` so far. `max_iterations` caps the total.

        Args:
            model: A compiled, built Keras model.
            x, y, sample_weight: As for `minimize`.
            epochs: Number of epochs.
            iterations_per_epoch: L-BFGS iterations per epoch.
            loss: A loss to minimise instead of the compiled one.
            validation_data: `(x_val, y_val)` or `(x_val, y_val, sample_weight)`.
            callbacks: A list of `keras.callbacks.Callback`.
            verbose: 0 silent, 1 progress bar, 2 one line per epoch.

        Returns:
            The `keras.callbacks.History` of the run (also `model.history`).

        Example:

        ```python
        history = keras_subset.LBFGS(max_iterations=500).fit(
            model, x, y, epochs=50, iterations_per_epoch=10,
            callbacks=[keras.callbacks.EarlyStopping("loss", min_delta=1e-4)])
        ```
        """
        _check_int("epochs", epochs, minimum=1)
        _check_int("iterations_per_epoch", iterations_per_epoch, minimum=1)
        run = _Minimization(self, model, x, y, sample_weight, loss)
        callback_list = keras.callbacks.CallbackList(
            callbacks, add_history=True, add_progbar=verbose != 0, model=model,
            verbose=verbose, epochs=epochs, steps=1,
        )
        model.stop_training = False
        callback_list.on_train_begin()
        logs = {}
        for epoch in range(epochs):
            callback_list.on_epoch_begin(epoch)
            callback_list.on_train_batch_begin(0)
            run.advance(min(self.max_iterations, run.iterations + iterations_per_epoch))
            run.assign_best()
            logs = model.evaluate(run.x, run.y, sample_weight=run.sample_weight, verbose=0, return_dict=True)
            logs.update(iterations=run.iterations, evaluations=run.evaluations)
            callback_list.on_train_batch_end(0, logs)
            if validation_data is not None:
                val_x, val_y, val_w = keras.utils.unpack_x_y_sample_weight(tuple(validation_data))
                val = model.evaluate(val_x, val_y, sample_weight=val_w, verbose=0, return_dict=True)
                logs.update({"val_" + k: v for k, v in val.items()})
            callback_list.on_epoch_end(epoch, logs)
            if model.stop_training or run.done:
                break
        run.finish()
        callback_list.on_train_end(logs)
        return model.history

class _Minimization:
    """One L-BFGS minimisation, advanced in compiled segments; keeps the best point found."""

    def __init__(self, options, model, x, y, sample_weight, loss):
        self.start_time = time.perf_counter()
        self.options = options
        self.objective, self.run = options._compiled_run(model, loss)
        self.x, self.y, self.sample_weight = data_lib.to_arrays(x, y, sample_weight)
        if self.y is None:
            raise ValueError("`y` is None: L-BFGS needs targets (pass `y`, or a dataset of (x, y)).")
        self.tensors = (
            tf.nest.map_structure(data_lib.to_tensor, self.x),
            tf.nest.map_structure(data_lib.to_tensor, self.y),
            None if self.sample_weight is None else data_lib.to_tensor(self.sample_weight),
        )
        strategy = tf.distribute.get_strategy()
        if strategy.num_replicas_in_sync > 1:
            if options.training:
                raise ValueError(
                    "`training=True` is not supported under a tf.distribute strategy with several "
                    "replicas (batch statistics would differ per replica); use training=False."
                )
            # Each replica keeps its own contiguous shard of the examples.
            self.tensors = tuple(Objective.shard(strategy, t) for t in self.tensors)
        position = self.objective.position()
        value, gradient = self.run.value_and_gradient(position, *self.tensors)
        self.initial_value = float(value)
        if not math.isfinite(self.initial_value) or not np.all(np.isfinite(gradient.numpy())):
            raise ValueError(
                f"The loss at the starting weights is not finite ({self.initial_value}): check the "
                "inputs (NaN or Inf values, labels out of range) and the model's initial weights."
            )
        # The first L-BFGS step is the raw negative gradient; on networks that step can be
        # huge (and kill every ReLU), so the optimiser works in scaled coordinates
        # u = position / scale, which makes the first trial step min(1, 1/|g|_1) * -g, as
        # PyTorch's L-BFGS does. Later steps are scaled by the curvature estimate anyway.
        self.scale = min(1.0, 1.0 / max(float(tf.reduce_sum(tf.abs(gradient))), 1e-30)) ** 0.5
        self.best_position, self.best_value, self.best_gradient = position, self.initial_value, gradient
        # Counts of the runs before the latest restart; the initial check is one evaluation.
        self._iterations_before, self._evaluations_before = 0, 1
        self.iterations, self.evaluations, self.restarts = 0, 1, 0
        self.state, self.converged, self.failed, self.done = None, False, False, False

    def advance(self, until_iteration):
        """Runs L-BFGS until `until_iteration` total iterations, convergence or final failure."""
        while not self.done and self.iterations < until_iteration:
            # A tensor, not a Python int: each new int value would trace TFP's loop again.
            end = tf.constant(until_iteration - self._iterations_before, tf.int32)
            # TFP compares |change of f| with f_relative_tolerance * f, which never holds for a
            # negative f (tfp issue 1391); compare it with f_relative_tolerance * |f| instead,
            # |f| taken at the start of each segment.
            dtype = self.objective.dtype
            f_tolerance = tf.constant(self.options.f_relative_tolerance * abs(self.best_value), dtype)
            scale = tf.constant(self.scale, dtype)
            if self.state is None:
                self.state = self.run.start(self.best_position / scale, end, f_tolerance, scale, *self.tensors)
            else:
                self.state = self.run.resume(self.state, end, f_tolerance, scale, *self.tensors)
            state = self.state
            value = float(state.objective_value)
            position = state.position * self.scale
            if math.isfinite(value) and value < self.best_value and np.all(np.isfinite(position.numpy())):
                self.best_position, self.best_value = position, value
                self.best_gradient = state.objective_gradient / self.scale
            self.iterations = self._iterations_before + int(state.num_iterations)
            self.evaluations = self._evaluations_before + int(state.num_objective_evaluations)
            self.converged, self.failed = bool(state.converged), bool(state.failed)
            if self.converged or self.iterations >= self.options.max_iterations:
                self.done = True
            elif self.failed:
                if self.restarts >= self.options.max_restarts:
                    self.done = True
                else:  # Restart from the best point with a fresh history.
                    self.restarts += 1
                    self._iterations_before, self._evaluations_before = self.iterations, self.evaluations
                    self.state = None

    def assign_best(self):
        """Writes the best weights found so far into the model."""
        self.objective.assign(self.best_position)

    def finish(self):
        """Leaves the model at the best weights (and refreshed batch statistics); returns the result."""
        self.assign_best()
        if self.options.training:
            self.objective.refresh_batch_norm_statistics(self.tensors[0])
        gradient_norm = float(tf.reduce_max(tf.abs(self.best_gradient)))
        converged, failed = self.converged, self.failed
        return LBFGSResult(
            iterations=self.iterations,
            evaluations=self.evaluations,
            loss=self.best_value,
            initial_loss=self.initial_value,
            gradient_norm=gradient_norm,
            converged=converged and not failed,
            failed=failed and not converged,
            reason=self._reason(gradient_norm),
            restarts=self.restarts,
            seconds=time.perf_counter() - self.start_time,
            num_examples=data_lib.num_examples(self.x),
        )

    def _reason(self, gradient_norm):
        o = self.options
        if self.converged and gradient_norm <= o.tolerance:
            return f"converged: largest gradient entry {gradient_norm:.3g} <= tolerance {o.tolerance:g}"
        if self.converged:
            return "converged: position or loss change fell below x_tolerance or f_relative_tolerance"
        if self.failed:
            what = "no further decrease found by the line search or a non-finite loss"
            if self.best_value >= self.initial_value:
                what += "; the starting weights were kept"
            return f"stopped: {what} (after {self.restarts} restart(s) from the best point)"
        if self.iterations >= o.max_iterations:
            return f"stopped: max_iterations ({o.max_iterations}) reached"
        return f"stopped after {self.iterations} iterations (by the caller)"


class _CompiledRun:
    """The compiled graphs of one `minimize` call: start, resume, value-and-gradient."""

    def __init__(self, objective, options):
        self.objective = objective
        self.options = options
        self.value_and_gradient = tf.function(
            objective.value_and_gradient, jit_compile=options.jit_compile, reduce_retracing=True
        )
        if isinstance(tf.distribute.get_strategy(), tf.distribute.MultiWorkerMirroredStrategy):
            # TensorFlow (2.21) cannot build a cross-worker all-reduce inside TFP's nested
            # while/cond loops (its deferred instance-key capture fails with "You must feed a value
            # for placeholder tensor ... hager_zhang/cond/while/Placeholder"), so there the L-BFGS
            # loop runs eagerly and each evaluation is one compiled call holding the all-reduce.
            self.start, self.resume = self._start, self._resume
        else:
            self.start = tf.function(self._start, reduce_retracing=True)
            self.resume = tf.function(self._resume, reduce_retracing=True)

    def _minimize(self, max_iterations, f_tolerance, scale, x, y, sample_weight, **start):
        """TFP's L-BFGS over u = position / scale (see `_Minimization`)."""
        o = self.options

        def scaled_value_and_gradient(u):
            value, gradient = self.value_and_gradient(u * scale, x, y, sample_weight)
            return value, gradient * scale

        return tfp.optimizer.lbfgs_minimize(
            scaled_value_and_gradient,
            num_correction_pairs=o.num_correction_pairs,
            # The tolerances are stated for the position; translate them to u = position / scale.
            tolerance=o.tolerance * scale,
            x_tolerance=o.x_tolerance / scale,
            f_relative_tolerance=0.0,
            f_absolute_tolerance=f_tolerance,
            max_iterations=max_iterations,
            max_line_search_iterations=o.max_line_search_iterations,
            **start,
        )

    def _start(self, position, max_iterations, f_tolerance, scale, x, y, sample_weight):
        return self._minimize(max_iterations, f_tolerance, scale, x, y, sample_weight, initial_position=position)

    def _resume(self, state, max_iterations, f_tolerance, scale, x, y, sample_weight):
        return self._minimize(
            max_iterations, f_tolerance, scale, x, y, sample_weight,
            initial_position=None, previous_optimizer_results=state,
        )


class _Progress:
    """A Keras progress bar over iterations: `verbose=1` one updating bar, `verbose=2` one line per update."""

    def __init__(self, verbose, target):
        self.verbose = verbose
        self.printed = None
        self.bar = keras.utils.Progbar(
            target, verbose=verbose, unit_name="iteration", stateful_metrics=["loss", "evaluations"]
        ) if verbose else None

    def update(self, iterations, loss, evaluations):
        if self.bar is not None:
            # Progbar's verbose=2 prints only finalized updates: finalize each one to get its line.
            line = self.verbose == 2
            self.bar.update(iterations, values=[("loss", loss), ("evaluations", evaluations)], finalize=line)
            self.printed = iterations if line else None

    def finish(self, iterations, loss, evaluations):
        if self.bar is not None and self.printed != iterations:
            self.bar.target = iterations
            self.bar.update(iterations, values=[("loss", loss), ("evaluations", evaluations)], finalize=True)


def _check_int(name, value, minimum):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"`{name}` must be an integer >= {minimum}, got {value!r}.")
