"""keras_subset.pretrain on real MNIST (keras_subset/pretrain.py): nested stages, the stage rule, the cost."""

import time
import warnings

import numpy as np
import pytest
import tensorflow as tf
import keras

import keras_subset
from keras_subset.pretrain import stage_sizes
from keras_subset.objective import Objective

from conftest import Counting, interrupt_after, interrupt_delay, small_cnn


@pytest.mark.fast
def test_stage_sizes_grow_by_the_factor_to_the_last():
    assert stage_sizes(100, 1000, None) == [100]
    assert stage_sizes(100, 1000, 2.0) == [100, 200, 400, 800, 1000]
    assert stage_sizes(100, 100, 2.0) == [100]
    # A factor close to 1 still grows by at least one example a stage.
    assert stage_sizes(3, 6, 1.01) == [3, 4, 5, 6]


class _Segments(keras.callbacks.Callback):
    """Keeps every segment's logs and the model's loss on given data then."""

    def __init__(self, x=None, y=None):
        super().__init__()
        self.logs, self.x, self.y, self.losses = [], x, y, []

    def on_epoch_end(self, epoch, logs=None):
        self.logs.append(dict(logs))
        if self.x is not None:
            self.losses.append(self.model.evaluate(self.x, self.y, batch_size=len(self.x), verbose=0)[0])


def test_progressive_stages_are_nested_warm_started_and_end_on_all_examples(mnist):
    x, y = mnist[0][:3000], mnist[1][:3000]
    model = small_cnn(seed=1)
    segments = _Segments()
    result = keras_subset.pretrain(
        model, x, y, ratio=1.0, growth=2.0, seed=0, optimizer=keras_subset.LBFGS(max_iterations=30),
        callbacks=[segments],
    )
    k0 = keras_subset.subset_size_for_ratio(model, 1.0)
    sizes = [s.size for s in result.stages]
    assert sizes == stage_sizes(k0, 3000, 2.0) and sizes[-1] == 3000
    assert [s.ratio for s in result.stages] == pytest.approx([k * 10 / 1490 for k in sizes])
    # The subsets are prefixes of one order of the examples: each holds the previous one.
    order = keras_subset.subset.nested_order(y, "random", 0)
    for small, large in zip(sizes, sizes[1:]):
        assert set(order[:small]) <= set(order[:large])
    np.testing.assert_array_equal(result.subset_indices, np.arange(3000))
    # Every stage but the last had held-out examples (the next stage's new ones, at most K).
    for stage, following in zip(result.stages, sizes[1:]):
        assert stage.held_out_size == min(following - stage.size, stage.size) and stage.held_out_loss is not None
    assert result.stages[-1].held_out_loss is None and result.stages[-1].held_out_size == 0
    # Warm starts: each stage began at the weights the previous one ended with, so the first
    # segment of a stage already has a loss near the previous stage's held-out loss, far below
    # the loss at the initial weights.
    first_of_stage = {}
    for logs in segments.logs:
        first_of_stage.setdefault(logs["stage"], logs)
    assert first_of_stage[len(sizes) - 1]["loss"] < 0.5 * result.initial_loss
    assert result.stages[-1].loss < result.stages[0].held_out_loss
    # The model ends with the last stage's weights.
    objective = Objective(model)
    value, _ = objective.value_and_gradient(objective.position(), tf.constant(x), tf.constant(y))
    assert float(value) == pytest.approx(result.stages[-1].loss, rel=1e-4)


def test_the_stage_rule_keeps_the_weights_of_the_best_held_out_loss(mnist):
    x, y = mnist[0][:2000], mnist[1][:2000]
    runs = {}
    for rule in ("held_out", "none"):
        model = small_cnn(seed=2)
        result = keras_subset.pretrain(
            model, x, y, size=300, seed=3, stop_rule=rule, check_every=5,
            optimizer=keras_subset.LBFGS(max_iterations=150),
        )
        runs[rule] = (model, result)
    order = keras_subset.subset.nested_order(y, "random", 3)
    held_out = order[300:600]  # the examples after the subset, as many as it holds
    model, result = runs["held_out"]
    stage = result.stages[0]
    assert stage.held_out_size == 300
    assert model.evaluate(x[held_out], y[held_out], batch_size=300, verbose=0)[0] == pytest.approx(
        stage.held_out_loss, rel=1e-4
    )
    # 300 examples for 1,490 parameters: run to its limit, the subset's cross-entropy falls far
    # below what the rule keeps, and the held-out loss rises above it.
    free_model, free = runs["none"]
    assert free.stages[0].held_out_loss is None
    assert free.stages[0].loss < stage.loss
    assert free_model.evaluate(x[held_out], y[held_out], batch_size=300, verbose=0)[0] > stage.held_out_loss
    assert stage.iterations < free.stages[0].iterations
    assert "statistical accuracy" in stage.reason


