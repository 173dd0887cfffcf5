"""Fixed augmented copies: the same copies at every evaluation, per example, nested, counted in Q and cost."""

import numpy as np
import pytest
import tensorflow as tf
import keras

import keras_subset
from keras_subset.augment import Copies
from conftest import small_cnn


def _flip(images, seed):
    return tf.image.stateless_random_flip_left_right(images, seed)


@pytest.fixture(scope="module")
def digits(mnist):
    return mnist[0][:300], mnist[1][:300]


def _start_loss(model, x, y, **kwargs):
    weights = model.get_weights()
    result = keras_subset.LBFGS(max_iterations=1, **kwargs.pop("options", {})).minimize(model, x, y, **kwargs)
    model.set_weights(weights)
    return result


@pytest.mark.fast
def test_copies_are_fixed_by_seed_and_independent_of_chunks(digits):
    x, y = digits
    model = small_cnn(seed=0)
    plain = _start_loss(model, x, y, options={"chunk_size": 64})
    none = _start_loss(model, x, y, options={"chunk_size": 64}, augment=_flip, copies=0, seed=3)
    assert none.initial_loss == plain.initial_loss and none.num_examples == 300  # copies=0: as before
    layer = keras.layers.RandomTranslation(0.15, 0.15)
    a = _start_loss(model, x, y, options={"chunk_size": 64}, augment=layer, copies=3, seed=1)
    b = _start_loss(model, x, y, options={"chunk_size": 100}, augment=layer, copies=3, seed=1)
    c = _start_loss(model, x, y, options={"chunk_size": 64}, augment=layer, copies=3, seed=2)
    assert a.num_examples == 1200
    assert a.initial_loss == pytest.approx(b.initial_loss, rel=1e-6)  # same copies in other chunks
    assert abs(a.initial_loss - c.initial_loss) > 1e-4  # another seed, other copies
    assert abs(a.initial_loss - plain.initial_loss) > 1e-4  # the copies count


@pytest.mark.fast
def test_copy_j_of_example_i_depends_on_seed_i_j_only(digits):
    x = tf.constant(digits[0][:40])
    copies = Copies(keras.layers.RandomTranslation(0.2, 0.2), 2, seed=5)
    ids = tf.range(40, dtype=tf.int64)
    whole = copies.apply(x, ids, tf.fill([40], 2))
    part = copies.apply(tf.gather(x, [7, 3]), tf.constant([7, 3], tf.int64), tf.constant([2, 2]))
    np.testing.assert_array_equal(part.numpy(), tf.gather(whole, [7, 3]).numpy())
    originals = copies.apply(x, ids, tf.zeros([40], tf.int32))
    np.testing.assert_array_equal(originals.numpy(), x.numpy())
    first = copies.apply(x, ids, tf.fill([40], 1))
    assert float(tf.reduce_mean(tf.abs(first - whole))) > 0.01  # copies 1 and 2 differ


def test_pretrain_counts_the_copies_in_q_and_cost_and_stays_nested(digits):
    x, y = digits
    model = small_cnn(seed=1)
    result = keras_subset.pretrain(
        model, x, y, size=75, growth=2.0, max_size=300, seed=0, augment=_flip, copies=3,
        optimizer=keras_subset.LBFGS(max_iterations=4),
    )
    p = model.count_params()
    for stage in result.stages:
        assert stage.copies == 3
        assert stage.ratio == pytest.approx(stage.size * 4 * 10 / p)
        assert stage.example_gradients == stage.evaluations * stage.size * 4
    assert result.example_gradients == sum(s.example_gradients for s in result.stages)
    assert [s.size for s in result.stages] == [75, 150, 300]
    assert result.loss < result.initial_loss


def test_batch_norm_and_dropout_models_take_copies(digits):
    x, y = digits
    model = small_cnn(seed=2, dropout=0.3, batch_norm=True)
    result = keras_subset.pretrain(
        model, x, y, size=150, seed=0, augment=keras.layers.RandomFlip("horizontal"), copies=2,
        optimizer=keras_subset.LBFGS(max_iterations=5),
    )
    assert result.stages[0].copies == 2 and np.isfinite(result.loss) and result.loss < result.initial_loss


