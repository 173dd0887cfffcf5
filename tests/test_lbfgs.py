"""The public LBFGS optimizer (keras_subset/lbfgs.py) on real MNIST: arguments, serialisation, LBFGS.fit,
and model.compile(optimizer=LBFGS()) + model.fit."""

import time
import warnings

import numpy as np
import pytest
import tensorflow as tf
import keras

import keras_subset

from conftest import interrupt_after, interrupt_delay, small_cnn
from convex import downsampled, flat_weights, logistic_regression, numpy_objective, scipy_optimum


@pytest.mark.fast
@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"max_iterations": 0}, "max_iterations"),
        ({"dtype": "float16"}, "dtype"),
        ({"chunk_size": 0}, "chunk_size"),
        ({"tolerance": -1.0}, "tolerance"),
        ({"num_correction_pairs": 2.5}, "num_correction_pairs"),
        ({"line_search": "more_thuente"}, "line_search"),
        ({"max_evaluations": 0}, "max_evaluations"),
        ({"chunk_size": "big"}, "chunk_size"),
    ],
)
def test_bad_constructor_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        keras_subset.LBFGS(**kwargs)


@pytest.mark.fast
def test_serialization_round_trip():
    optimizer = keras_subset.LBFGS(
        max_iterations=7, num_correction_pairs=4, tolerance=1e-6, x_tolerance=1e-9,
        f_relative_tolerance=1e-12, max_line_search_iterations=20, dtype="float64",
        chunk_size=256, jit_compile=True, training=True, max_restarts=0, progress_every=3,
        max_evaluations=40, line_search="hager_zhang",
    )
    config = keras.saving.serialize_keras_object(optimizer)
    restored = keras.saving.deserialize_keras_object(config)
    assert isinstance(restored, keras_subset.LBFGS)
    assert restored.get_config() == optimizer.get_config()
    assert config["config"]["chunk_size"] == 256


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


@pytest.mark.fast
def test_fit_route_stops_early(mnist):
    x, y = mnist[0][:300], mnist[1][:300]
    model = small_cnn(seed=9)
    stopper = keras.callbacks.EarlyStopping(monitor="loss", min_delta=10.0, patience=0)
    history = keras_subset.LBFGS(max_iterations=100).fit(
        model, x, y, epochs=10, iterations_per_epoch=3, callbacks=[stopper], verbose=0
    )
    assert len(history.history["loss"]) == 2  # no epoch improves the loss by 10


@pytest.fixture
def float64_keras():
    """Keras's compiled loss adds up in `floatx`: float64 here, for a float64 model's loss."""
    # Read the global dtype policy first: Keras caches the policy it first derives from floatx,
    # which would make every later layer of the session float64.
    policy, floatx = keras.config.dtype_policy(), keras.config.floatx()
    keras.config.set_floatx("float64")
    yield
    keras.config.set_floatx(floatx)
    keras.config.set_dtype_policy(policy)


def test_compile_fit_reaches_scipy_optimum_on_convex_problem(mnist, float64_keras):
    x, y = downsampled(mnist, 3000)
    model = logistic_regression(x.shape[1])
    reference = scipy_optimum(model, x, y)
    optimizer = keras_subset.LBFGS(tolerance=1e-9, dtype="float64")
    model.compile(optimizer=optimizer, loss=model.loss)
    # One step an epoch; it converges after about 110 (measured: 97 iterations, 111
    # evaluations), so 200 epochs leave ~90 that must change nothing (was 400: 10 s more).
    history = model.fit(x, y, batch_size=len(x), epochs=200, verbose=0)

    results = optimizer.fit_results
    assert results["converged"] and not results["stalled"], results
    # Evaluations stop counting at convergence; SciPy's L-BFGS-B needed 99 here.
    assert results["iterations"] <= results["evaluations"] < 200, results
    found = flat_weights(model)
    assert results["loss"] == pytest.approx(reference.fun, rel=1e-10)
    assert numpy_objective(found, x, y)[0] == pytest.approx(reference.fun, rel=1e-10)
    np.testing.assert_allclose(found, reference.x, atol=2e-5)
    # Once converged, the remaining epochs evaluate the optimum and change nothing.
    assert history.history["loss"][-1] == pytest.approx(reference.fun, rel=1e-10)