def test_cost_is_every_evaluation_times_its_subset_plus_the_held_out_forwards(mnist):
    x, y = mnist[0][:1200], mnist[1][:1200]
    forwarded = {"examples": 0}

    keras.utils.set_random_seed(4)
    model = keras.Sequential(
        [keras.Input((28, 28, 1)), Counting(forwarded), keras.layers.Conv2D(2, 3, strides=3, activation="relu"),
         keras.layers.Flatten(), keras.layers.Dense(10)]
    )
    model.compile(loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    result = keras_subset.pretrain(
        model, x, y, size=150, growth=2.0, max_size=1000, seed=0, check_every=3,
        optimizer=keras_subset.LBFGS(max_iterations=12),
    )
    assert [s.size for s in result.stages] == [150, 300, 600, 1000]
    for stage in result.stages:
        assert stage.example_gradients == stage.evaluations * stage.size
        assert stage.example_forwards % stage.held_out_size == 0 if stage.held_out_size else stage.example_forwards == 0
    assert result.example_gradients == sum(s.evaluations * s.size for s in result.stages)
    assert result.example_forwards == sum(s.example_forwards for s in result.stages) > 0
    # The layer counted every example the objective forwarded: each evaluation of each stage
    # (its starting point and line searches included) and each held-out check; nothing else.
    assert forwarded["examples"] == result.example_gradients + result.example_forwards


def test_batch_norm_and_dropout_models_train_in_training_mode_and_end_with_population_statistics(mnist):
    x, y = mnist[0][:1500], mnist[1][:1500]
    model = small_cnn(seed=6, dropout=0.3, batch_norm=True)
    result = keras_subset.pretrain(
        model, x, y, size=500, growth=2.0, max_size=1000, seed=1, optimizer=keras_subset.LBFGS(max_iterations=20)
    )
    last = np.sort(keras_subset.subset.nested_order(y, "random", 1)[:1000])
    np.testing.assert_array_equal(result.subset_indices, last)
    bn = [l for l in model.layers if isinstance(l, keras.layers.BatchNormalization)][0]
    features = keras.Sequential(model.layers[: model.layers.index(bn)])(x[last], training=False).numpy()
    # The moving statistics are the population statistics of the last subset at the final weights...
    np.testing.assert_allclose(bn.moving_mean.numpy(), features.mean(axis=0), rtol=1e-3, atol=1e-4)
    np.testing.assert_allclose(bn.moving_variance.numpy(), features.var(axis=0), rtol=1e-3, atol=1e-4)
    # ...where an inference-mode objective (training=False) leaves them at their initial values.
    model = small_cnn(seed=6, dropout=0.3, batch_norm=True)
    keras_subset.pretrain(model, x, y, size=500, seed=1, training=False, optimizer=keras_subset.LBFGS(max_iterations=5))
    bn = [l for l in model.layers if isinstance(l, keras.layers.BatchNormalization)][0]
    np.testing.assert_array_equal(bn.moving_mean.numpy(), np.zeros(bn.moving_mean.shape))


def test_keras_optimizer_stages(mnist):
    x, y = mnist[0][:2000], mnist[1][:2000]
    model = small_cnn(seed=7)
    result = keras_subset.pretrain(
        model, x, y, size=250, growth=2.0, max_size=1000, strategy="stratified", seed=2,
        optimizer=keras.optimizers.Adam(3e-3), epochs=4, batch_size=50,
    )
    assert [s.size for s in result.stages] == [250, 500, 1000]
    for stage in result.stages:
        assert 1 <= stage.evaluations <= 4 and stage.iterations == stage.evaluations * (stage.size // 50)
        assert stage.example_gradients == stage.evaluations * stage.size
    # Class-balanced prefixes: 1,000 examples, 100 of each class.
    assert np.bincount(y[result.subset_indices]).tolist() == [100] * 10
    assert result.stages[-1].loss < result.initial_loss


@pytest.mark.fast
@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"size": 10, "growth": 1.0}, "growth"),
        ({"size": 10, "growth": "2"}, "growth"),
        ({"size": 10, "max_size": 100}, "apply with `growth`"),
        ({"size": 10, "growth": 2.0, "max_size": 100, "max_fraction": 0.5}, "at most one"),
        ({"size": 10, "growth": 2.0, "max_fraction": 1.5}, "max_fraction"),
        ({"size": 10, "growth": 2.0, "max_ratio": -1.0}, "max_ratio"),
        ({"size": 10, "growth": 2.0, "max_size": 0}, "max_size"),
        ({"size": 10, "growth": 2.0, "max_size": 5}, "smaller than the first"),
        ({"size": 10, "weight_decay": -1.0}, "weight_decay"),
        ({"size": 10, "stop_rule": "early"}, "stop_rule"),
        ({"size": 10, "check_every": 0}, "check_every"),
        ({"size": 10, "patience": True}, "patience"),
        ({"size": 10, "check_tolerance": 1.0}, "check_tolerance"),
        ({"size": 10, "carry_history": "yes"}, "carry_history"),
        ({"size": 10, "training": "auto"}, "training"),
        ({"size": 10, "verbose": 3}, "verbose"),
        ({"size": 10, "seed": "x"}, "seed"),
        ({"size": 10, "epochs": 3}, "epochs"),
        ({"size": 10, "optimizer": "adam"}, "epochs"),
        ({"size": 10, "optimizer": 3}, "optimizer"),
        ({"size": 5000}, "size"),
        ({"ratio": 1.0, "fraction": 0.1}, "exactly one"),
    ],
)
def test_bad_arguments_are_refused_before_any_work(mnist, kwargs, match):
    x, y = mnist[0][:600], mnist[1][:600]
    model = small_cnn(seed=8)
    before = model.get_weights()
    with pytest.raises(ValueError, match=match):
        keras_subset.pretrain(model, x, y, **kwargs)
    for a, b in zip(before, model.get_weights()):
        np.testing.assert_array_equal(a, b)


