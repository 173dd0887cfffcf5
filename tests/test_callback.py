"""SubsetPretraining end to end in model.fit on real MNIST."""

import csv

import numpy as np
import pytest
import tensorflow as tf
import keras

import keras_subset

from conftest import small_cnn


class _FullSetLoss(keras.callbacks.Callback):
    """Records the full training set's loss when the first epoch begins (after the callbacks before it).

    SubsetPretraining runs there, after every callback's on_train_begin (BackupAndRestore's too).
    """

    def __init__(self, x, y):
        super().__init__()
        self.x, self.y, self.loss = x, y, None

    def on_epoch_begin(self, epoch, logs=None):
        if self.loss is None:
            self.loss = self.model.evaluate(self.x, self.y, batch_size=1000, verbose=0)[0]


@pytest.mark.fast
def test_lbfgs_pretraining_in_fit(mnist, tmp_path):
    x, y, x_test, y_test = mnist
    model = small_cnn(seed=10)
    initial_loss = model.evaluate(x, y, batch_size=1000, verbose=0)[0]
    pretraining = keras_subset.SubsetPretraining(
        x, y, ratio=8.0, optimizer=keras_subset.LBFGS(max_iterations=40), seed=0, verbose=0
    )
    after_pretraining = _FullSetLoss(x, y)
    csv_path = tmp_path / "log.csv"
    # Q_full of these examples is far below the measured saving threshold: the callback says so once.
    q_full = keras_subset.overdetermination_ratio(model, len(x))
    assert q_full < keras_subset.subset.SAVING_Q_FULL
    with pytest.warns(keras_subset.SavingWarning, match=f"Q_full = {q_full:.3g} .* is below") as caught:
        history = model.fit(
            x, y, epochs=2, batch_size=128, verbose=0,
            callbacks=[pretraining, after_pretraining, keras.callbacks.CSVLogger(str(csv_path))],
        )
    assert len([w for w in caught if w.category is keras_subset.SavingWarning]) == 1

    k = keras_subset.subset_size_for_ratio(model, 8.0)
    assert pretraining.result["subset_size"] == k == len(pretraining.subset_indices)
    assert pretraining.result["ratio"] == pytest.approx(8.0, rel=1e-3)
    # Pretraining lowered the loss of the whole training set, not only of the subset.
    assert after_pretraining.loss < 0.7 * initial_loss
    logs = history.history
    for key in ("loss", "accuracy", "initial_loss", "iterations", "evaluations", "seconds", "subset_size", "ratio",
                "q_full"):
        assert len(logs["pretraining_" + key]) == 2, key
    assert logs["pretraining_q_full"][0] == pytest.approx(keras_subset.overdetermination_ratio(model, len(x)))
    assert 0 < logs["pretraining_iterations"][0] <= 40
    assert logs["pretraining_evaluations"][0] > logs["pretraining_iterations"][0]
    assert logs["pretraining_loss"][0] < logs["pretraining_initial_loss"][0]
    # The compiled Adam ran only fit's own steps: its state is what fit expects.
    assert int(model.optimizer.iterations) == 2 * int(np.ceil(len(x) / 128))
    rows = list(csv.DictReader(open(csv_path)))
    assert float(rows[0]["pretraining_subset_size"]) == k
    assert model.evaluate(x_test, y_test, verbose=0)[1] > 0.6  # chance is 0.1


def test_keras_optimizer_pretraining_with_stratified_dataset_input(mnist):
    x, y = mnist[0][:3000], mnist[1][:3000]
    model = small_cnn(seed=11)
    initial_loss = model.evaluate(x, y, batch_size=1000, verbose=0)[0]
    dataset = tf.data.Dataset.from_tensor_slices((x, y)).batch(500)
    pretraining = keras_subset.SubsetPretraining(
        dataset, fraction=0.2, strategy="stratified", optimizer=keras.optimizers.Adam(3e-3),
        epochs=3, batch_size=32, seed=1, verbose=0,
    )
    after_pretraining = _FullSetLoss(x, y)
    model.fit(dataset, epochs=1, verbose=0, callbacks=[pretraining, after_pretraining])
    assert pretraining.result["subset_size"] == 600
    assert np.bincount(y[pretraining.subset_indices]).tolist() == [60] * 10
    assert pretraining.result["iterations"] == 3 * int(np.ceil(600 / 32))
    assert after_pretraining.loss < 0.8 * initial_loss


