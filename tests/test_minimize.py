"""LBFGS.minimize on real MNIST (keras_subset/minimize.py): SciPy's optimum, chunking, failures, restarts, graphs."""

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import tensorflow as tf
import keras

import keras_subset
from keras_subset.minimize import Minimization
from keras_subset.objective import Objective

from conftest import data_file, interrupt_after, interrupt_delay, small_cnn
from convex import downsampled, logistic_regression, numpy_objective, scipy_optimum


@pytest.mark.fast
@pytest.mark.parametrize("line_search", ["initial_step", "hager_zhang"])
def test_float64_reaches_scipy_optimum_on_convex_problem(mnist, line_search):
    x, y = downsampled(mnist, 3000)
    model = logistic_regression(x.shape[1])
    reference = scipy_optimum(model, x, y)
    result = keras_subset.LBFGS(
        max_iterations=1000, tolerance=1e-9, dtype="float64", line_search=line_search
    ).minimize(model, x, y)

    found = np.concatenate([w.ravel() for w in model.get_weights()])
    assert result.converged, result
    assert result.loss == pytest.approx(reference.fun, rel=1e-10)
    np.testing.assert_allclose(found, reference.x, atol=2e-5)
    # The reported loss is the loss at the weights the model holds.
    assert numpy_objective(found, x, y)[0] == pytest.approx(result.loss, rel=1e-12)
    assert result.loss < result.initial_loss
    if line_search == "initial_step":
        # No more evaluations than SciPy's L-BFGS-B needs (99 here), give or take 15 %: TFP's own
        # loop, whose line search always brackets, needed 220.
        # 107 before the objective summed its terms in Keras's order, 110 after: the same values to 1e-16
        # (checked), but round-off alone moves the path by a few evaluations, so the bound is 1.15x.
        assert result.evaluations <= 1.15 * reference.nfev, (result.evaluations, reference.nfev)
    else:
        assert result.evaluations > 2 * result.iterations


def test_chunked_minimize_matches_single_pass(mnist):
    x, y = mnist[0][:600], mnist[1][:600]
    results = []
    for chunk_size in (None, 128):
        model = small_cnn(seed=3)
        result = keras_subset.LBFGS(max_iterations=5, chunk_size=chunk_size, dtype="float64").minimize(model, x, y)
        results.append((result, np.concatenate([w.ravel() for w in model.get_weights()])))
    (single, w_single), (chunked, w_chunked) = results
    assert chunked.loss == pytest.approx(single.loss, rel=1e-4)
    assert chunked.iterations == single.iterations == 5
    # float32 round-off differs between the two summation orders and L-BFGS amplifies it a little.
    np.testing.assert_allclose(w_chunked, w_single, atol=1e-2)


def test_jit_compile_gives_the_same_result(mnist):
    x, y = mnist[0][:500], mnist[1][:500]
    losses = []
    for jit_compile in (False, True):
        model = small_cnn(seed=3)
        result = keras_subset.LBFGS(max_iterations=5, jit_compile=jit_compile, chunk_size=128).minimize(model, x, y)
        losses.append(result.loss)
    # XLA sums in another order: float32 round-off (1e-7), which five nonconvex L-BFGS iterations
    # amplify to about 1e-4 (the cubic second trial uses differences of nearby losses).
    assert losses[1] == pytest.approx(losses[0], rel=1e-3)


@pytest.mark.parametrize("line_search", keras_subset.lbfgs.LINE_SEARCHES)
def test_nan_during_run_never_leaves_nan_weights(mnist, line_search):
    x, y = mnist[0][:300], mnist[1][:300]

    def loss(y_true, y_pred):
        # Cross-entropy, but NaN once the model is more than 50% sure on average:
        # the optimiser must run into the NaN region on its way down.
        ce = keras.losses.sparse_categorical_crossentropy(y_true, y_pred)
        confident = tf.reduce_mean(tf.reduce_max(y_pred, axis=-1)) > 0.5
        return tf.where(confident, tf.fill(tf.shape(ce), np.nan), ce)

    model = small_cnn(seed=5)
    optimizer = keras_subset.LBFGS(max_iterations=50, max_restarts=1, line_search=line_search)
    result = optimizer.minimize(model, x, y, loss=loss)
    assert result.failed and result.restarts == 1, result  # it did run into the NaN region
    # The reason says which of the two failures it was.
    assert "non-finite" in result.reason and "no further decrease" not in result.reason, result.reason
    assert "the best finite weights reached were kept" in result.reason, result.reason
    assert all(np.all(np.isfinite(w)) for w in model.get_weights())
    assert np.isfinite(result.loss) and result.loss <= result.initial_loss
    objective = Objective(model, loss=loss)
    value, _ = objective.value_and_gradient(objective.position(), tf.constant(x), tf.constant(y))
    assert float(value) == pytest.approx(result.loss, rel=1e-5)