def _bn_dropout_cnn(seed):
    keras.utils.set_random_seed(seed)
    layers = keras.layers
    model = keras.Sequential(
        [
            keras.Input((28, 28, 1)), layers.Conv2D(8, 3), layers.BatchNormalization(), layers.ReLU(),
            layers.MaxPooling2D(), layers.Flatten(), layers.Dropout(0.3), layers.Dense(10),
        ]
    )
    model.compile(
        optimizer="adam", loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True), metrics=["accuracy"]
    )
    return model


def test_pretraining_a_batch_norm_dropout_cnn_leaves_it_ready_for_fit(mnist):
    # The case of the issue: a CNN with BatchNormalization and Dropout, a 10 % subset pretrained,
    # then one epoch of Adam; against one epoch of Adam alone from the same weights.
    x, y, x_test, y_test = mnist
    alone = _bn_dropout_cnn(seed=3)
    alone.fit(x, y, batch_size=128, epochs=1, verbose=0)
    pretrained = _bn_dropout_cnn(seed=3)
    pretraining = keras_subset.SubsetPretraining(x, y, fraction=0.1, seed=0, verbose=0)
    pretrained.fit(x, y, batch_size=128, epochs=1, verbose=0, callbacks=[pretraining])
    # The former treatment: an inference-mode objective (moving statistics left at their initial
    # values), the subset fitted to its minimum.
    former = _bn_dropout_cnn(seed=3)
    former_pretraining = keras_subset.SubsetPretraining(
        x, y, fraction=0.1, seed=0, verbose=0, training=False, stop_rule="none"
    )
    former.fit(x, y, batch_size=128, epochs=1, verbose=0, callbacks=[former_pretraining])
    alone_accuracy = alone.evaluate(x_test, y_test, verbose=0)[1]
    pretrained_accuracy = pretrained.evaluate(x_test, y_test, verbose=0)[1]
    former_accuracy = former.evaluate(x_test, y_test, verbose=0)[1]
    # The subset objective ran in training mode (batch statistics, fixed dropout masks) and the
    # moving statistics were set from the subset, so fit went on from a consistent model: not
    # worse than no pretraining, and better than the former treatment (measured here: 0.870
    # against 0.800 alone and 0.827 the former way).
    assert pretraining.pretrain_result.stages[0].size == 600
    assert pretrained_accuracy >= alone_accuracy - 0.005, (pretrained_accuracy, alone_accuracy)
    assert pretrained_accuracy > former_accuracy, (pretrained_accuracy, former_accuracy)


