"""One trace per model (keras_subset/tracing.py, minimize.compiled_run): sizes, stages, warm starts, later runs."""

import logging

import numpy as np
import pytest
import tensorflow as tf
import keras

import keras_subset
from keras_subset.tracing import ExampleFree

from conftest import small_cnn


@pytest.mark.fast
def test_example_free_function_traces_once_over_sizes():
    total = ExampleFree(lambda w, x, n: w * tf.reduce_sum(x) + n, examples=(1,))
    for size in (5, 8, 3):
        value = total(tf.constant(2.0), tf.ones([size, 3]), tf.constant(1.0))
        assert float(value) == 2.0 * 3 * size + 1.0
    assert total.experimental_get_tracing_count() == 1
    # Other trailing dimensions are another graph: they are the model's, not the subset's.
    total(tf.constant(2.0), tf.ones([4, 2]), tf.constant(1.0))
    assert total.experimental_get_tracing_count() == 2


def _counts(optimizer):
    run = optimizer._cache[3]
    return {name: getattr(run, name).experimental_get_tracing_count() for name in ("start", "resume", "value_and_gradient", "value")}


def test_progressive_run_and_later_runs_trace_once(mnist, caplog):
    x, y = mnist[0][:2400], mnist[1][:2400]
    model = small_cnn(seed=3)
    optimizer = keras_subset.LBFGS(max_iterations=10)
    caplog.set_level(logging.WARNING)
    first = keras_subset.pretrain(model, x, y, size=300, growth=2, optimizer=optimizer, seed=0, verbose=0)
    # Four stages (300, 600, 1,200, 2,400 examples), each warm-started from the previous one's pairs,
    # with held-out checks: one graph each.
    assert [s.size for s in first.stages] == [300, 600, 1200, 2400]
    assert _counts(optimizer) == {"start": 1, "resume": 1, "value_and_gradient": 1, "value": 1}
    run = optimizer._cache[3]
    # Later runs on the same model with another LBFGS of the same settings reuse the graphs: a
    # second progressive run, and single minimize calls on new subset sizes.
    again = keras_subset.LBFGS(max_iterations=10)
    keras_subset.pretrain(model, x, y, size=400, growth=2, optimizer=again, seed=1, verbose=0)
    for size in (350, 700, 1000, 1300, 1600, 1900):
        keras_subset.LBFGS(max_iterations=3).minimize(model, x[:size], y[:size])
    assert again._cache[3] is run
    assert _counts(again) == {"start": 1, "resume": 1, "value_and_gradient": 1, "value": 1}
    # TensorFlow's warning about repeated tracing ("... triggered tf.function retracing") is gone.
    assert not [r for r in caplog.records if "retracing" in r.getMessage()]
    # Another graph setting (the pairs kept) is another run, traced on its own.
    other = keras_subset.LBFGS(max_iterations=3, num_correction_pairs=5)
    other.minimize(model, x[:500], y[:500])
    assert other._cache[3] is not run
    assert other._cache[3].options.num_correction_pairs == 5


def test_a_progressive_run_with_copies_traces_once(mnist):
    x, y = mnist[0][:800], mnist[1][:800]
    model = small_cnn(seed=3)
    optimizer = keras_subset.LBFGS(max_iterations=10)
    result = keras_subset.pretrain(
        model, x, y, size=100, growth=2, augment=keras.layers.RandomTranslation(0.1, 0.1), copies=2,
        optimizer=optimizer, seed=0, verbose=0,
    )
    assert [s.size for s in result.stages] == [100, 200, 400, 800]
    assert _counts(optimizer) == {"start": 1, "resume": 1, "value_and_gradient": 1, "value": 1}
    # The stored copies of every stage and held-out set: one graph.
    assert optimizer._cache[2].copies._extend.experimental_get_tracing_count() == 1


def test_a_kept_run_is_not_reused_for_other_weighting_or_a_recompiled_loss(mnist):
    x, y = mnist[0][:300], mnist[1][:300]
    w = np.linspace(0.2, 2.0, 300).astype("float32")
    model = small_cnn(seed=2)
    model.compile(loss=keras.losses.SparseCategoricalCrossentropy(reduction="mean_with_sample_weight"))
    keras_subset.LBFGS(max_iterations=1).minimize(model, x, y)
    # Sample weights change the divisor of a "mean_with_sample_weight" loss (the sum of the
    # weights): the run made without them must not serve.
    reference = np.ravel(model.evaluate(x, y, sample_weight=w, batch_size=300, verbose=0))[0]
    weighted = keras_subset.LBFGS(max_iterations=1).minimize(model, x, y, sample_weight=w)
    assert weighted.initial_loss == pytest.approx(reference, rel=1e-4)
    # The same loss string, recompiled with a loss weight: a new loss container.
    model.compile(loss="sparse_categorical_crossentropy", loss_weights=[3.0])
    reference = np.ravel(model.evaluate(x, y, batch_size=300, verbose=0))[0]
    recompiled = keras_subset.LBFGS(max_iterations=1).minimize(model, x, y)
    assert recompiled.initial_loss == pytest.approx(reference, rel=1e-4)
    # A run shared by several LBFGS holds its own copy of their settings.
    first = keras_subset.LBFGS(max_iterations=2)
    first.minimize(model, x, y)
    first.tolerance = 10.0
    later = keras_subset.LBFGS(max_iterations=5).minimize(model, x, y, sample_weight=w)
    assert later.iterations == 5 and not later.converged