@pytest.mark.fast
def test_bad_copies_and_augment_are_refused_before_any_work(digits):
    x, y = digits
    model = small_cnn(seed=3)
    weights = model.get_weights()
    lbfgs = keras_subset.LBFGS(max_iterations=1)
    with pytest.raises(ValueError, match="`copies` must be an integer >= 0"):
        lbfgs.minimize(model, x, y, augment=_flip, copies=-1)
    with pytest.raises(ValueError, match="`copies` must be an integer >= 0"):
        lbfgs.minimize(model, x, y, augment=_flip, copies=1.5)
    with pytest.raises(ValueError, match="needs `augment`"):
        lbfgs.minimize(model, x, y, copies=2)
    with pytest.raises(TypeError, match="`augment` must be a Keras layer"):
        lbfgs.minimize(model, x, y, augment="flip", copies=2)
    with pytest.raises(ValueError, match="keep the shape"):
        lbfgs.minimize(model, x, y, augment=lambda images, seed: images[:, :20], copies=2)
    with pytest.raises(ValueError, match="applies to L-BFGS stages"):
        keras_subset.pretrain(model, x, y, size=100, optimizer="adam", epochs=1, augment=_flip, copies=2)
    for a, b in zip(weights, model.get_weights()):
        np.testing.assert_array_equal(a, b)


@pytest.mark.fast
def test_stored_copies_equal_copies_made_in_every_evaluation(digits, monkeypatch):
    from keras_subset import augment
    from keras_subset.objective import Objective

    x, y = digits
    model = small_cnn(seed=4)
    layer = keras.layers.RandomTranslation(0.15, 0.15)
    stored = _start_loss(model, x, y, options={"chunk_size": 64}, augment=layer, copies=3, seed=1)
    data = Objective(model, chunk_size=64, augment=layer, copies=3, seed=1).data(tf.constant(x), tf.constant(y))
    assert data[0].shape[0] == 1200 and data[4] is None  # within the budget: made once, stored
    monkeypatch.setattr(augment, "MATERIALIZE_BYTES", 0)
    data = Objective(model, chunk_size=64, augment=layer, copies=3, seed=1).data(tf.constant(x), tf.constant(y))
    assert data[0].shape[0] == 300 and data[4].shape[0] == 300  # over it: only the originals are held
    made = _start_loss(model, x, y, options={"chunk_size": 64}, augment=layer, copies=3, seed=1)
    assert made.num_examples == stored.num_examples == 1200
    assert made.initial_loss == pytest.approx(stored.initial_loss, rel=1e-6)
    assert made.loss == pytest.approx(stored.loss, rel=1e-5)


@pytest.mark.fast
def test_ratio_counts_the_copies(digits):
    x, y = digits
    model = small_cnn(seed=5)
    p = model.count_params()
    assert keras_subset.subset_size_for_ratio(model, 2.0, copies=3) == int(np.ceil(2.0 * p / 40))
    result = keras_subset.pretrain(
        model, x, y, ratio=2.0, seed=0, augment=_flip, copies=3, optimizer=keras_subset.LBFGS(max_iterations=1),
    )
    stage = result.stages[0]
    assert stage.size == int(np.ceil(2.0 * p / 40)) and 2.0 <= stage.ratio < 2.0 + 40 / p
    with pytest.raises(ValueError, match="with 3 copies of each"):
        keras_subset.pretrain(model, x, y, ratio=1e4, augment=_flip, copies=3)


def test_copies_made_by_a_keras_layer_print_no_conversion_chatter(digits, capfd, caplog):
    # Issue 31, E: about 26 lines of TensorFlow's "Using a while_loop for converting ..." per
    # augmented run, from our own vectorized_map.
    x, y = digits
    keras_subset.LBFGS(max_iterations=2).minimize(
        small_cnn(seed=1), x, y, augment=keras.layers.RandomTranslation(0.1, 0.1), copies=2
    )
    logged = caplog.text + "".join(capfd.readouterr())
    assert "while_loop for converting" not in logged