def test_the_minimum_rule_fits_each_stage_to_its_own_plateau_without_held_out_examples(mnist):
    x, y = mnist[0][:2000], mnist[1][:2000]
    runs = {}
    for rule in ("minimum", "none"):
        model = small_cnn(seed=2)
        # An L2 penalty gives the subset's cross-entropy a finite minimum (without one a subset this
        # small is fitted ever closer to zero loss, by more than any relative tolerance).
        runs[rule] = keras_subset.pretrain(
            model, x, y, size=1000, growth=2.0, seed=3, stop_rule=rule, check_every=10,
            check_tolerance=1e-2, weight_decay=1e-2, optimizer=keras_subset.LBFGS(max_iterations=150),
        )
    stage, free = runs["minimum"].stages[0], runs["none"].stages[0]
    assert "its own minimum" in stage.reason and stage.iterations % 10 == 0
    # It stopped before "none" did, with no held-out examples passed, at a loss within 5 % of the
    # one "none" reached by running on.
    assert stage.iterations < free.iterations
    assert stage.held_out_size == 0 and stage.held_out_loss is None
    # Its only forwards are the dead-model check of each stage whose end claims a minimum (256
    # examples; keras_subset/dead_model.py): the plateau's, and L-BFGS's own end on all of them.
    claims = [s.reason.startswith(("its own minimum", "converged", "stopped: the line search"))
              for s in runs["minimum"].stages]
    assert claims[0] and not any(s.dead_model for s in runs["minimum"].stages)
    assert [s.example_forwards for s in runs["minimum"].stages] == [256 * c for c in claims]
    assert stage.loss == pytest.approx(free.loss, rel=5e-2)
    # The stage on all the examples runs to the optimizer's limits (here past 40 iterations, to
    # zero loss: no penalty there).
    last = runs["minimum"].stages[-1]
    assert last.size == 2000 and "its own minimum" not in last.reason and last.iterations > 40


@pytest.mark.fast
def test_a_callback_that_sets_stop_training_ends_pretrain_and_the_flag_is_put_back(mnist):
    x, y = mnist[0][:1500], mnist[1][:1500]
    model = small_cnn(seed=1)

    class StopAfterTwoSegments(keras.callbacks.Callback):
        def __init__(self):
            super().__init__()
            self.segments = 0

        def on_epoch_end(self, epoch, logs=None):
            self.segments += 1
            if self.segments == 2:
                self.model.stop_training = True

    result = keras_subset.pretrain(
        model, x, y, ratio=1.0, growth=2.0, seed=0, stop_rule="none", check_every=5,
        optimizer=keras_subset.LBFGS(max_iterations=50), callbacks=[StopAfterTwoSegments()],
    )
    # One stage of two segments, not the 50 iterations of each of the stages planned.
    assert len(result.stages) == 1 and result.stages[0].iterations == 10
    assert result.stopped_by_callback and "stopped by a callback" in result.stages[0].reason
    assert model.stop_training is False  # as before the call: a fit around it goes on
    np.testing.assert_array_equal(result.subset_indices, np.sort(result.subset_indices))
    assert len(result.subset_indices) == result.stages[0].size
    # Q of all the examples given: N*M/P.
    assert result.q_full == pytest.approx(1500 * 10 / keras_subset.subset.num_trainable_parameters(model))


@pytest.mark.parametrize("optimizer", ["lbfgs", "adam"])
def test_ctrl_c_ends_pretrain_in_its_stage_and_keeps_the_stages_so_far(mnist, optimizer):
    # Issue 31, B: the interrupted stage keeps its weights, no later stage runs, and the
    # KeyboardInterrupt carries the result so far.
    x, y = mnist[0][:4000], mnist[1][:4000]
    model = small_cnn(seed=1)
    initial = model.get_weights()
    if optimizer == "lbfgs":
        kwargs = dict(optimizer=keras_subset.LBFGS(max_iterations=1))
    else:
        kwargs = dict(optimizer=keras.optimizers.Adam(1e-3), epochs=1, batch_size=8)
    # Traces the graphs (L-BFGS's are kept per model), then times 10 iterations (or an epoch of
    # 8-example batches) per stage, K = 1000, 2000, 4000 (70 iterations, or 875 steps, at K = 1000's
    # cost), then the run that is interrupted in its first stage after about 30 iterations (or 200
    # steps): 1,000 L-BFGS iterations (or 500 epochs) per stage, about a minute each here.
    def run():  # reads `kwargs` as they are at each call
        return keras_subset.pretrain(model, x, y, size=1000, growth=2.0, seed=0, stop_rule="none", **kwargs)

    run()
    if optimizer == "lbfgs":
        kwargs["optimizer"].max_iterations = 10
        steps, wanted = 10 + 20 + 40, 30
    else:
        steps, wanted = 125 + 250 + 500, 200
    delay = interrupt_delay(run, steps=steps, wanted=wanted)
    model.set_weights(initial)
    if optimizer == "lbfgs":
        kwargs["optimizer"].max_iterations = 1000
    else:
        # A large step, so that the steps a loaded machine runs before the Ctrl-C already take the
        # subset loss well down.
        kwargs.update(optimizer=keras.optimizers.Adam(1e-2), epochs=500)
    started = time.perf_counter()
    with pytest.raises(KeyboardInterrupt) as caught, interrupt_after(delay):
        run()
    stopped = time.perf_counter() - started
    result = caught.value.result
    assert stopped < delay + 5.0, (stopped, delay)
    assert len(result.stages) == 1 and result.stages[0].reason.startswith("interrupted"), result.stages
    assert "pretrain interrupted in stage 1/3 (K = 1000)" in str(caught.value)
    assert model.stop_training is False
    # The model holds the stage's weights: its subset loss, well below the start.
    stage = result.stages[0]
    subset = result.subset_indices
    assert len(subset) == 1000 and stage.loss < 0.7 * result.initial_loss, (stage, result.initial_loss)
    assert model.evaluate(x[subset], y[subset], batch_size=1000, verbose=0)[0] == pytest.approx(stage.loss, rel=1e-4)