@pytest.mark.fast
def test_later_calls_with_targets_of_another_rank_or_dtype_trace_their_own_graphs(mnist):
    # Issue 31, A: the first call's graphs, reused for targets (N, 1) after (N,), relaxed the
    # targets' rank to unknown, and Keras's loss failed ("Cannot take the length of shape with
    # unknown rank"). Each kind of targets now has its own kept run.
    x, y = mnist[0][:300], mnist[1][:300]
    model = small_cnn(seed=2)
    optimizer = keras_subset.LBFGS(max_iterations=1)
    for targets in (y, y[:, None], y.astype("float32"), y[:, None].astype("int64"), y, y[:, None]):
        # Not `model.evaluate`: Keras's own traced function fails the same way (Keras 3.15).
        reference = float(np.mean(keras.losses.sparse_categorical_crossentropy(targets, model(x))))
        result = optimizer.minimize(model, x, targets)
        assert result.initial_loss == pytest.approx(reference, rel=1e-4)
    # Sample weights of another shape, `pretrain` and `fit` after them: the same.
    w = np.linspace(0.2, 2.0, 300).astype("float32")
    for weights in (w, w[:, None], None):
        optimizer.minimize(model, x, y[:, None], sample_weight=weights)
    keras_subset.pretrain(model, x, y, size=200, growth=1.5, optimizer=keras_subset.LBFGS(max_iterations=1), seed=0)
    keras_subset.pretrain(model, x, y[:, None], size=200, optimizer=keras_subset.LBFGS(max_iterations=1), seed=0)
    # `fit` reports Keras's `evaluate`, whose traced function it makes anew for each call.
    keras_subset.LBFGS(max_iterations=1).fit(model, x, y, verbose=0)
    history = keras_subset.LBFGS(max_iterations=1).fit(model, x, y[:, None], verbose=0)
    reference = float(np.mean(keras.losses.sparse_categorical_crossentropy(y, model(x))))
    assert history.history["loss"][-1] == pytest.approx(reference, rel=1e-4)


@pytest.mark.parametrize("kind", ["dense", "batch_norm_in_training_mode", "masked_outputs"])
def test_a_loop_over_new_models_gets_no_retracing_warning(mnist, caplog, kind):
    # Each model has graphs of its own, traced once; TensorFlow counts the traces of one Python
    # function over all of them and, from the fifth model of a seeds or widths loop on, warned that
    # `CompiledRun._initial_state` (and, for these models, `Objective._divisors` or the batch
    # statistics' graph) "triggered tf.function retracing": they were plain `tf.function`s.
    x, y = mnist[0][:300, :, :, 0], mnist[1][:300]
    if kind == "masked_outputs":  # MNIST's rows as a sequence; its blank rows masked
        y = np.repeat(y[:, None], 28, axis=1)
    else:
        x = x.reshape(300, -1)
    caplog.set_level(logging.WARNING)
    for seed in range(6):
        keras.utils.set_random_seed(seed)
        layers = [keras.Input(x.shape[1:]), keras.layers.Dense(4, activation="tanh"), keras.layers.Dense(10)]
        if kind == "masked_outputs":
            layers.insert(1, keras.layers.Masking())
        if kind == "batch_norm_in_training_mode":
            layers.insert(2, keras.layers.BatchNormalization())
        model = keras.Sequential(layers)
        model.compile(loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
        optimizer = keras_subset.LBFGS(max_iterations=2, training=kind == "batch_norm_in_training_mode")
        assert optimizer.minimize(model, x, y).iterations == 2
        assert _counts(optimizer)["start"] == 1  # a new model: its own graphs, as it should be
    assert not [r.getMessage() for r in caplog.records if "retracing" in r.getMessage()]


@pytest.mark.parametrize("line_search", keras_subset.lbfgs.LINE_SEARCHES)
def test_a_run_in_many_segments_traces_nothing_after_a_one_iteration_call(mnist, monkeypatch, line_search):
    # As the engine benchmark times a run: a one-iteration call first, then the timed run, whose
    # segments (about a second each, for Ctrl-C) must not trace a graph (seconds each).
    monkeypatch.setattr(keras_subset.minimize, "SEGMENT_SECONDS", 0.0)  # one iteration a segment
    x, y = mnist[0][:300], mnist[1][:300]
    model = small_cnn(seed=3)
    optimizer = keras_subset.LBFGS(max_iterations=1, line_search=line_search)
    optimizer.minimize(model, x, y)
    traced = _counts(optimizer)
    optimizer.max_iterations = 6
    assert optimizer.minimize(model, x, y).iterations == 6
    assert _counts(optimizer) == traced and traced["start"] == traced["resume"] == 1, traced