def test_compile_fit_drives_callbacks_and_ends_at_the_best_weights(mnist, tmp_path):
    x, y = mnist[0][:600], mnist[1][:600]
    model = small_cnn(seed=8)
    initial_loss = model.evaluate(x, y, verbose=0)[0]
    optimizer = keras_subset.LBFGS()
    model.compile(optimizer=optimizer, loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    # One full batch per step, 10 steps (objective evaluations) per epoch.
    full_batch = tf.data.Dataset.from_tensors((x, y)).repeat()
    checkpoint = tmp_path / "epoch.weights.h5"
    history = model.fit(
        full_batch, steps_per_epoch=10, epochs=4, verbose=0,
        callbacks=[
            keras.callbacks.ModelCheckpoint(str(checkpoint), monitor="loss", save_weights_only=True),
            keras.callbacks.CSVLogger(str(tmp_path / "log.csv")),
            keras.callbacks.TensorBoard(str(tmp_path / "tb")),
        ],
    )
    results = optimizer.fit_results
    assert results["evaluations"] == 40 == int(optimizer.iterations.numpy())
    assert results["iterations"] >= 20, results
    losses = history.history["loss"]
    assert len(losses) == 4 and losses[-1] < losses[0] < initial_loss * 1.5
    # fit ends at the best accepted weights, not at a pending trial point.
    final_loss, final_accuracy = model.evaluate(x, y, verbose=0)
    assert final_loss == pytest.approx(results["loss"], rel=1e-5)
    assert final_loss < 0.5 * initial_loss and final_accuracy > 0.8
    assert checkpoint.exists() and (tmp_path / "log.csv").read_text().count("\n") == 5
    assert any((tmp_path / "tb").rglob("*tfevents*"))

    # A second fit goes on from there (the curvature history is kept).
    model.fit(full_batch, steps_per_epoch=10, epochs=1, verbose=0)
    assert optimizer.fit_results["loss"] <= results["loss"]
    assert model.evaluate(x, y, verbose=0)[0] == pytest.approx(optimizer.fit_results["loss"], rel=1e-5)


def test_compile_fit_stops_early_and_saves_with_the_model(mnist, tmp_path):
    x, y = mnist[0][:300], mnist[1][:300]
    model = small_cnn(seed=9)
    model.compile(optimizer=keras_subset.LBFGS(num_correction_pairs=5), loss="sparse_categorical_crossentropy")
    stopper = keras.callbacks.EarlyStopping(monitor="loss", min_delta=10.0, patience=0)
    history = model.fit(x, y, batch_size=len(x), epochs=10, callbacks=[stopper], verbose=0)
    assert len(history.history["loss"]) == 2  # no epoch improves the loss by 10

    path = tmp_path / "model.keras"
    model.save(path)
    loaded = keras.models.load_model(path)
    assert isinstance(loaded.optimizer, keras_subset.LBFGS)
    assert loaded.optimizer.get_config() == model.optimizer.get_config()
    for a, b in zip(loaded.get_weights(), model.get_weights()):
        np.testing.assert_array_equal(a, b)
    loaded.fit(x, y, batch_size=len(x), epochs=3, verbose=0)
    assert loaded.optimizer.fit_results["evaluations"] == 5


def test_apply_refuses_a_step_without_its_loss_and_changed_variables(mnist):
    x, y = mnist[0][:64], mnist[1][:64]
    model = small_cnn(seed=2)
    optimizer = keras_subset.LBFGS()
    model.compile(optimizer=optimizer, loss="sparse_categorical_crossentropy")
    model.fit(x, y, batch_size=64, epochs=1, verbose=0)
    gradients = [tf.zeros_like(v) for v in model.trainable_variables]
    before = model.get_weights()
    with pytest.raises(ValueError, match="scale_loss"):
        optimizer.apply(gradients, model.trainable_variables)
    model.layers[0].trainable = False
    optimizer.scale_loss(tf.constant(1.0))
    with pytest.raises(ValueError, match="differ from those LBFGS was built with"):
        optimizer.apply(gradients[2:], model.trainable_variables)
    for a, b in zip(before, model.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_compile_fit_honours_the_evaluation_budget(mnist):
    x, y = mnist[0][:300], mnist[1][:300]
    model = small_cnn(seed=9)
    optimizer = keras_subset.LBFGS(max_evaluations=7)
    model.compile(optimizer=optimizer, loss="sparse_categorical_crossentropy")
    model.fit(x, y, batch_size=len(x), epochs=12, verbose=0)
    results = optimizer.fit_results
    # Exactly the budget: the later steps evaluate the best point and count nothing.
    assert results["evaluations"] == 7 and results["budget_spent"], results
    assert int(optimizer.iterations.numpy()) == 12
    assert model.evaluate(x, y, verbose=0, return_dict=True)["loss"] == pytest.approx(results["loss"], rel=1e-5)
    # A later fit spends nothing more.
    model.fit(x, y, batch_size=len(x), epochs=2, verbose=0)
    assert optimizer.fit_results["evaluations"] == 7


def test_fit_route_takes_validation_data_as_keras_fit_does_and_checks_it_first(mnist):
    x, y, x_val, y_val = mnist[0][:300], mnist[1][:300], mnist[2][:200], mnist[3][:200]
    w_val = np.linspace(0.5, 1.5, 200).astype("float32")
    val_losses = []
    for validation_data in (
        (x_val, y_val, w_val),
        [x_val, y_val, w_val],
        tf.data.Dataset.from_tensor_slices((x_val, y_val, w_val)).batch(64),
    ):
        model = small_cnn(seed=8)
        history = keras_subset.LBFGS(max_iterations=10).fit(
            model, x, y, epochs=2, iterations_per_epoch=2, validation_data=validation_data, verbose=0
        )
        val_losses.append(history.history["val_loss"])
        assert history.history["val_loss"][-1] == pytest.approx(
            model.evaluate(x_val, y_val, sample_weight=w_val, verbose=0)[0], rel=1e-5
        )
    np.testing.assert_allclose(val_losses[2], val_losses[0], rtol=1e-5)
    # Validation data that cannot be evaluated is refused before the first iteration.
    model = small_cnn(seed=8)
    before = model.get_weights()
    bad_labels = np.where(y_val == 3, 11, y_val)
    for validation_data, match in (
        (x_val, "`validation_data` must be"),
        ((x_val,), "`validation_data` must be"),
        (tf.data.Dataset.from_tensor_slices(x_val).batch(50), "`validation_data`.*targets"),
        ((x_val, y_val[:10]), "`validation_data`.*same first dimension"),
        ((x_val, y_val.astype(str)), "`validation_data`.*must hold numbers"),
        ((x_val, bad_labels), r"`validation_data`.*labels outside \[0, 10\)"),
        ((x_val[:, :14], y_val), "`validation_data`"),  # images of the wrong shape
    ):
        with pytest.raises(ValueError, match=match):
            keras_subset.LBFGS(max_iterations=10).fit(
                model, x, y, epochs=2, iterations_per_epoch=2, validation_data=validation_data, verbose=0
            )
    for a, b in zip(before, model.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_fit_route_refuses_an_uncompiled_model_before_training(mnist):
    # fit reports the compiled loss and metrics each epoch: without compile it used to train
    # the first epoch and then fail in model.evaluate.
    x, y = mnist[0][:200], mnist[1][:200]
    model = keras.Sequential([keras.Input((28, 28, 1)), keras.layers.Flatten(), keras.layers.Dense(10, activation="softmax")])
    before = model.get_weights()
    with pytest.raises(ValueError, match=r"`model` must be compiled"):
        keras_subset.LBFGS(max_iterations=5).fit(model, x, y, loss="sparse_categorical_crossentropy", verbose=0)
    for a, b in zip(before, model.get_weights()):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("jit_compile", [False, True])
def test_compile_fit_stops_at_a_non_finite_starting_loss(mnist, jit_compile):
    x, y = mnist[0][:100].copy(), mnist[1][:100]
    x[3, 5, 5, 0] = np.nan
    model = small_cnn(seed=2)
    optimizer = keras_subset.LBFGS()
    # jit_compile="auto" means XLA on a GPU: both are tested wherever the tests run.
    model.compile(optimizer=optimizer, loss="sparse_categorical_crossentropy", jit_compile=jit_compile)
    before = model.get_weights()
    if jit_compile:
        # XLA drops assertions: the step keeps the weights, and fit warns at its end.
        with pytest.warns(UserWarning, match=r"no step of this fit had a finite loss and gradient"):
            model.fit(x, y, batch_size=len(x), epochs=3, verbose=0)
    else:
        # Keras raises what the compiled step asserts; the message is the library's.
        with pytest.raises(tf.errors.InvalidArgumentError, match=r"loss or its gradient at the starting weights is not finite"):
            model.fit(x, y, batch_size=len(x), epochs=3, verbose=0)
    for a, b in zip(before, model.get_weights()):
        np.testing.assert_array_equal(a, b)
    # No point was ever accepted: the loss is reported as NaN, never as 0.0.
    assert np.isnan(optimizer.fit_results["loss"]) and optimizer.fit_results["iterations"] == 0


def test_compile_fit_refuses_layers_frozen_since_it_was_compiled(mnist):
    x, y = mnist[0][:200], mnist[1][:200]
    model = small_cnn(seed=3)
    # Not XLA (the default on a GPU), which cannot call back into Python: see the test below.
    model.compile(optimizer=keras_subset.LBFGS(), loss="sparse_categorical_crossentropy", jit_compile=False)
    history = model.fit(x, y, batch_size=len(x), epochs=3, verbose=0)
    conv, dense = model.layers[0], model.layers[-1]
    conv.trainable = False
    before = model.get_weights()
    # Keras reuses the step it traced for the first fit, so LBFGS sees the change only as that
    # step runs: it stops before any weight changes.
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"frozen.*since.*Compile the model again with a new LBFGS"):
        model.fit(x, y, batch_size=len(x), epochs=2, verbose=0)
    for a, b in zip(before, model.get_weights()):
        np.testing.assert_array_equal(a, b)
    assert len(history.history["loss"]) == 3  # the first fit's History is intact
    # Compiled again with a new LBFGS, fit trains the trainable layers only.
    model.compile(optimizer=keras_subset.LBFGS(), loss="sparse_categorical_crossentropy", jit_compile=False)
    model.fit(x, y, batch_size=len(x), epochs=10, verbose=0)
    assert model.optimizer.fit_results["iterations"] > 0
    np.testing.assert_array_equal(conv.get_weights()[0], before[0])
    assert not np.array_equal(dense.get_weights()[0], before[2])

    # A layer unfrozen since compile is not in the traced step: fit trains the others, ends at
    # their best weights and warns instead of failing at its end.
    conv.trainable = True
    before = model.get_weights()
    with pytest.warns(UserWarning, match=r"unfrozen.*were not trained.*Compile the model again"):
        history = model.fit(x, y, batch_size=len(x), epochs=3, verbose=0)
    assert len(history.history["loss"]) == 3
    np.testing.assert_array_equal(conv.get_weights()[0], before[0])
    loss = model.evaluate(x, y, verbose=0, return_dict=True)["loss"]
    assert loss == pytest.approx(model.optimizer.fit_results["loss"], rel=1e-5)


def test_compile_fit_under_xla_warns_about_layers_frozen_since_compile(mnist):
    x, y = mnist[0][:200], mnist[1][:200]
    model = small_cnn(seed=3)
    model.compile(optimizer=keras_subset.LBFGS(), loss="sparse_categorical_crossentropy", jit_compile=True)
    model.fit(x, y, batch_size=len(x), epochs=3, verbose=0)
    model.layers[0].trainable = False
    # The XLA step cannot read the flags as it runs: the frozen layer trains, fit ends at the
    # best point of all the variables it trained, keeps its History and says what happened.
    with pytest.warns(UserWarning, match=r"frozen since \(.*conv2d.*/kernel.*were trained.*Compile the model again"):
        history = model.fit(x, y, batch_size=len(x), epochs=5, verbose=0)
    assert len(history.history["loss"]) == 5
    loss = model.evaluate(x, y, verbose=0, return_dict=True)["loss"]
    assert loss == pytest.approx(model.optimizer.fit_results["loss"], rel=1e-5)


def test_compile_fit_with_minibatches_reports_the_loss_of_the_batch_it_accepted_on(mnist):
    # An optimizer never sees the dataset's size in Keras 3: with minibatches, fit_results' loss
    # is the loss on the batch of the step that accepted the point, as the docstrings say.
    x, y = mnist[0][:1000], mnist[1][:1000]
    model = small_cnn(seed=5)
    optimizer = keras_subset.LBFGS()
    model.compile(optimizer=optimizer, loss="sparse_categorical_crossentropy")
    accepted_on = []

    class Accepted(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            accepted_on.append(optimizer.fit_results["iterations"])

    model.fit(x, y, batch_size=100, epochs=2, shuffle=False, verbose=0, callbacks=[Accepted()])
    last = int(np.flatnonzero(np.diff([0] + accepted_on))[-1]) % 10  # the batch of the last accepting step
    batch = slice(100 * last, 100 * (last + 1))
    reported = optimizer.fit_results["loss"]
    assert model.evaluate(x[batch], y[batch], verbose=0, return_dict=True)["loss"] == pytest.approx(reported, rel=1e-5)
    assert abs(model.evaluate(x, y, verbose=0, return_dict=True)["loss"] - reported) > 1e-3
    for doc in (keras_subset.LBFGS.fit_results.__doc__, keras_subset.LBFGS.apply.__doc__):
        doc = " ".join(doc.split())
        assert "full batch" in doc and "the whole training set" in doc and "one batch" in doc, doc


def test_ctrl_c_stops_the_fit_route_within_an_epoch_and_keeps_the_best_weights(mnist):
    # Issue 31, B: an epoch of many iterations is not waited for, and the model keeps its progress.
    x, y = mnist[0][:4000], mnist[1][:4000]
    model = small_cnn(seed=1)
    initial = model.get_weights()
    optimizer = keras_subset.LBFGS(max_iterations=1)
    optimizer.fit(model, x, y, verbose=0)  # traces the graphs
    optimizer.max_iterations = 10
    delay = interrupt_delay(lambda: optimizer.fit(model, x, y, verbose=0), steps=10, wanted=30)
    model.set_weights(initial)
    optimizer.max_iterations = 1000
    started = time.perf_counter()
    with pytest.raises(KeyboardInterrupt) as caught, interrupt_after(delay):
        optimizer.fit(model, x, y, epochs=2, iterations_per_epoch=500, verbose=0)  # about 30 s here
    stopped = time.perf_counter() - started
    result = caught.value.result
    assert stopped < delay + 5.0 and result.iterations < 1000 / 3, (stopped, delay, result)
    assert str(caught.value).startswith("LBFGS.fit interrupted after")
    assert result.loss < 0.8 * result.initial_loss
    assert model.evaluate(x, y, batch_size=4000, verbose=0)[0] == pytest.approx(result.loss, rel=1e-4)


@pytest.mark.fast
def test_fit_route_warns_that_learning_rate_callbacks_do_nothing_and_leaves_the_compiled_optimizer(mnist):
    # Issue 31, D: ReduceLROnPlateau lowered the compiled Adam's learning rate (1e-3 to 1.25e-4)
    # without a word; L-BFGS has no learning rate.
    x, y = mnist[0][:300], mnist[1][:300]
    model = small_cnn(seed=9)  # compiled with Adam, learning rate 1e-3
    callbacks = [
        keras.callbacks.ReduceLROnPlateau(monitor="loss", factor=0.5, patience=0, min_delta=10.0),
        keras.callbacks.LearningRateScheduler(lambda epoch, rate: rate * 0.1),
        keras.callbacks.History(),
    ]
    with pytest.warns(UserWarning) as caught:
        history = keras_subset.LBFGS(max_iterations=20).fit(
            model, x, y, epochs=4, iterations_per_epoch=3, callbacks=callbacks, verbose=0
        )
    messages = [str(w.message) for w in caught]
    for name in ("ReduceLROnPlateau", "LearningRateScheduler"):
        assert any(m.startswith(f"LBFGS.fit: {name} has no effect on L-BFGS") for m in messages), messages
    assert float(model.optimizer.learning_rate) == pytest.approx(1e-3)
    assert len(history.history["loss"]) == 4 and "learning_rate" not in history.history


def _augmented_cnn(seed=3):
    """A small CNN whose first layer is Keras's usual random augmentation."""
    keras.utils.set_random_seed(seed)
    model = keras.Sequential([
        keras.Input((28, 28, 1)),
        keras.layers.RandomTranslation(0.1, 0.1),
        keras.layers.Conv2D(4, 3, strides=2, activation="relu"),
        keras.layers.MaxPooling2D(),
        keras.layers.Flatten(),
        keras.layers.Dense(10, activation="softmax"),
    ])
    return model


@pytest.mark.fast
def test_compile_fit_warns_about_minibatches_and_random_layers_it_redraws(mnist):
    # Issue 31, E: Keras's default batch size (32) ran mini-batch L-BFGS without a word at run
    # time, and random augmentation layers were redrawn at every step, also without a word.
    x, y = mnist[0][:256], mnist[1][:256]
    model = small_cnn(seed=3)
    model.compile(optimizer=keras_subset.LBFGS(), loss="sparse_categorical_crossentropy")
    with pytest.warns(UserWarning, match=r"model\.fit splits the data into 8 batches.*batch_size=len\(x\)"):
        model.fit(x, y, epochs=1, verbose=0)
    # (Checked while Keras traces the step: at the first fit after compile.)
    model.compile(optimizer=keras_subset.LBFGS(), loss="sparse_categorical_crossentropy")
    with pytest.warns(UserWarning, match=r"into 4 batches"):
        model.fit(tf.data.Dataset.from_tensor_slices((x, y)).batch(64), epochs=1, verbose=0)
    model = small_cnn(seed=3)
    model.compile(optimizer=keras_subset.LBFGS(), loss="sparse_categorical_crossentropy")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model.fit(x, y, batch_size=len(x), epochs=2, verbose=0)
        # One batch repeated (`steps_per_epoch`): the whole set at every step, as the docs say.
        model.fit(tf.data.Dataset.from_tensors((x, y)).repeat(), steps_per_epoch=2, epochs=1, verbose=0)
    assert not [w for w in caught if "LBFGS" in str(w.message)], [str(w.message) for w in caught]
    model = _augmented_cnn()
    model.compile(optimizer=keras_subset.LBFGS(), loss="sparse_categorical_crossentropy")
    with pytest.warns(UserWarning, match=r"random preprocessing layers \(RandomTranslation\).*redraws.*`copies=`"):
        model.fit(x, y, batch_size=len(x), epochs=1, verbose=0)
