"""keras_subset.dead_model on real MNIST: a model whose outputs no longer depend on its input, and
the `pretrain` stages and `LBFGS.minimize` runs that end at one (keras_subset/dead_model.py)."""

import warnings

import numpy as np
import pytest
import keras

import keras_subset
from keras_subset.dead_model import DeadModelWarning, outputs_constant

from conftest import Counting, small_cnn


def _killed(model):
    """`model` (small_cnn) with every unit of its one convolution switched off: a bias of -100
    keeps each ReLU's input negative for images in [0, 1], as a too-large first step can."""
    conv = model.layers[0]
    kernel, bias = conv.get_weights()
    conv.set_weights([kernel, np.full_like(bias, -100.0)])
    return model


def _two_heads(dead_heads):
    """A functional model with dict inputs and two outputs; the heads named in `dead_heads`
    read a ReLU layer that is switched off."""
    keras.utils.set_random_seed(0)
    image = keras.Input((28, 28, 1), name="image")
    flat = keras.layers.Flatten()(image)
    outputs = {}
    for name in ("digit", "parity"):
        bias = -100.0 if name in dead_heads else 0.0
        hidden = keras.layers.Dense(8, activation="relu", bias_initializer=keras.initializers.Constant(bias))(flat)
        outputs[name] = keras.layers.Dense(10 if name == "digit" else 1, name=name)(hidden)
    return keras.Model({"image": image}, outputs)


@pytest.mark.fast
def test_outputs_constant_tells_a_dead_model_from_a_live_one(mnist):
    x = mnist[0][:300]
    assert not outputs_constant(small_cnn(seed=0), x)
    assert outputs_constant(_killed(small_cnn(seed=0)), x)
    # Every output must be the same: one live head of two is a live model.
    assert outputs_constant(_two_heads({"digit", "parity"}), {"image": x})
    assert not outputs_constant(_two_heads({"parity"}), {"image": x})
    # One example has nothing to compare with, nor have identical inputs (a masked-out batch of
    # sequences); a non-finite output is never "the same".
    assert not outputs_constant(_killed(small_cnn(seed=0)), x[:1])
    assert not outputs_constant(_killed(small_cnn(seed=0)), np.repeat(x[:1], 300, axis=0))
    masked = keras.Sequential([keras.Input((40,), dtype="int32"), keras.layers.Embedding(21, 8, mask_zero=True),
                               keras.layers.GRU(8), keras.layers.Dense(10)])
    padding = np.zeros((300, 40), "int32")
    assert not outputs_constant(masked, padding)
    padding[:, 0] = np.arange(300) % 20 + 1
    assert not outputs_constant(masked, padding)
    broken = _killed(small_cnn(seed=0))
    dense = broken.layers[-1]
    kernel, bias = dense.get_weights()
    dense.set_weights([kernel, np.full_like(bias, np.nan)])
    assert not outputs_constant(broken, x)


@pytest.mark.fast
def test_outputs_constant_looks_at_the_first_examples_only():
    # A model whose output is its first input feature: constant on the first 256 rows only.
    model = keras.Sequential([keras.Input((3,)), keras.layers.Lambda(lambda t: t[:, :1])])
    x = np.zeros((300, 3), "float32")
    x[:, 1] = np.arange(300)  # inputs that differ where the model does not look
    x[280:, 0] = 1.0
    assert outputs_constant(model, x)
    assert not outputs_constant(model, x, sample_size=300)
    # The tolerance is relative to the output's magnitude (at least 1).
    x[:2, 0] = [1e6, 1e6 + 0.5]
    assert outputs_constant(model, x[:2], tolerance=1e-6)
    assert not outputs_constant(model, x[:2], tolerance=1e-8)


def _counted(model, counter):
    """`model` behind a layer that adds every example it forwards to `counter["examples"]`."""
    outer = keras.Sequential([keras.Input((28, 28, 1)), Counting(counter), model])
    outer.compile(loss="sparse_categorical_crossentropy")
    return outer


