"""LBFGS on real MNIST: optimum against SciPy, chunking, serialisation, robustness, bad input."""

import numpy as np
import pytest
import tensorflow as tf
import keras

import keras_subset
from keras_subset.objective import Objective

from conftest import small_cnn
from convex import downsampled, logistic_regression, numpy_objective, scipy_optimum

def test_float64_reaches_scipy_optimum_on_convex_problem(mnist):
    x, y = downsampled(mnist, 3000)
    model = logistic_regression(x.shape[1])
    reference = scipy_optimum(model, x, y)
    result = keras_subset.LBFGS(max_iterations=1000, tolerance=1e-9, dtype="float64").minimize(model, x, y)

    found = np.concatenate([w.ravel() for w in model.get_weights()])
    assert result.converged, result
    assert result.loss == pytest.approx(reference.fun, rel=1e-10)
    np.testing.assert_allclose(found, reference.x, atol=2e-5)
    # The reported loss is the loss at the weights the model holds.
    assert numpy_objective(found, x, y)[0] == pytest.approx(result.loss, rel=1e-12)
    assert result.loss < result.initial_loss


def test_objective_equals_keras_loss_and_chunking_changes_nothing(mnist):
    x, y = mnist[0][:500], mnist[1][:500]
    weights = np.linspace(0.5, 2.0, 500).astype("float32")
    model = small_cnn(dropout=0.3, l2=1e-3)
    keras_loss = model.evaluate(x, y, sample_weight=weights, batch_size=500, verbose=0)[0]
    single = Objective(model)
    chunked = Objective(model, chunk_size=37)
    position = single.position()
    args = (tf.constant(x), tf.constant(y), tf.constant(weights))
    value, gradient = single.value_and_gradient(position, *args)
    chunked_value, chunked_gradient = chunked.value_and_gradient(position, *args)
    assert float(value) == pytest.approx(keras_loss, rel=1e-5)
    assert float(chunked_value) == pytest.approx(float(value), rel=1e-5)
    np.testing.assert_allclose(chunked_gradient, gradient, rtol=1e-4, atol=1e-6)
    # The gradient is the derivative of the value: a finite-difference check along it.
    step = 1e-2 / float(tf.norm(gradient))
    ahead, _ = single.value_and_gradient(position - step * gradient, *args)
    assert float(value) - float(ahead) == pytest.approx(step * float(tf.reduce_sum(gradient**2)), rel=0.05)


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


def test_dataset_input_equals_arrays(mnist):
    x, y = mnist[0][:300], mnist[1][:300]
    losses = []
    for data in ((x, y), (tf.data.Dataset.from_tensor_slices((x, y)).batch(64),)):
        model = small_cnn(seed=4)
        losses.append(keras_subset.LBFGS(max_iterations=3).minimize(model, *data).loss)
    assert losses[0] == pytest.approx(losses[1], rel=1e-5)


def test_serialization_round_trip():
    optimizer = keras_subset.LBFGS(
        max_iterations=7, num_correction_pairs=4, tolerance=1e-6, x_tolerance=1e-9,
        f_relative_tolerance=1e-12, max_line_search_iterations=20, dtype="float64",
        chunk_size=256, jit_compile=True, training=True, max_restarts=0, progress_every=3,
    )
    config = keras.saving.serialize_keras_object(optimizer)
    restored = keras.saving.deserialize_keras_object(config)
    assert isinstance(restored, keras_subset.LBFGS)
    assert restored.get_config() == optimizer.get_config()
    assert config["config"]["chunk_size"] == 256


def test_nan_during_run_never_leaves_nan_weights(mnist):
    x, y = mnist[0][:300], mnist[1][:300]

    def loss(y_true, y_pred):
        # Cross-entropy, but NaN once the model is more than 50% sure on average:
        # the optimiser must run into the NaN region on its way down.
        ce = keras.losses.sparse_categorical_crossentropy(y_true, y_pred)
        confident = tf.reduce_mean(tf.reduce_max(y_pred, axis=-1)) > 0.5
        return tf.where(confident, tf.fill(tf.shape(ce), np.nan), ce)

    model = small_cnn(seed=5)
    result = keras_subset.LBFGS(max_iterations=50, max_restarts=1).minimize(model, x, y, loss=loss)
    assert result.failed and result.restarts == 1, result  # it did run into the NaN region
    assert all(np.all(np.isfinite(w)) for w in model.get_weights())
    assert np.isfinite(result.loss) and result.loss <= result.initial_loss
    objective = Objective(model, loss=loss)
    value, _ = objective.value_and_gradient(objective.position(), tf.constant(x), tf.constant(y))
    assert float(value) == pytest.approx(result.loss, rel=1e-5)


