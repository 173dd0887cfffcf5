"""What `LBFGS.minimize` and `LBFGS.fit` run: full-batch L-BFGS in compiled graphs, with restarts.

`Minimization` is one run over one model and one set of examples. It advances
the optimiser in compiled segments (`CompiledRun`: TFP's `lbfgs_minimize`
inside `tf.function`), keeps the best finite point found, restarts from it with
a fresh history after a failure, and ends with an `LBFGSResult`. A segment runs
about `SEGMENT_SECONDS` at most (at least one iteration), so that Python sees a
`KeyboardInterrupt` (Ctrl-C) between segments, where `Minimization.interrupt`
leaves the model at the best weights. `Progress` draws the Keras progress bar
between segments.

The options (iterations, tolerances, chunking, dtype) come from the public
`keras_subset.LBFGS`, which owns this machinery; nothing here is public API
but `LBFGSResult`.
"""

import dataclasses
import math
import time
import types
import warnings
import weakref

import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp
import keras

from keras_subset import data as data_lib
from keras_subset import lbfgs_loop
from keras_subset.objective import Objective, check_targets, random_preprocessing_layers
from keras_subset.tracing import ExampleFree, signature


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
        num_examples: Examples in the objective (with augmented copies, N * (1 + copies)).
        dead_model: Whether `LBFGS.minimize` ended at a dead model: its outputs the
            same for every example checked (`keras_subset.dead_model`; a
            `DeadModelWarning` said so). Checked only where the run claims a
            minimum (`converged` or `failed`), by one forward pass of up to 256
            examples that `evaluations` does not count.
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
    dead_model: bool = False

    def as_logs(self, prefix=""):
        """Returns the figures as a flat dict of numbers (for Keras `logs`)."""
        return {
            f"{prefix}loss": self.loss,
            f"{prefix}iterations": self.iterations,
            f"{prefix}evaluations": self.evaluations,
            f"{prefix}gradient_norm": self.gradient_norm,
            f"{prefix}seconds": self.seconds,
        }



def _error_line(error):
    """The line of a TensorFlow error that says what went wrong, without the graph's traceback."""
    lines = [l.strip() for l in error.message.splitlines() if l.strip() and not l[0].isspace()]
    lines = [l for l in lines if not l.startswith(("Graph execution error", "Detected at node", "File "))]
    line = lines[-1] if lines else error.message.strip()
    return line.split("  Label values:")[0].split(" [[")[0].strip()


def not_fitting(error):
    """The `ValueError` for a TensorFlow `InvalidArgumentError` of an evaluation: data the model cannot take."""
    return ValueError(
        f"`y` or `x` does not fit the model: the loss could not be evaluated ({_error_line(error)}). Class "
        "labels in `y` must lie within the model's outputs, and `x` must have the shape the model takes."
    )


def first_step_scale(gradient):
    """The coordinate scale that makes the first L-BFGS step SciPy's: length 1 along -g.

    Without curvature pairs an L-BFGS step is the raw negative gradient, whose
    length is the gradient's. The optimiser works in u = position / scale; with
    scale**2 = 1 / |g|_2 its first trial step, -g_u = -g * scale in u, is
    -g / |g|_2 in the model's weights, as in SciPy's L-BFGS-B. (Until 2026-12 the
    rule was PyTorch's, min(1, 1/|g|_1) * -g: shorter by up to sqrt(P); it cost
    up to 6 times SciPy's loss at equal evaluations, and the dead-ReLU case it
    was made for is not its doing: see docs/engine.md, "First step".)

    Args:
        gradient: The gradient at the starting weights, a vector.

    Returns:
        The scale, a Python float.
    """
    # In float64: a float32 norm overflows where the entries are about 1e19 (scale 0 then).
    return (1.0 / max(float(tf.norm(tf.cast(gradient, tf.float64))), 1e-30)) ** 0.5


# The evaluation budget when there is none: more than any run can spend.
_NO_BUDGET = np.iinfo(np.int32).max

# About how many seconds one compiled segment runs (at least one iteration): Python sees a Ctrl-C
# (`KeyboardInterrupt`) only between segments. Each boundary costs a return to Python and a look at
# the state (2.9 ms measured for P = 101,770 on a busy 2-core CPU), so one a second is lost in the
# noise of any run; runs shorter than this are one segment, as before.
SEGMENT_SECONDS = 1.0