def test_same_seed_same_subset_and_result(mnist):
    x, y = mnist[0][:2000], mnist[1][:2000]
    results = []
    for _ in range(2):
        model = small_cnn(seed=12)
        pretraining = keras_subset.SubsetPretraining(
            x, y, size=700, optimizer=keras_subset.LBFGS(max_iterations=10), seed=5, verbose=0
        )
        model.fit(x, y, epochs=1, batch_size=256, verbose=0, callbacks=[pretraining])
        results.append(pretraining)
    np.testing.assert_array_equal(results[0].subset_indices, results[1].subset_indices)
    assert results[0].result["loss"] == pytest.approx(results[1].result["loss"], rel=1e-6)
    assert results[0].result["evaluations"] == results[1].result["evaluations"]


@pytest.mark.fast
@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"size": 10, "ratio": 2.0}, "exactly one"),
        ({"fraction": 2.0}, "fraction"),
        ({"size": 10, "strategy": "balanced"}, "strategy"),
        ({"size": 10, "epochs": 3}, "epochs"),
        ({"size": 10, "optimizer": "adam"}, "epochs"),
        ({"size": 10, "optimizer": 42}, "optimizer"),
        ({"size": 10, "verbose": 3}, "verbose"),
        ({"size": 10, "seed": "x"}, "`seed` must be an integer >= 0 or None"),
        ({"size": 10, "batch_size": True}, "batch_size"),
    ],
)
def test_bad_arguments_fail_at_construction(mnist, kwargs, match):
    with pytest.raises(ValueError, match=match):
        keras_subset.SubsetPretraining(mnist[0], mnist[1], **kwargs)


def test_bad_inputs_fail_at_fit_and_leave_weights(mnist):
    x, y = mnist[0][:500], mnist[1][:500]
    model = small_cnn(seed=13)
    before = model.get_weights()
    with pytest.raises(ValueError, match="size"):
        model.fit(x, y, epochs=1, verbose=0, callbacks=[keras_subset.SubsetPretraining(x, y, size=501)])
    with pytest.raises(ValueError, match="compiled optimizer"):
        model.fit(
            x, y, epochs=1, verbose=0,
            callbacks=[keras_subset.SubsetPretraining(x, y, size=10, optimizer=model.optimizer, epochs=1)],
        )
    infinite = tf.data.Dataset.from_tensor_slices((x, y)).batch(50).repeat()
    with pytest.raises(ValueError, match="infinite"):
        model.fit(x, y, epochs=1, verbose=0, callbacks=[keras_subset.SubsetPretraining(infinite, size=10)])
    # Issue 31, C: a NaN outside the subset was not seen, and fit's Adam then made NaN weights.
    bad = x.copy()
    bad[321, 7] = np.nan
    with pytest.raises(ValueError, match=r"`x` holds NaN at example 321"):
        model.fit(bad, y, epochs=1, verbose=0, callbacks=[keras_subset.SubsetPretraining(bad, y, size=200, seed=0)])
    for a, b in zip(before, model.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_unbuilt_model_is_named_as_such(mnist):
    x, y = mnist[0][:200], mnist[1][:200]
    # No keras.Input: the model has no weights until it is called on a batch.
    model = keras.Sequential([keras.layers.Flatten(), keras.layers.Dense(10, activation="softmax")])
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    for kwargs in ({"size": 100}, {"fraction": 0.5}, {"ratio": 2.0}, {"size": 100, "num_outputs": 10}):
        pretraining = keras_subset.SubsetPretraining(x, y, verbose=0, **kwargs)
        with pytest.raises(ValueError, match=r"`model` is not built.*keras.Input.*model.build\(input_shape\)"):
            model.fit(x, y, epochs=1, verbose=0, callbacks=[pretraining])
    assert pretraining.result is None and not model.built


def test_labels_outside_the_outputs_fail_before_pretraining(mnist):
    x, y = mnist[0][:300], mnist[1][:300].copy()
    y[5] = 10  # the model has 10 outputs: labels 0..9
    model = small_cnn(seed=14)
    before = model.get_weights()
    for optimizer, epochs in ((None, None), (keras.optimizers.Adam(), 1)):
        pretraining = keras_subset.SubsetPretraining(x, y, fraction=1.0, optimizer=optimizer, epochs=epochs, verbose=0)
        with pytest.raises(ValueError, match=r"`y` holds labels outside \[0, 10\)"):
            model.fit(x, mnist[1][:300], epochs=1, verbose=0, callbacks=[pretraining])
    for a, b in zip(before, model.get_weights()):
        np.testing.assert_array_equal(a, b)