@pytest.mark.fast
def test_non_finite_initial_loss_is_an_error(mnist):
    x, y = mnist[0][:50].copy(), mnist[1][:50]
    x[3, 5, 5, 0] = np.nan
    model = small_cnn()
    before = model.get_weights()
    with pytest.raises(ValueError, match=r"`x` holds NaN at example 3 \(entry \(3, 5, 5, 0\)\)"):
        keras_subset.LBFGS().minimize(model, x, y)
    for a, b in zip(before, model.get_weights()):
        np.testing.assert_array_equal(a, b)


@pytest.mark.fast
def test_a_finite_loss_with_a_non_finite_gradient_at_the_start_is_named_as_such(mnist):
    # Issue 31, C: the message printed the finite loss as the part that was not finite.
    x, y = mnist[0][:50], mnist[1][:50]

    @tf.custom_gradient
    def nan_gradient(value):
        return tf.identity(value), lambda upstream: upstream * np.nan

    def loss(y_true, y_pred):  # the cross-entropy, with a NaN gradient
        return nan_gradient(keras.losses.sparse_categorical_crossentropy(y_true, y_pred))

    model = small_cnn()
    with pytest.raises(ValueError, match=r"the loss is 2\.\d+, but 1490 of its 1490 gradient entries are NaN or Inf"):
        keras_subset.LBFGS().minimize(model, x, y, loss=loss)


@pytest.mark.parametrize("line_search", keras_subset.lbfgs.LINE_SEARCHES)
def test_failed_line_search_restarts_then_keeps_the_best_weights(mnist, line_search):
    x, y = mnist[0][:200], mnist[1][:200]

    def misleading(y_true, y_pred):
        # The value is the cross-entropy but the gradient points uphill: no line search can succeed.
        ce = keras.losses.sparse_categorical_crossentropy(y_true, y_pred)
        return 2.0 * tf.stop_gradient(ce) - ce

    model = small_cnn(seed=4)
    before = model.get_weights()
    optimizer = keras_subset.LBFGS(max_iterations=20, max_restarts=2, line_search=line_search)
    result = optimizer.minimize(model, x, y, loss=misleading)
    assert result.failed and not result.converged and result.restarts == 2, result
    assert "starting weights were kept" in result.reason
    # Every value was finite: the reason must not blame a non-finite loss.
    assert "no further decrease" in result.reason and "non-finite" not in result.reason, result.reason
    assert result.loss == result.initial_loss
    for a, b in zip(before, model.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_f_relative_tolerance_works_for_negative_losses(mnist):
    # TFP compares |df| with f_relative_tolerance * f, which never holds when f < 0.
    x, y = mnist[0][:300], mnist[1][:300]

    def shifted(y_true, y_pred):
        return keras.losses.sparse_categorical_crossentropy(y_true, y_pred) - 10.0

    results = []
    for loss in (shifted, "sparse_categorical_crossentropy"):
        model = small_cnn(seed=2)
        results.append(keras_subset.LBFGS(max_iterations=300, f_relative_tolerance=1e-3).minimize(model, x, y, loss=loss))
    negative, positive = results
    assert negative.loss < 0 and negative.converged and negative.iterations < 300, negative
    # Relative to |f| ~ 10 instead of f ~ 1, the shifted loss stops no later.
    assert positive.converged and negative.iterations <= positive.iterations


def test_repeated_calls_reuse_the_compiled_graphs_and_continue(mnist):
    x, y = mnist[0][:300], mnist[1][:300]
    model = small_cnn(seed=1)
    optimizer = keras_subset.LBFGS(max_iterations=3)
    first = optimizer.minimize(model, x, y)
    graphs = optimizer._cache[3].start
    second = optimizer.minimize(model, x, y)
    assert optimizer._cache[3].start is graphs
    assert second.initial_loss == pytest.approx(first.loss, rel=1e-6) and second.loss < first.loss
    other = small_cnn(seed=2)
    optimizer.minimize(other, x, y)
    assert optimizer._cache[3].start is not graphs


@pytest.mark.parametrize("line_search", ["initial_step", "hager_zhang"])
def test_per_iteration_progress_traces_once_and_changes_nothing(mnist, capsys, line_search):
    x, y = mnist[0][:300], mnist[1][:300]
    model = small_cnn(seed=1)
    initial = model.get_weights()
    # Chunks of 128 examples in every graph, so the segments' graphs sum alike.
    optimizer = keras_subset.LBFGS(
        max_iterations=6, progress_every=1, dtype="float64", line_search=line_search, chunk_size=128
    )
    silent = optimizer.minimize(model, x, y)
    silent_weights = model.get_weights()
    model.set_weights(initial)
    shown = optimizer.minimize(model, x, y, verbose=2)
    model.set_weights(initial)
    again = optimizer.minimize(model, x, y, verbose=2)
    graphs = optimizer._cache[3]
    # Each segment ends at another iteration count: passed as a tensor, it traces nothing new.
    assert graphs.start.experimental_get_tracing_count() == 1
    assert graphs.resume.experimental_get_tracing_count() == 1
    assert shown.iterations == again.iterations == silent.iterations == 6
    assert shown.evaluations == silent.evaluations
    np.testing.assert_allclose(shown.loss, silent.loss, rtol=1e-10)
    for a, b in zip(model.get_weights(), silent_weights):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)
    lines = [l for l in capsys.readouterr().out.splitlines() if "/6" in l]
    assert [l.split("/")[0].strip() for l in lines[:6]] == ["1", "2", "3", "4", "5", "6"], lines


