"""Overdetermination ratio, subset sizes and selection, on real MNIST labels."""

import math
import warnings

import numpy as np
import pytest
import keras

import keras_subset
from keras_subset.subset import resolve_subset_size, warn_if_underdetermined

from conftest import small_cnn

# Every test of this file is quick: all in the fast tier.
pytestmark = pytest.mark.fast


P_SMALL_CNN = (3 * 3 * 1 * 4 + 4) + (6 * 6 * 4 * 10 + 10)  # conv + dense = 1,490


def test_ratio_counts_trainable_parameters_and_outputs():
    model = small_cnn()
    assert sum(int(np.prod(v.shape)) for v in model.trainable_variables) == P_SMALL_CNN
    assert keras_subset.overdetermination_ratio(model, 6000) == pytest.approx(6000 * 10 / P_SMALL_CNN)
    assert keras_subset.overdetermination_ratio(model, 6000, num_outputs=1) == pytest.approx(6000 / P_SMALL_CNN)
    # Non-trainable weights (batch-norm moving statistics) do not count.
    bn = small_cnn(batch_norm=True)
    assert keras_subset.overdetermination_ratio(bn, 6000) == pytest.approx(6000 * 10 / (P_SMALL_CNN + 2 * 144))


@pytest.mark.parametrize("ratio", [0.5, 1.0, 4.0, 7.3])
def test_subset_size_for_ratio_is_the_smallest_reaching_it(ratio):
    model = small_cnn()
    k = keras_subset.subset_size_for_ratio(model, ratio)
    assert keras_subset.overdetermination_ratio(model, k) >= ratio - 1e-12
    if k > 1:
        assert keras_subset.overdetermination_ratio(model, k - 1) < ratio
    assert k == math.ceil(ratio * P_SMALL_CNN / 10 - 1e-9)


def test_random_selection_is_reproducible_distinct_and_sorted(mnist):
    n = len(mnist[1])
    a = keras_subset.select_subset(n, 500, seed=3)
    b = keras_subset.select_subset(n, 500, seed=3)
    c = keras_subset.select_subset(n, 500, seed=4)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    assert len(np.unique(a)) == 500 and np.all(np.diff(a) > 0) and a.max() < n


def test_stratified_selection_is_class_balanced(mnist):
    labels = mnist[1]
    indices = keras_subset.select_subset(labels, 1003, "stratified", seed=0)
    counts = np.bincount(labels[indices], minlength=10)
    assert counts.sum() == 1003 and counts.max() - counts.min() <= 1
    # One-hot labels select the same way.
    one_hot = keras.utils.to_categorical(labels, 10)
    np.testing.assert_array_equal(indices, keras_subset.select_subset(one_hot, 1003, "stratified", seed=0))


def test_stratified_selection_spreads_a_scarce_class_over_the_others(mnist):
    labels = mnist[1]
    keep = np.concatenate([np.flatnonzero(labels != 0), np.flatnonzero(labels == 0)[:20]])
    scarce = labels[keep]
    counts = np.bincount(scarce[keras_subset.select_subset(scarce, 1000, "stratified", seed=1)], minlength=10)
    assert counts[0] == 20 and counts.sum() == 1000
    assert counts[1:].max() - counts[1:].min() <= 1


def test_sizes_from_size_fraction_and_ratio():
    model = small_cnn()
    assert resolve_subset_size(6000, size=123) == 123
    assert resolve_subset_size(6000, fraction=0.25) == 1500
    assert resolve_subset_size(6000, ratio=2.0, model=model) == keras_subset.subset_size_for_ratio(model, 2.0)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"size": 0}, "size"),
        ({"size": 6001}, "size"),
        ({"fraction": 0.0}, "fraction"),
        ({"fraction": 1.5}, "fraction"),
        ({"ratio": -1.0}, "ratio"),
        ({"ratio": 100.0}, "ratio"),
        ({"size": 10, "fraction": 0.5}, "exactly one"),
        ({}, "exactly one"),
    ],
)
def test_bad_sizes(kwargs, match):
    with pytest.raises(ValueError, match=match):
        resolve_subset_size(6000, model=small_cnn(), **kwargs)