def test_non_finite_inputs_under_progressive_pretrain_are_found_before_any_weight_changes(mnist):
    # Issue 31, C: a NaN outside the first subset was found at a later stage's start, after the
    # weights had moved, as "the loss at the starting weights is not finite (0.445)".
    x, y = mnist[0][:3000].copy(), mnist[1][:3000]
    x[5, 3] = np.nan
    model = small_cnn(seed=1)
    before = model.get_weights()
    with pytest.raises(ValueError, match=r"`x` holds NaN at example 5 \(entry \(5, 3, 0, 0\)\)"):
        keras_subset.pretrain(model, x, y, ratio=1.0, growth=2.0, seed=0)
    for a, b in zip(before, model.get_weights()):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("stop_rule, stage", [("held_out", 1), ("minimum", 2)])
def test_a_later_stage_that_cannot_start_puts_back_the_weights_the_call_started_with(mnist, stop_rule, stage):
    # What no check up front sees (a label outside the outputs, behind a custom loss), seen only
    # when the example is first evaluated (in the first stage's held-out check, or when the second
    # stage starts), after the weights moved: they go back to those of the call's start.
    x, y = mnist[0][:3000], mnist[1][:3000].copy()
    model = small_cnn(seed=1)
    first = keras_subset.subset_size_for_ratio(model, 1.0)
    order = keras_subset.subset.nested_order(3000, "random", 0)
    y[order[first + 10]] = 12  # in the second stage, not the first

    def wrapped(y_true, y_pred):
        return keras.losses.sparse_categorical_crossentropy(y_true, y_pred)

    before = model.get_weights()
    with pytest.raises(ValueError, match=rf"label value of 12.*in stage {stage}/6; the model's weights were put back"):
        keras_subset.pretrain(
            model, x, y, loss=wrapped, ratio=1.0, growth=2.0, seed=0, optimizer=keras_subset.LBFGS(max_iterations=5),
            stop_rule=stop_rule,
        )
    for a, b in zip(before, model.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_the_saving_warning_says_so_and_changes_nothing(mnist, monkeypatch):
    from keras_subset import subset
    x, y = mnist[0][:1500], mnist[1][:1500]
    q_full = 1500 * 10 / 1490  # small_cnn: P = 1,490
    monkeypatch.setattr(subset, "SAVING_Q_FULL", 100.0)
    runs = []
    for action in ("always", "ignore"):
        model = small_cnn(seed=1)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter(action)
            result = keras_subset.pretrain(model, x, y, ratio=2.0, growth=2.0, seed=0,
                                           optimizer=keras_subset.LBFGS(max_iterations=10))
        runs.append((result, model.get_weights(), [w for w in caught if w.category is subset.SavingWarning]))
    (shown, weights, warned), (silent, silent_weights, none) = runs
    assert len(warned) == 1 and f"Q_full = {q_full:.3g}" in str(warned[0].message) and not none
    assert shown.q_full == pytest.approx(q_full)
    assert [s.loss for s in shown.stages] == [s.loss for s in silent.stages]
    for a, b in zip(weights, silent_weights):
        np.testing.assert_array_equal(a, b)
    # Above the threshold: no warning.
    monkeypatch.setattr(subset, "SAVING_Q_FULL", 5.0)
    with warnings.catch_warnings():
        warnings.simplefilter("error", subset.SavingWarning)
        keras_subset.pretrain(small_cnn(seed=1), x, y, ratio=2.0, seed=0,
                              optimizer=keras_subset.LBFGS(max_iterations=2))