def test_non_finite_initial_loss_is_an_error(mnist):
    x, y = mnist[0][:50].copy(), mnist[1][:50]
    x[3, 5, 5, 0] = np.nan
    model = small_cnn()
    before = model.get_weights()
    with pytest.raises(ValueError, match="not finite"):
        keras_subset.LBFGS().minimize(model, x, y)
    for a, b in zip(before, model.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_batch_norm_statistics_end_consistent_with_final_weights(mnist):
    x, y = mnist[0][:400], mnist[1][:400]
    model = small_cnn(seed=6, batch_norm=True)
    result = keras_subset.LBFGS(max_iterations=10, training=True, chunk_size=90).minimize(model, x, y)
    bn = [l for l in model.layers if isinstance(l, keras.layers.BatchNormalization)][0]
    features = keras.Sequential(model.layers[: model.layers.index(bn)])(x, training=False).numpy()
    np.testing.assert_allclose(bn.moving_mean.numpy(), features.mean(axis=0), rtol=1e-3, atol=1e-4)
    np.testing.assert_allclose(bn.moving_variance.numpy(), features.var(axis=0), rtol=1e-3, atol=1e-4)
    assert result.loss < result.initial_loss


def test_batch_norm_inference_mode_matches_single_chunk_objective(mnist):
    x, y = mnist[0][:400], mnist[1][:400]
    model = small_cnn(seed=6, batch_norm=True)
    result = keras_subset.LBFGS(max_iterations=10, training=True, chunk_size=None).minimize(model, x, y)
    inference_loss = model.evaluate(x, y, batch_size=400, verbose=0)[0]
    assert inference_loss == pytest.approx(result.loss, rel=1e-3)


def test_training_false_keeps_moving_statistics(mnist):
    x, y = mnist[0][:200], mnist[1][:200]
    model = small_cnn(seed=7, batch_norm=True)
    bn = [l for l in model.layers if isinstance(l, keras.layers.BatchNormalization)][0]
    before = bn.moving_mean.numpy().copy()
    keras_subset.LBFGS(max_iterations=3).minimize(model, x, y)
    np.testing.assert_array_equal(bn.moving_mean.numpy(), before)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"max_iterations": 0}, "max_iterations"),
        ({"dtype": "float16"}, "dtype"),
        ({"chunk_size": 0}, "chunk_size"),
        ({"tolerance": -1.0}, "tolerance"),
        ({"num_correction_pairs": 2.5}, "num_correction_pairs"),
    ],
)
def test_bad_constructor_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        keras_subset.LBFGS(**kwargs)


def test_bad_minimize_inputs(mnist):
    x, y = mnist[0][:64], mnist[1][:64]
    frozen = small_cnn()
    for layer in frozen.layers:
        layer.trainable = False
    with pytest.raises(ValueError, match="no trainable weights"):
        keras_subset.LBFGS().minimize(frozen, x, y)
    model = small_cnn()
    infinite = tf.data.Dataset.from_tensor_slices((x, y)).batch(16).repeat()
    with pytest.raises(ValueError, match="infinite"):
        keras_subset.LBFGS().minimize(model, infinite)
    with pytest.raises(ValueError, match="same first dimension"):
        keras_subset.LBFGS().minimize(model, x, y[:10])
    uncompiled = keras.Sequential([keras.Input((28, 28, 1)), keras.layers.Flatten(), keras.layers.Dense(10)])
    with pytest.raises(ValueError, match="loss"):
        keras_subset.LBFGS().minimize(uncompiled, x, y)


def test_jit_compile_gives_the_same_result(mnist):
    x, y = mnist[0][:500], mnist[1][:500]
    losses = []
    for jit_compile in (False, True):
        model = small_cnn(seed=3)
        result = keras_subset.LBFGS(max_iterations=5, jit_compile=jit_compile, chunk_size=128).minimize(model, x, y)
        losses.append(result.loss)
    assert losses[1] == pytest.approx(losses[0], rel=1e-4)