def test_bad_selection_arguments(mnist):
    with pytest.raises(ValueError, match="strategy"):
        keras_subset.select_subset(100, 10, strategy="balanced")
    with pytest.raises(ValueError, match="labels"):
        keras_subset.select_subset(100, 10, strategy="stratified")
    with pytest.raises(ValueError, match="size"):
        keras_subset.select_subset(mnist[1], 0)
    # Each names the argument and what it accepts (they were raw NumPy errors).
    with pytest.raises(ValueError, match="`examples` must be the number of training examples"):
        keras_subset.select_subset(100.0, 5)
    with pytest.raises(ValueError, match="`examples` is empty"):
        keras_subset.select_subset(mnist[1][:0], 5)
    with pytest.raises(ValueError, match="non-empty"):
        keras_subset.select_subset(mnist[1][:0], 5, "stratified")
    with pytest.raises(ValueError, match="NaN"):
        keras_subset.select_subset(np.array([0.0, np.nan, 1.0]), 2, "stratified")
    with pytest.raises(ValueError, match="`seed` must be an integer >= 0 or None, got 'x'"):
        keras_subset.select_subset(100, 5, seed="x")
    # NumPy scalars are numbers like any other.
    assert len(keras_subset.select_subset(np.int64(100), np.int32(5), seed=np.int64(0))) == 5
    # The random strategy takes any targets: only their number counts.
    np.testing.assert_array_equal(
        keras_subset.select_subset(np.zeros((100, 4, 4)), 5, seed=1), keras_subset.select_subset(100, 5, seed=1)
    )


def test_numpy_scalars_are_accepted_as_sizes_fractions_and_ratios():
    model = small_cnn()
    assert resolve_subset_size(6000, fraction=np.float32(0.5)) == 3000
    assert resolve_subset_size(6000, ratio=np.float32(2), model=model) == keras_subset.subset_size_for_ratio(model, 2.0)
    assert keras_subset.subset_size_for_ratio(model, np.float64(2.0)) == keras_subset.subset_size_for_ratio(model, 2)
    assert keras_subset.overdetermination_ratio(model, np.int64(6000)) == keras_subset.overdetermination_ratio(model, 6000)
    with pytest.raises(ValueError, match="`size` must be an integer >= 1"):
        resolve_subset_size(6000, size=True)


def test_warning_when_subset_is_underdetermined():
    model = small_cnn()
    with pytest.warns(UserWarning, match="Q = "):
        q = warn_if_underdetermined(model, 100)
    assert q < 1
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert warn_if_underdetermined(model, 1000) > 1


def test_unbuilt_model_is_named_as_such():
    model = keras.Sequential([keras.layers.Flatten(), keras.layers.Dense(10, activation="softmax")])
    for call in (
        lambda: keras_subset.overdetermination_ratio(model, 100),
        lambda: keras_subset.subset_size_for_ratio(model, 2.0),
        lambda: keras_subset.subset_size_for_ratio(model, 2.0, num_outputs=10),
    ):
        with pytest.raises(ValueError, match=r"`model` is not built.*model.build\(input_shape\)"):
            call()


def test_the_saving_warning_fires_below_the_measured_q_full_and_only_there(monkeypatch):
    from keras_subset import subset
    monkeypatch.setattr(subset, "SAVING_Q_FULL", 300.0)
    monkeypatch.setattr(subset, "LARGEST_Q_FULL_MEASURED", 1000.0)
    with pytest.warns(subset.SavingWarning, match=r"Q_full = 120 .* is below 300, the smallest Q_full"):
        assert subset.warn_if_no_saving(120.0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert not subset.warn_if_no_saving(300.0) and not subset.warn_if_no_saving(5000.0)
    # Where no Q_full saved half, the largest one tried is the threshold, and the message says so.
    monkeypatch.setattr(subset, "SAVING_Q_FULL", None)
    with pytest.warns(subset.SavingWarning, match="no Q_full measured saved half"):
        assert subset.warn_if_no_saving(999.0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert not subset.warn_if_no_saving(1000.0)
        monkeypatch.setattr(subset, "LARGEST_Q_FULL_MEASURED", None)  # nothing measured: silent
        assert not subset.warn_if_no_saving(1.5)