@pytest.mark.parametrize("line_search", ["initial_step", "hager_zhang"])
def test_evaluation_budget_is_honoured(mnist, line_search):
    x, y = mnist[0][:400], mnist[1][:400]
    model = small_cnn(seed=6)
    result = keras_subset.LBFGS(max_iterations=500, max_evaluations=30, line_search=line_search).minimize(model, x, y)
    assert "max_evaluations (30) reached" in result.reason, result
    assert not result.converged and not result.failed
    # No iteration starts once the budget is spent; only the last iteration's line search may
    # overrun it (TFP's own loop is checked between short segments, about 3 evaluations each).
    assert 30 <= result.evaluations <= 36, result
    assert result.loss < result.initial_loss
    # The model holds the weights of the reported loss.
    assert model.evaluate(x, y, batch_size=400, verbose=0)[0] == pytest.approx(result.loss, rel=1e-5)


def test_labels_outside_the_outputs_are_refused_naming_y(mnist):
    x, y = mnist[0][:200], mnist[1][:200].copy()
    y[17] = 12  # the model has 10 outputs
    model = small_cnn(seed=1)
    before = model.get_weights()
    # The compiled loss, and the same loss given by name or as an object.
    for loss in (None, "sparse_categorical_crossentropy", keras.losses.SparseCategoricalCrossentropy()):
        with pytest.raises(ValueError, match=r"`y` holds labels outside \[0, 10\).*12"):
            keras_subset.LBFGS(max_iterations=2).minimize(model, x, y, loss=loss)
    with pytest.raises(ValueError, match=r"`y` holds labels outside \[0, 10\).*-1"):
        keras_subset.LBFGS(max_iterations=2).minimize(model, x, np.where(y == 12, -1, y))
    with pytest.raises(ValueError, match=r"`y` holds labels outside \[0, 10\)"):
        keras_subset.LBFGS(max_iterations=2).fit(model, x, y, verbose=0)
    # A loss that only calls it inside cannot be recognised: its first evaluation's error names `y`.
    def wrapped(y_true, y_pred):
        return 2.0 * keras.losses.sparse_categorical_crossentropy(y_true, y_pred)

    with pytest.raises(ValueError, match=r"`y`.*label value of 12"):
        keras_subset.LBFGS(max_iterations=2).minimize(model, x, y, loss=wrapped)
    for a, b in zip(before, model.get_weights()):
        np.testing.assert_array_equal(a, b)
    # Keras's ignore_class is a label the loss accepts.
    ignoring = keras.losses.SparseCategoricalCrossentropy(ignore_class=-1)
    result = keras_subset.LBFGS(max_iterations=2).minimize(model, x, np.where(y == 12, -1, y), loss=ignoring)
    assert np.isfinite(result.loss)