def test_fit_route_drives_keras_callbacks(mnist, tmp_path):
    x, y, x_test, y_test = mnist[0][:600], mnist[1][:600], mnist[2][:300], mnist[3][:300]
    model = small_cnn(seed=8)
    checkpoint = tmp_path / "best.weights.h5"
    history = keras_subset.LBFGS(max_iterations=40).fit(
        model, x, y, epochs=4, iterations_per_epoch=5, validation_data=(x_test, y_test), verbose=0,
        callbacks=[
            keras.callbacks.ModelCheckpoint(str(checkpoint), monitor="loss", save_weights_only=True),
            keras.callbacks.CSVLogger(str(tmp_path / "log.csv")),
            keras.callbacks.TensorBoard(str(tmp_path / "tb")),
        ],
    )
    logs = history.history
    assert logs["iterations"] == [5, 10, 15, 20]
    assert all(b < a for a, b in zip(logs["loss"], logs["loss"][1:])), logs["loss"]
    assert len(logs["val_accuracy"]) == 4 and logs["accuracy"][-1] > 0.5
    # The epoch's loss is the compiled loss at the weights the model holds then.
    assert model.evaluate(x, y, verbose=0)[0] == pytest.approx(logs["loss"][-1], rel=1e-5)
    assert checkpoint.exists() and (tmp_path / "log.csv").read_text().count("\n") == 5
    assert any((tmp_path / "tb").rglob("*tfevents*"))


def test_fit_route_stops_early(mnist):
    x, y = mnist[0][:300], mnist[1][:300]
    model = small_cnn(seed=9)
    stopper = keras.callbacks.EarlyStopping(monitor="loss", min_delta=10.0, patience=0)
    history = keras_subset.LBFGS(max_iterations=100).fit(
        model, x, y, epochs=10, iterations_per_epoch=3, callbacks=[stopper], verbose=0
    )
    assert len(history.history["loss"]) == 2  # no epoch improves the loss by 10


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


def test_failed_line_search_restarts_then_keeps_the_best_weights(mnist):
    x, y = mnist[0][:200], mnist[1][:200]

    def misleading(y_true, y_pred):
        # The value is the cross-entropy but the gradient points uphill: no line search can succeed.
        ce = keras.losses.sparse_categorical_crossentropy(y_true, y_pred)
        return 2.0 * tf.stop_gradient(ce) - ce

    model = small_cnn(seed=4)
    before = model.get_weights()
    result = keras_subset.LBFGS(max_iterations=20, max_restarts=2).minimize(model, x, y, loss=misleading)
    assert result.failed and not result.converged and result.restarts == 2, result
    assert "starting weights were kept" in result.reason
    assert result.loss == result.initial_loss
    for a, b in zip(before, model.get_weights()):
        np.testing.assert_array_equal(a, b)


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


def test_per_iteration_progress_traces_once_and_changes_nothing(mnist, capsys):
    x, y = mnist[0][:300], mnist[1][:300]
    model = small_cnn(seed=1)
    initial = model.get_weights()
    optimizer = keras_subset.LBFGS(max_iterations=6, progress_every=1, dtype="float64")
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


def test_inputs_become_tensors_sharing_memory_where_safe(mnist):
    from keras_subset.data import to_tensor

    images = mnist[0][:100]

    def placed(skew):  # a copy of `images` at `skew` bytes past a 64-byte boundary
        buffer = np.empty(images.nbytes + 128, np.uint8)
        start = -buffer.ctypes.data % 64 + skew
        array = buffer[start : start + images.nbytes].view(np.float32).reshape(images.shape)
        array[...] = images
        return array

    aligned, misaligned = placed(0), placed(4)
    shared, copied = to_tensor(aligned), to_tensor(misaligned)
    np.testing.assert_array_equal(shared.numpy(), images)
    np.testing.assert_array_equal(copied.numpy(), images)
    # The aligned array is handed over without a copy; the misaligned one was copied once.
    aligned[0, 0, 0, 0] = misaligned[0, 0, 0, 0] = 7.0
    assert float(shared[0, 0, 0, 0]) == 7.0 and float(copied[0, 0, 0, 0]) == images[0, 0, 0, 0]
    read_only = np.frombuffer(images.tobytes(), np.float32).reshape(images.shape)
    others = (images[:, ::2], read_only, images.astype(">f4"), mnist[1][:10], np.array([True, False]),
              np.zeros((0, 3), np.float32))
    for other in others:
        np.testing.assert_array_equal(to_tensor(other).numpy(), other)