class Minimization:
    """One L-BFGS minimisation, advanced in compiled segments; keeps the best point found."""

    def __init__(
        self, options, model, x, y, sample_weight, loss, history=None, class_weight=None,
        augment=None, copies=0, seed=None, ids=None,
    ):
        """Checks the inputs and evaluates the starting point (one evaluation).

        Args:
            options: The `LBFGS` whose settings apply.
            model, x, y, sample_weight, loss: As for `LBFGS.minimize`.
            history: A finished `Minimization` of the same model whose curvature
                pairs (and coordinate scale) the first segment starts with, so a
                warm start on new examples keeps its inverse-Hessian estimate
                (`line_search="initial_step"` only; ignored otherwise).
            class_weight: A dict `{class: weight}`, turned into sample weights as `fit` does.
            augment, copies, seed: Fixed augmented copies of every example
                (`keras_subset.augment.Copies`).
            ids: The examples' positions in the training set (default `0 .. N-1`),
                from which their copies are drawn.
        """
        self.start_time = time.perf_counter()
        self.options = options
        self.x, self.y, self.sample_weight = data_lib.to_arrays(x, y, sample_weight)
        if self.y is None:
            raise ValueError("`y` is None: L-BFGS needs targets (pass `y`, or a dataset of (x, y)).")
        self.sample_weight = data_lib.apply_class_weight(self.y, self.sample_weight, class_weight)
        self.objective, self.run = compiled_run(
            options, model, loss, (augment, copies, seed), data=signature(self.x, self.y, self.sample_weight)
        )
        check_targets(model, self.y, loss)
        random_layers = random_preprocessing_layers(model)
        if random_layers and not options.training:
            warnings.warn(
                f"The model holds random preprocessing layers ({random_layers}), which the L-BFGS "
                "objective runs in inference mode (training=False), where they do nothing: it fits the examples "
                "as they are. For augmentation with L-BFGS pass those layers as `augment=` with `copies=` "
                "(fixed augmented copies of every example), and leave them out of the model.",
                UserWarning,
                stacklevel=3,
            )
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
        n = data_lib.num_examples(self.x)
        if self.objective.copies is not None:
            ids = np.arange(n, dtype=np.int64) if ids is None else np.asarray(ids, np.int64)
            ids = tf.constant(ids)
            if strategy.num_replicas_in_sync > 1:
                ids = Objective.shard(strategy, ids)
        else:
            ids = None
        position = self.objective.position()
        try:
            # The data with the full-batch divisors of the losses (counted, or measured by one forward
            # pass where masks need it; see keras_loss).
            self.tensors = self.objective.data(*self.tensors, ids=ids)
            started = time.perf_counter()
            value, gradient = self.run.value_and_gradient(position, *self.tensors)
            self.initial_value = float(value)  # (waits for the evaluation)
            # The first guess of an iteration's seconds, for the first segment's length (too long
            # when this call traced the graph: the first segments are short then).
            self._iteration_seconds = time.perf_counter() - started
        except tf.errors.InvalidArgumentError as error:
            # What the checks above cannot see (labels of a custom loss, shapes the model refuses).
            raise not_fitting(error) from error
        bad = int(np.size(gradient) - np.count_nonzero(np.isfinite(gradient.numpy())))
        if not math.isfinite(self.initial_value) or bad:
            part = f"the loss is {self.initial_value}" if not math.isfinite(self.initial_value) else (
                f"the loss is {self.initial_value:.6g}, but {bad} of its {np.size(gradient)} gradient entries are "
                "NaN or Inf"
            )
            raise ValueError(
                f"The loss at the starting weights is not finite: {part}. Check the labels (within the "
                "model's outputs), the loss and the model's weights (the inputs were checked: finite)."
            )
        # The optimiser works in scaled coordinates u = position / scale whose first step is
        # SciPy's (see `first_step_scale`); later steps are scaled by the curvature estimate.
        self.scale = first_step_scale(gradient)
        self._initial_history = None
        if history is not None and options.line_search == "initial_step" and history.pairs() is not None:
            # The pairs live in the previous run's coordinates: keep its scale.
            self.scale = history.scale
            self._initial_history = history.pairs()
        self.best_position, self.best_value, self.best_gradient = position, self.initial_value, gradient
        # Counts of the runs before the latest restart; the initial check is one evaluation.
        self._iterations_before, self._evaluations_before = 0, 1
        self.iterations, self.evaluations, self.restarts = 0, 1, 0
        self.state, self.converged, self.failed, self.done = None, False, False, False
        self.budget_spent, self.interrupted = False, False
        self.failures = []  # why each failed segment failed, in words
        # Non-finite evaluations of the objective up to the last failure (see `_failure`).
        self._non_finite_before = int(self.objective.non_finite_evaluations.numpy())

    def advance(self, until_iteration):
        """Runs L-BFGS until `until_iteration` total iterations, convergence, the budget or final failure.

        In compiled segments of about `SEGMENT_SECONDS` each (at least one
        iteration; the length follows the seconds per iteration measured so
        far), so that a `KeyboardInterrupt` is seen within about one segment.
        Segments change no result: each resumes the previous one's state, with
        the same tolerances.
        """
        o = self.options
        dtype = self.objective.dtype
        # |f| that f_relative_tolerance is relative to: taken at each call and each restart, not at
        # each segment, so that the segments' lengths (from the clock) change nothing.
        f_reference = abs(self.best_value)
        while not self.done and self.iterations < until_iteration:
            length = max(1, int(SEGMENT_SECONDS / max(self._iteration_seconds, 1e-9)))
            end = min(until_iteration, self.iterations + length)
            budget = _NO_BUDGET if o.max_evaluations is None else o.max_evaluations - self._evaluations_before
            if o.max_evaluations is not None and o.line_search == "hager_zhang":
                # TFP's loop knows no budget: run short segments as it nears (about 3 evaluations
                # per iteration), and check between them.
                end = min(end, self.iterations + max(1, (o.max_evaluations - self.evaluations) // 4))
            # Tensors, not Python numbers: each new number would trace the loop again.
            end = tf.constant(end - self._iterations_before, tf.int32)
            budget = tf.constant(budget, tf.int32)
            # TFP compares |change of f| with f_relative_tolerance * f, which never holds for a
            # negative f (tfp issue 1391); compare it with f_relative_tolerance * |f| instead,
            # |f| taken at the start of each segment.
            f_tolerance = tf.constant(o.f_relative_tolerance * f_reference, dtype)
            scale = tf.constant(self.scale, dtype)
            started, iterations_before = time.perf_counter(), self.iterations
            if self.state is None:
                pairs = self._initial_history or self._no_pairs()
                self._initial_history = None  # a restart after a failure starts with no pairs
                self.state = self.run.start(
                    self.best_position / scale, tf.constant(self.best_value, dtype), self.best_gradient * scale,
                    *pairs, end, budget, f_tolerance, scale, *self.tensors,
                )
            else:
                self.state = self.run.resume(self.state, end, budget, f_tolerance, scale, *self.tensors)
            state = self.state
            value = float(state.objective_value)
            position = state.position * self.scale
            if math.isfinite(value) and value < self.best_value and np.all(np.isfinite(position.numpy())):
                self.best_position, self.best_value = position, value
                self.best_gradient = state.objective_gradient / self.scale
            self.iterations = self._iterations_before + int(state.num_iterations)
            self.evaluations = self._evaluations_before + int(state.num_objective_evaluations)
            if self.iterations > iterations_before:
                self._iteration_seconds = (time.perf_counter() - started) / (self.iterations - iterations_before)
            self.converged, self.failed = bool(state.converged), bool(state.failed)
            self.budget_spent = o.max_evaluations is not None and self.evaluations >= o.max_evaluations
            if self.converged or self.iterations >= o.max_iterations or self.budget_spent:
                self.done = True
            elif self.failed:
                self.failures.append(self._failure(state))
                if self.restarts >= o.max_restarts:
                    self.done = True
                else:  # Restart from the best point with a fresh history.
                    self.restarts += 1
                    self._iterations_before, self._evaluations_before = self.iterations, self.evaluations
                    self.state = None
                    f_reference = abs(self.best_value)

    def pairs(self):
        """The curvature pairs `(s, y, count)` of the latest segment (`initial_step` route), or `None`."""
        if self.state is None or not hasattr(self.state, "history_size") or int(self.state.history_size) == 0:
            return None
        return self.state.position_deltas, self.state.gradient_deltas, self.state.history_size

    def _no_pairs(self):
        history = tf.zeros([self.options.num_correction_pairs, self.objective.num_parameters], self.objective.dtype)
        return history, history, tf.constant(0)

    def _failure(self, state):
        """Why a segment failed, in words: a non-finite loss, or no further decrease.

        `lbfgs_loop` says `NON_FINITE` when every shrunk trial step was non-finite and
        `NO_DECREASE` when its line search ran out of iterations; when TFP's
        Hager-Zhang search reports `failed` (`SEARCH_FAILED`), and on TFP's own loop
        (`line_search="hager_zhang"`), which says only `failed`, the cause is a
        non-finite loss when the objective counted a non-finite evaluation since the
        previous failure (or the start), and no further decrease otherwise.
        """
        count = int(self.objective.non_finite_evaluations.numpy())
        non_finite_seen, self._non_finite_before = count > self._non_finite_before, count
        failure = int(getattr(state, "failure", 0))
        if failure == lbfgs_loop.NON_FINITE or (non_finite_seen and failure != lbfgs_loop.NO_DECREASE):
            return "the loss or its gradient became non-finite (NaN or Inf) along the search direction"
        return "the line search found no further decrease (no point meeting the Wolfe conditions)"

    def assign_best(self):
        """Writes the best weights found so far into the model."""
        self.objective.assign(self.best_position)

    def interrupt(self, interrupt, what):
        """Ends the run at a `KeyboardInterrupt` (Ctrl-C) between segments; the caller raises it again.

        The model takes the best weights reached (`finish`), the interrupt's
        message says where the run stopped, and its `result` attribute holds the
        `LBFGSResult` so far, as a run stopped by the caller would return it.

        Args:
            interrupt: The `KeyboardInterrupt` caught.
            what: The entry point, for the message (e.g. `"LBFGS.minimize"`).

        Returns:
            The `LBFGSResult`.
        """
        self.interrupted = True
        result = self.finish()
        interrupt.args = (
            f"{what} interrupted after {result.iterations} iterations ({result.evaluations} evaluations, "
            f"{result.seconds:.1f} s): the model holds the best weights reached, loss {result.loss:.6g} "
            f"(at the start {result.initial_loss:.6g}).",
        )
        interrupt.result = result
        return result

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
            num_examples=data_lib.num_examples(self.x) * self.objective.factor,
        )

    def _reason(self, gradient_norm):
        o = self.options
        if self.converged and gradient_norm <= o.tolerance:
            return f"converged: largest gradient entry {gradient_norm:.3g} <= tolerance {o.tolerance:g}"
        if self.converged:
            return "converged: position or loss change fell below x_tolerance or f_relative_tolerance"
        if self.budget_spent:
            return f"stopped: max_evaluations ({o.max_evaluations}) reached after {self.evaluations} evaluations"
        if self.failed:
            what = self.failures[-1] if self.failures else "the line search failed"
            if self.best_value >= self.initial_value:
                what += "; the starting weights were kept"
            else:
                what += f"; the best finite weights reached were kept (loss {self.best_value:.6g})"
            return f"stopped: {what} (after {self.restarts} restart(s) from the best point)"
        if self.interrupted:
            return f"interrupted (KeyboardInterrupt) after {self.iterations} iterations"
        if self.iterations >= o.max_iterations:
            return f"stopped: max_iterations ({o.max_iterations}) reached"
        return f"stopped after {self.iterations} iterations (by the caller)"


def example_free(function, leading, **kwargs):
    """`function(*leading arguments, *objective.data(...))` compiled with the examples' dimension free."""
    return ExampleFree(function, [leading + i for i in Objective.EXAMPLE_ENTRIES], **kwargs)


class CompiledRun:
    """The compiled graphs of one `minimize` call: start, resume, value-and-gradient.

    Both routes run over u = position / scale (see `Minimization`) and return a
    state with the fields `Minimization` reads (`position`, `objective_value`,
    `objective_gradient`, `num_iterations`, `num_objective_evaluations`,
    `converged`, `failed`):

    - `line_search="initial_step"`: `keras_subset.lbfgs_loop.minimize`, which
      accepts the initial step when it meets the Wolfe conditions and falls back
      to TFP's Hager-Zhang line search otherwise; it starts from the value and
      gradient `Minimization` already has, and honours the evaluation budget
      inside the graph.
    - `line_search="hager_zhang"`: TFP's `lbfgs_minimize` as it is (its first
      evaluation repeats the starting point's; the budget is checked between
      segments).
    """

    def __init__(self, objective, options):
        self.objective = objective
        # A snapshot of the settings the graphs hold, not the `LBFGS` itself: the run is shared
        # by every `LBFGS` with these settings, and a later trace must not read one that changed.
        self.options = types.SimpleNamespace(**dict(zip(_GRAPH_SETTINGS, _graph_settings(options))))
        # Each graph takes `objective.data`'s tuple after its own leading arguments; the examples'
        # dimension is traced free, so every subset size and warm start reuses the first trace.
        self.value_and_gradient = example_free(objective.value_and_gradient, 1, jit_compile=options.jit_compile)
        # The data term without gradient (held-out checks), compiled once per run too.
        self.value = example_free(objective.value, 1)
        tfp_route = options.line_search == "hager_zhang"
        start, resume = (
            (self._start_tfp, self._resume_tfp) if tfp_route else (self._start_initial_step, self._resume_initial_step)
        )
        if isinstance(tf.distribute.get_strategy(), tf.distribute.MultiWorkerMirroredStrategy):
            # TensorFlow (2.21) cannot build a cross-worker all-reduce inside TFP's nested
            # while/cond loops (its deferred instance-key capture fails with "You must feed a value
            # for placeholder tensor ... hager_zhang/cond/while/Placeholder"), so there the L-BFGS
            # loop runs eagerly and each evaluation is one compiled call holding the all-reduce.
            self.start, self.resume = start, resume
        else:
            # resume(state, max_iterations, budget, f_tolerance, scale, *data)
            self.resume = example_free(resume, 5)
            # start(u, value, gradient, s, y, count, max_iterations, budget, f_tolerance, scale, *data)
            # (`ExampleFree` with no example arguments: its first trace goes through
            # `get_concrete_function`, which TensorFlow's retracing detector does not count, so
            # that a sixth model does not get a warning that "tracing is expensive".)
            self.start = _Start(self.resume, start=example_free(start, 10)) if tfp_route else _Start(
                self.resume, initial_state=ExampleFree(self._initial_state, ())
            )

    def _scaled(self, scale, *data):
        def scaled_value_and_gradient(u):
            value, gradient = self.value_and_gradient(u * scale, *data)
            return value, gradient * scale

        return scaled_value_and_gradient

    # -- line_search="initial_step" --------------------------------------------------------
    def _initial_step(self, state, max_iterations, budget, f_tolerance, scale, *data):
        o = self.options
        return lbfgs_loop.minimize(
            self._scaled(scale, *data),
            previous_state=state,
            num_correction_pairs=o.num_correction_pairs,
            # The tolerances are stated for the position; translate them to u = position / scale.
            tolerance=o.tolerance * scale,
            x_tolerance=o.x_tolerance / scale,
            f_absolute_tolerance=f_tolerance,
            max_iterations=max_iterations,
            max_evaluations=budget,
            max_line_search_iterations=o.max_line_search_iterations,
        )

    def _initial_state(self, u, value, gradient_u, s_history, y_history, history_size, scale):
        """The state before the first iteration, at a point evaluated already, with the pairs given."""
        o = self.options
        state = lbfgs_loop.state_at(u, value, gradient_u, o.num_correction_pairs, o.tolerance * scale)
        return state._replace(position_deltas=s_history, gradient_deltas=y_history, history_size=history_size)

    def _start_initial_step(
        self, u, value, gradient_u, s_history, y_history, history_size, max_iterations, budget, f_tolerance, scale,
        *data,
    ):
        state = self._initial_state(u, value, gradient_u, s_history, y_history, history_size, scale)
        return self._initial_step(state, max_iterations, budget, f_tolerance, scale, *data)

    def _resume_initial_step(self, state, max_iterations, budget, f_tolerance, scale, *data):
        return self._initial_step(state, max_iterations, budget, f_tolerance, scale, *data)

    # -- line_search="hager_zhang": TFP's lbfgs_minimize ------------------------------------
    def _tfp(self, max_iterations, f_tolerance, scale, *data, **start):
        o = self.options
        return tfp.optimizer.lbfgs_minimize(
            self._scaled(scale, *data),
            num_correction_pairs=o.num_correction_pairs,
            tolerance=o.tolerance * scale,
            x_tolerance=o.x_tolerance / scale,
            f_relative_tolerance=0.0,
            f_absolute_tolerance=f_tolerance,
            max_iterations=max_iterations,
            max_line_search_iterations=o.max_line_search_iterations,
            **start,
        )

    def _start_tfp(
        self, u, value, gradient_u, s_history, y_history, history_size, max_iterations, budget, f_tolerance, scale,
        *data,
    ):
        # TFP evaluates the start itself, keeps no pairs from elsewhere; the budget is checked between segments.
        del value, gradient_u, s_history, y_history, history_size, budget
        return self._tfp(max_iterations, f_tolerance, scale, *data, initial_position=u)

    def _resume_tfp(self, state, max_iterations, budget, f_tolerance, scale, *data):
        del budget
        return self._tfp(
            max_iterations, f_tolerance, scale, *data,
            initial_position=None, previous_optimizer_results=state,
        )


class _Start:
    """`CompiledRun.start`, traced so that no later segment of a run traces anything.

    Called as `(u, value, gradient, s, y, count, max_iterations, budget,
    f_tolerance, scale, *data)`. On the initial-step route (`initial_state`)
    the first state comes from a small graph and the loop is `resume`'s: one
    loop graph however many segments a run takes. TFP's route (`start`, which
    evaluates the start itself) has a loop graph of its own, and its first call
    traces `resume`'s too.
    """

    def __init__(self, resume, initial_state=None, start=None):
        self.resume, self.initial_state, self.start = resume, initial_state, start

    def __call__(self, u, value, gradient_u, s_history, y_history, history_size, *rest):
        if self.initial_state is not None:
            scale = rest[3]
            state = self.initial_state(u, value, gradient_u, s_history, y_history, history_size, scale)
            return self.resume(state, *rest)
        state = self.start(u, value, gradient_u, s_history, y_history, history_size, *rest)
        self.resume.trace(state, *rest)
        return state

    def experimental_get_tracing_count(self):
        """Start graphs traced so far (the initial state's, or TFP's start; the loop's are `resume`'s)."""
        return (self.initial_state or self.start).experimental_get_tracing_count()


class Progress:
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


# Compiled runs kept per model (in the model's `__dict__`, so they go with it), newest last.
_RUNS_ATTRIBUTE = "_keras_subset_compiled_runs"
_RUNS_KEPT = 4


def compiled_run(options, model, loss, copies=(None, 0, None), data=None):
    """Returns `(objective, CompiledRun)` for `model`, reusing an earlier call's when they fit.

    Tracing the L-BFGS loop costs seconds, so `minimize` calls on the same model,
    loss, variables, augmentation and kind of data, by this `LBFGS` or by any
    other with the same graph settings (`_graph_settings`), reuse the traced
    graphs; the model keeps the last `_RUNS_KEPT` of them. `options._cache` holds
    the last one used (a weak reference to the model, the key, the objective and
    the run). `data` is `keras_subset.tracing.signature(x, y, sample_weight)`:
    the graphs are traced for its ranks and dtypes (only the number of examples
    is free), and the objective learns the form of each loss's divisor from the
    first data it sees (`keras_loss`), sample weights or none.
    """
    resolved = loss if loss is not None else getattr(model, "loss", None)
    # A recompiled model has a new loss container even where `model.loss` is the same string.
    container = None if loss is not None else getattr(model, "_compile_loss", None)
    key = (
        id(resolved),
        id(container),
        data,
        tuple(id(v) for v in model.trainable_variables),
        len(model.non_trainable_variables),
        _graph_settings(options),
        # The augmentation, the number of copies and their seed, where there are copies.
        (id(copies[0]),) + tuple(copies[1:]) if copies[1] else None,
    )
    runs = model.__dict__.get(_RUNS_ATTRIBUTE)
    if runs is None:
        runs = {}
        # Past Keras's attribute tracking: these are not the model's state.
        object.__setattr__(model, _RUNS_ATTRIBUTE, runs)
    if key in runs:
        entry = runs.pop(key)
    else:
        objective = Objective(
            model, loss=loss, chunk_size=options.chunk_size, dtype=options.dtype, training=options.training,
            weight_decay=options.weight_decay, augment=copies[0], copies=copies[1], seed=copies[2],
        )
        # The entry holds `resolved` and `container`, so their ids cannot be reused while it lives.
        entry = (objective, CompiledRun(objective, options), resolved, container)
        while len(runs) >= _RUNS_KEPT:
            runs.pop(next(iter(runs)))
    runs[key] = entry
    options._cache = (weakref.ref(model), key, entry[0], entry[1])
    return entry[0], entry[1]


_GRAPH_SETTINGS = (
    "line_search", "chunk_size", "training", "weight_decay", "dtype", "jit_compile",
    "num_correction_pairs", "tolerance", "x_tolerance", "max_line_search_iterations",
)


def _graph_settings(options):
    """The `LBFGS` settings the compiled graphs hold as constants (a run is shared only when they agree)."""
    return tuple(getattr(options, name) for name in _GRAPH_SETTINGS)