@pytest.mark.fast
def test_first_step_is_scipys_unit_step(mnist):
    x, y = mnist[0][:500], mnist[1][:500]
    run = Minimization(keras_subset.LBFGS(), small_cnn(seed=1), x, y, None, None)
    # In u = position / scale the first step is -g_u = -g * scale, in the weights -g * scale**2:
    # length 1 along -g, SciPy's L-BFGS-B's first step.
    assert run.scale**2 * float(tf.norm(run.best_gradient)) == pytest.approx(1.0, rel=1e-6)


@pytest.mark.parametrize("seed", [0, 2, 3])
def test_first_step_does_not_leave_every_relu_dead_on_unscaled_images(mnist, seed):
    # The case behind the former first step (PyTorch's min(1, 1/|g|_1) * -g): a long first step
    # killed every ReLU and left L-BFGS on the constant-output plateau, loss ln 10. Images left in
    # 0..255 make the gradient large (loss above 100 at the start), the hardest such start here.
    x, y = mnist[0][:2000] * 255.0, mnist[1][:2000]
    model = small_cnn(seed=seed)
    result = keras_subset.LBFGS(max_iterations=30).minimize(model, x, y)
    assert result.initial_loss > 100
    assert result.loss < np.log(10.0) - 0.2, result
    convolution = keras.Model(model.inputs[0], model.layers[0].output)
    alive = np.max(convolution(x[:500]).numpy(), axis=(0, 1, 2)) > 0
    assert alive.any(), "every filter of the first layer is dead"


def test_mixed_bfloat16_model_is_minimised_with_float32_weights_and_sums(mnist):
    # bfloat16 follows Keras's dtype policy: a model built under "mixed_bfloat16" computes in
    # bfloat16 and keeps float32 weights; L-BFGS's position, history and chunk sums stay float32.
    x, y = mnist[0][:1000], mnist[1][:1000]
    keras.config.set_dtype_policy("mixed_bfloat16")
    try:
        model = small_cnn(seed=1)
    finally:
        keras.config.set_dtype_policy("float32")
    reference = small_cnn(seed=1)  # the same weights in float32
    assert model.layers[0].compute_dtype == "bfloat16"
    result = keras_subset.LBFGS(max_iterations=30, chunk_size=256).minimize(model, x, y)
    assert all(v.dtype == "float32" for v in model.trainable_variables)
    assert result.loss < 0.5 * result.initial_loss
    # The reported loss is Keras's loss of the bfloat16 model at its final weights ...
    assert result.loss == pytest.approx(model.evaluate(x, y, batch_size=1000, verbose=0)[0], rel=1e-2)
    # ... and the float32 model at those weights agrees to bfloat16's precision.
    reference.set_weights(model.get_weights())
    assert result.loss == pytest.approx(reference.evaluate(x, y, batch_size=1000, verbose=0)[0], rel=5e-2)


def _warm_lbfgs(model, x, y, max_iterations):
    """An `LBFGS` whose graphs for `model` and `x`, `y` are traced, and `interrupt_delay` for 30 iterations.

    One iteration, then ten timed ones, are run; the weights are put back.
    """
    optimizer = keras_subset.LBFGS(max_iterations=1, max_restarts=100)
    initial = model.get_weights()
    optimizer.minimize(model, x, y)
    optimizer.max_iterations = 10  # only Python reads it: the graphs stay
    delay = interrupt_delay(lambda: optimizer.minimize(model, x, y), steps=10, wanted=30)
    model.set_weights(initial)
    optimizer.max_iterations = max_iterations
    return optimizer, delay


@pytest.mark.parametrize("verbose", [0, 1])
def test_ctrl_c_stops_minimize_within_a_segment_and_keeps_the_best_weights(mnist, verbose):
    # Issue 31, B: with verbose=0 the whole run was one compiled segment, so Ctrl-C waited for its
    # end, and with either verbose the model went back to its starting weights.
    x, y = mnist[0][:4000], mnist[1][:4000]
    model = small_cnn(seed=1)
    optimizer, delay = _warm_lbfgs(model, x, y, 1000)  # 1,000 iterations: about 30 s here
    started = time.perf_counter()
    with pytest.raises(KeyboardInterrupt) as caught, interrupt_after(delay):
        optimizer.minimize(model, x, y, verbose=verbose)
    stopped = time.perf_counter() - started
    result = caught.value.result
    assert stopped < delay + 5.0 and result.iterations < 1000 / 3, (stopped, delay, result)
    assert f"interrupted after {result.iterations} iterations" in str(caught.value)
    assert "interrupted" in result.reason
    # The model holds the best weights reached, below the start.
    assert result.loss < 0.8 * result.initial_loss
    assert model.evaluate(x, y, batch_size=4000, verbose=0)[0] == pytest.approx(result.loss, rel=1e-4)