def test_a_stage_that_ends_at_a_dead_model_says_so_once_and_changes_nothing(mnist):
    x, y = mnist[0][:2000], mnist[1][:2000]
    runs = []
    for action in ("always", "ignore"):
        counter = {"examples": 0}
        model = _counted(_killed(small_cnn(seed=1)), counter)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter(action)
            result = keras_subset.pretrain(
                model, x, y, ratio=2.0, growth=4.0, seed=0, optimizer=keras_subset.LBFGS(max_iterations=20)
            )
        warned = [w for w in caught if w.category is DeadModelWarning]
        runs.append((result, model.get_weights(), warned, counter["examples"]))
    (shown, weights, warned, forwarded), (silent, silent_weights, none, _) = runs
    # The only thing L-BFGS could fit was the last bias: the loss fell to about a constant
    # prediction's. The stages whose end claims a minimum (L-BFGS's own end; the last stage, on
    # all the data, has no held-out stop) are checked and found dead; the ones the held-out rule
    # stopped claim none and are not checked.
    claims = [s.reason.startswith(("converged", "stopped: the line search")) for s in shown.stages]
    assert len(shown.stages) >= 2 and claims[-1]
    assert [s.dead_model for s in shown.stages] == claims
    assert [s.reason.endswith("a dead model, not a minimum") for s in shown.stages] == claims
    assert shown.loss > 0.9 * np.log(10)
    # The check's forward pass (the first 256 examples) counts in the stage's forwards, beside
    # its held-out checks, and the layer saw no example that the cost leaves out.
    for stage, claimed in zip(shown.stages, claims):
        held_out = stage.example_forwards - (min(256, stage.size) if claimed else 0)
        assert held_out % stage.held_out_size == 0 if stage.held_out_size else held_out == 0
    assert forwarded == shown.example_gradients + shown.example_forwards
    # One warning for the whole call, naming the first dead stage; silenced, it changes nothing.
    first = claims.index(True) + 1
    assert len(warned) == 1 and not none
    assert f"stage {first}/{len(shown.stages)} ended at a dead model" in str(warned[0].message)
    assert warned[0].filename == __file__  # it points at the call of `pretrain`
    assert [s.loss for s in shown.stages] == [s.loss for s in silent.stages]
    for a, b in zip(weights, silent_weights):
        np.testing.assert_array_equal(a, b)


def test_a_live_model_gets_no_dead_model_warning(mnist):
    x, y = mnist[0][:2000], mnist[1][:2000]
    with warnings.catch_warnings():
        warnings.simplefilter("error", DeadModelWarning)
        result = keras_subset.pretrain(
            small_cnn(seed=1), x, y, ratio=2.0, growth=4.0, seed=0, optimizer=keras_subset.LBFGS(max_iterations=20),
        )
    assert not any(s.dead_model for s in result.stages)
    assert result.loss < 0.5 * result.initial_loss


def test_lbfgs_minimize_says_when_it_ends_at_a_dead_model(mnist):
    x, y = mnist[0][:1000], mnist[1][:1000]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        dead = keras_subset.LBFGS(max_iterations=20).minimize(_killed(small_cnn(seed=1)), x, y)
        live = keras_subset.LBFGS(max_iterations=20).minimize(small_cnn(seed=1), x, y)
    warned = [w for w in caught if w.category is DeadModelWarning]
    assert dead.dead_model and dead.reason.endswith("a dead model, not a minimum")
    assert not live.dead_model and live.loss < 0.5 * live.initial_loss
    assert len(warned) == 1 and "LBFGS.minimize ended at a dead model" in str(warned[0].message)
    assert warned[0].filename == __file__
    # A run that its cap ended claims no minimum and is not checked.
    with warnings.catch_warnings():
        warnings.simplefilter("error", DeadModelWarning)
        capped = keras_subset.LBFGS(max_iterations=1).minimize(_killed(small_cnn(seed=1)), x, y)
    assert not (capped.converged or capped.failed) and not capped.dead_model


def test_a_keras_optimizer_stage_at_its_plateau_is_checked_too(mnist):
    # stop_rule="minimum" claims a minimum for a minibatch stage too: a dead model's loss levels
    # off as soon as the last bias has learned the class frequencies.
    x, y = mnist[0][:600], mnist[1][:600]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = keras_subset.pretrain(
            _killed(small_cnn(seed=1)), x, y, size=300, seed=0, stop_rule="minimum",
            optimizer=keras.optimizers.Adam(1e-2), epochs=30,
        )
    (stage,) = result.stages
    assert stage.reason.startswith("its own minimum") and stage.iterations < 30 * 10
    assert stage.dead_model and stage.reason.endswith("a dead model, not a minimum")
    assert stage.example_forwards == 256 and result.example_forwards == 256
    assert [w.category for w in caught].count(DeadModelWarning) == 1