_CHILD = """
import json, signal, sys, time
signal.signal(signal.SIGINT, signal.default_int_handler)  # a background process may ignore SIGINT
sys.path.insert(0, "tests")
import keras_subset
from conftest import small_cnn
import test_minimize
d = __import__("numpy").load(sys.argv[1])
x = d["x_train"][:4000, ..., None].astype("float32") / 255.0
y = d["y_train"][:4000].astype("int32")
model = small_cnn(seed=1)
optimizer, delay = test_minimize._warm_lbfgs(model, x, y, 1000)
print("ready", delay, flush=True)
try:
    optimizer.minimize(model, x, y)
except KeyboardInterrupt as interrupt:
    caught = time.time()
    result = interrupt.result
    print(json.dumps(dict(caught=caught, message=str(interrupt), iterations=result.iterations, loss=result.loss,
                          initial_loss=result.initial_loss,
                          evaluated=model.evaluate(x, y, batch_size=4000, verbose=0)[0])), flush=True)
"""


def test_ctrl_c_from_a_parent_process_stops_minimize_and_keeps_the_best_weights(mnist):
    # The same Ctrl-C as a terminal sends it: SIGINT from another process.
    child = subprocess.Popen(
        [sys.executable, "-c", _CHILD, data_file("mnist.npz")], stdout=subprocess.PIPE, text=True,
        cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
    )
    try:
        ready, delay = child.stdout.readline().split()
        assert ready == "ready"
        time.sleep(float(delay))
        sent = time.time()
        child.send_signal(signal.SIGINT)
        out, _ = child.communicate(timeout=300)
    finally:
        child.kill()
    report = json.loads(out.strip().splitlines()[-1])
    stopped = report["caught"] - sent  # from the signal to the child's `except KeyboardInterrupt`
    assert child.returncode == 0 and stopped < 5.0 and report["iterations"] < 1000 / 3, (stopped, report)
    assert "the model holds the best weights reached" in report["message"]
    assert report["loss"] < 0.8 * report["initial_loss"]
    assert report["evaluated"] == pytest.approx(report["loss"], rel=1e-4)


def test_segments_of_any_length_give_the_same_run(mnist, monkeypatch):
    # The segments' lengths come from the clock; the run must not depend on them.
    x, y = mnist[0][:500], mnist[1][:500]
    runs = []
    for seconds in (1e9, 0.0):  # one segment; one iteration a segment
        monkeypatch.setattr(keras_subset.minimize, "SEGMENT_SECONDS", seconds)
        model = small_cnn(seed=2)
        result = keras_subset.LBFGS(max_iterations=12, f_relative_tolerance=1e-9).minimize(model, x, y)
        runs.append((result, model.get_weights()))
    (one, weights_one), (many, weights_many) = runs
    assert (one.iterations, one.evaluations, one.loss) == (many.iterations, many.evaluations, many.loss)
    for a, b in zip(weights_one, weights_many):
        np.testing.assert_array_equal(a, b)


@pytest.mark.fast
def test_random_preprocessing_layers_that_the_objective_turns_off_get_a_warning(mnist):
    # Issue 31, E: RandomFlip & co. in the model do nothing in inference mode, the objective's
    # default; the warning points to `augment=` and `copies=`.
    x, y = mnist[0][:200], mnist[1][:200]
    keras.utils.set_random_seed(1)
    model = keras.Sequential([
        keras.Input((28, 28, 1)),
        keras.layers.RandomFlip("horizontal"),
        keras.layers.Flatten(),
        keras.layers.Dense(10, activation="softmax"),
    ])
    model.compile(loss="sparse_categorical_crossentropy")
    match = r"random preprocessing layers \(RandomFlip\).*inference mode.*`augment=`.*`copies=`"
    with pytest.warns(UserWarning, match=match):
        keras_subset.LBFGS(max_iterations=1).minimize(model, x, y)
    with pytest.warns(UserWarning, match=match):
        keras_subset.pretrain(model, x, y, size=150, optimizer=keras_subset.LBFGS(max_iterations=1))
