"""The objective is Keras's own loss: equal to `model.evaluate` on one batch of every example.

Each case is an ordinary Keras model a user meets on day one (binary classifier, several
outputs, masks, custom losses, a `compute_loss` override, class weights), evaluated in
chunks of 7 examples so that chunks with different divisors are summed. Real MNIST images,
downsampled to 7x7 = 49 features or read as sequences of 49 tokens.
"""

import numpy as np
import pytest
import tensorflow as tf
import keras

import keras_subset
from conftest import Counting

N = 120


@pytest.fixture(scope="module")
def small(mnist):
    """120 MNIST images as 49 features, their labels, and token sequences (0 = background, masked)."""
    x = mnist[0][:N, :, :, 0].reshape(N, 7, 4, 7, 4).mean(axis=(2, 4)).reshape(N, 49).astype("float32")
    tokens = np.minimum((x * 4).astype("int32"), 3)  # 0 background .. 3 bright: many zeros to mask
    return x, mnist[1][:N].astype("int32"), tokens


def _initial_loss(model, x, y, **kwargs):
    """The loss LBFGS.minimize starts from (no iteration changes the weights with max_iterations=1 undone)."""
    weights = model.get_weights()
    result = keras_subset.LBFGS(max_iterations=1, chunk_size=7).minimize(model, x, y, **kwargs)
    model.set_weights(weights)
    return result.initial_loss


def _evaluate(model, x, y, **kwargs):
    n = len(tf.nest.flatten(x)[0])
    return model.evaluate(x, y, batch_size=n, verbose=0, return_dict=True, **kwargs)["loss"]


@pytest.mark.fast
def test_binary_classifier_with_flat_targets(small):
    x, labels, _ = small
    y = (labels % 2).astype("float32")  # shape (N,), the output (N, 1): as model.fit takes them
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((49,)), keras.layers.Dense(1, activation="sigmoid")])
    model.compile(optimizer="adam", loss="binary_crossentropy", metrics=["accuracy"])
    assert _initial_loss(model, x, y) == pytest.approx(_evaluate(model, x, y), rel=1e-4)
    result = keras_subset.pretrain(model, x, y, size=60, seed=0, optimizer=keras_subset.LBFGS(max_iterations=20))
    assert result.stages[0].size == 60 and result.loss < result.initial_loss


def _two_outputs():
    keras.utils.set_random_seed(1)
    inputs = keras.Input((49,))
    hidden = keras.layers.Dense(8, activation="tanh")(inputs)
    return keras.Model(inputs, [keras.layers.Dense(2, name="a")(hidden), keras.layers.Dense(3, name="b")(hidden)])


def test_several_outputs_list_dict_and_loss_weights(small):
    x, labels, _ = small
    ya = np.stack([x[:, 10], x[:, 20]], axis=1)
    yb = np.stack([x[:, 30], x[:, 40], labels / 9.0], axis=1).astype("float32")
    model = _two_outputs()
    model.compile(loss="mse")
    # The sum over the outputs, as Keras adds them (the former objective took their mean).
    assert _initial_loss(model, x, [ya, yb]) == pytest.approx(_evaluate(model, x, [ya, yb]), rel=1e-4)
    assert _initial_loss(model, x, {"a": ya, "b": yb}) == pytest.approx(_evaluate(model, x, [ya, yb]), rel=1e-4)
    model.compile(loss={"a": "mse", "b": "mae"}, loss_weights={"a": 2.0, "b": 0.5})
    expected = _evaluate(model, x, {"a": ya, "b": yb})
    assert _initial_loss(model, x, {"a": ya, "b": yb}) == pytest.approx(expected, rel=1e-4)
    # pretrain fits `size` examples (not len(y) == 2 of the list), and M sums over the outputs.
    result = keras_subset.pretrain(model, x, [ya, yb], size=50, seed=0, optimizer=keras_subset.LBFGS(max_iterations=5))
    assert len(result.subset_indices) == 50 and result.stages[0].size == 50
    assert result.stages[0].held_out_size == 50
    assert keras_subset.overdetermination_ratio(model, 50) == pytest.approx(50 * 5 / model.count_params())
    assert keras_subset.pretrain(model, x, [ya, yb], ratio=1.0, optimizer=keras_subset.LBFGS(max_iterations=2)).stages
    # A Keras optimizer's minibatches carry the list of targets too.
    adam = keras_subset.pretrain(model, x, [ya, yb], size=50, seed=0, optimizer="adam", epochs=2, stop_rule="none")
    assert adam.loss < adam.initial_loss


def test_masks_from_embedding_and_ignore_class(small):
    _, labels, tokens = small
    y = np.repeat(labels[:, None] % 3, 49, axis=1)
    keras.utils.set_random_seed(2)
    model = keras.Sequential([
        keras.Input((49,)),
        keras.layers.Embedding(4, 4, mask_zero=True),
        keras.layers.GRU(4, return_sequences=True),
        keras.layers.Dense(3, activation="softmax"),
    ])
    model.compile(loss="sparse_categorical_crossentropy")
    # Chunks of 7 hold different numbers of unmasked steps: only the full-batch divisor is exact.
    assert _initial_loss(model, tokens, y) == pytest.approx(_evaluate(model, tokens, y), rel=1e-4)
    dense = keras.Sequential([keras.Input((49,)), keras.layers.Dense(10)])
    dense.compile(loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True, ignore_class=-1))
    partly = np.where(np.arange(N) % 3 == 0, -1, labels)
    x = tokens.astype("float32")
    assert _initial_loss(dense, x, partly) == pytest.approx(_evaluate(dense, x, partly), rel=1e-4)


def test_custom_losses_float64_targets_scalar_and_mean_with_sample_weight(small):
    x, labels, _ = small
    y = keras.utils.to_categorical(labels, 10)  # float64, as Keras makes them
    assert y.dtype == np.float64

    def squared(y_true, y_pred):
        return tf.reduce_sum(tf.square(y_true - y_pred), axis=-1)

    keras.utils.set_random_seed(3)
    model = keras.Sequential([keras.Input((49,)), keras.layers.Dense(10, activation="softmax")])
    model.compile(loss=squared)
    assert _initial_loss(model, x, y) == pytest.approx(_evaluate(model, x, y), rel=1e-4)

    def batch_mean(y_true, y_pred):  # one value for the whole batch
        return tf.reduce_mean(tf.square(y_true - y_pred))

    model.compile(loss=batch_mean)
    w = np.linspace(0.5, 1.5, N).astype("float32")
    with pytest.raises(ValueError, match="one value for the whole batch.*chunk_size=None"):
        keras_subset.LBFGS(max_iterations=1, chunk_size=7).minimize(model, x, y, sample_weight=w)
    single = keras_subset.LBFGS(max_iterations=1, chunk_size=None).minimize(model, x, y, sample_weight=w)
    model.set_weights(model.get_weights())
    model.compile(loss=keras.losses.CategoricalCrossentropy(reduction="mean_with_sample_weight"))
    assert _initial_loss(model, x, y, sample_weight=w) == pytest.approx(
        _evaluate(model, x, y, sample_weight=w), rel=1e-4
    )
    assert np.isfinite(single.loss)


class _Penalised(keras.Model):
    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        loss = super().compute_loss(x, y, y_pred, sample_weight, training)
        return loss + 0.5 * tf.reduce_sum(tf.square(self.trainable_variables[0]))


@pytest.mark.fast
def test_compute_loss_override_and_regularisers(small):
    x, labels, _ = small
    keras.utils.set_random_seed(4)
    inputs = keras.Input((49,))
    outputs = keras.layers.Dense(10, activation="softmax", kernel_regularizer="l2", activity_regularizer="l2")(inputs)
    model = _Penalised(inputs, outputs, name="penalised")
    model.compile(loss="sparse_categorical_crossentropy")
    expected = _evaluate(model, x, labels)
    plain = keras.losses.SparseCategoricalCrossentropy()(labels, model(x))
    assert expected > float(plain) + 0.1  # the penalty counts
    assert _initial_loss(model, x, labels) == pytest.approx(expected, rel=1e-4)


def test_loss_argument_class_weight_and_column_sample_weight(small):
    x, labels, _ = small
    keras.utils.set_random_seed(5)
    model = keras.Sequential([keras.Input((49,)), keras.layers.Dense(10, activation="softmax")])
    model.compile(optimizer="adam")  # no loss
    with pytest.raises(ValueError, match="pass `loss=`"):
        keras_subset.pretrain(model, x, labels, size=40)
    result = keras_subset.pretrain(
        model, x, labels, size=40, loss="sparse_categorical_crossentropy", seed=0,
        optimizer=keras_subset.LBFGS(max_iterations=3),
    )
    assert result.loss < result.initial_loss
    model.compile(loss="sparse_categorical_crossentropy")
    class_weight = {0: 3.0, 1: 0.5}
    weights = np.array([class_weight.get(int(c), 1.0) for c in labels], "float32")
    expected = _evaluate(model, x, labels, sample_weight=weights)
    assert _initial_loss(model, x, labels, class_weight=class_weight) == pytest.approx(expected, rel=1e-4)
    assert _initial_loss(model, x, labels, sample_weight=weights[:, None]) == pytest.approx(expected, rel=1e-4)
    with pytest.raises(ValueError, match="`class_weight` or `sample_weight`, not both"):
        keras_subset.LBFGS().minimize(model, x, labels, sample_weight=weights, class_weight=class_weight)
    with pytest.raises(ValueError, match="`class_weight` must be a dict"):
        keras_subset.SubsetPretraining(x, labels, size=10, class_weight=[1.0, 2.0])


def test_subset_pretraining_respects_validation_split_class_weight_and_resume(small, tmp_path):
    x, labels, _ = small
    keras.utils.set_random_seed(6)
    model = keras.Sequential([keras.Input((49,)), keras.layers.Dense(10, activation="softmax")])
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    pretraining = keras_subset.SubsetPretraining(
        x, labels, validation_split=0.25, fraction=0.5, growth=2.0, seed=0, class_weight={3: 2.0},
        optimizer=keras_subset.LBFGS(max_iterations=3), verbose=0,
    )
    model.fit(x, labels, validation_split=0.25, epochs=1, verbose=0, callbacks=[pretraining])
    # fit trains on the first 90 examples; the last 30 are its validation data and stay out.
    assert pretraining.subset_indices.max() < 90 and len(pretraining.subset_indices) == 90

    class Interrupt(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            if epoch == 0:
                raise RuntimeError("interrupted")

    backup = str(tmp_path / "backup")
    first = keras_subset.SubsetPretraining(x, labels, size=60, seed=0, optimizer=keras_subset.LBFGS(max_iterations=3), verbose=0)
    with pytest.raises(RuntimeError, match="interrupted"):
        model.fit(x, labels, epochs=3, verbose=0,
                  callbacks=[first, keras.callbacks.BackupAndRestore(backup), Interrupt()])
    assert first.pretrain_result is not None
    again = keras_subset.SubsetPretraining(x, labels, size=60, seed=0, optimizer=keras_subset.LBFGS(max_iterations=3), verbose=0)
    model.fit(x, labels, epochs=3, verbose=0, callbacks=[again, keras.callbacks.BackupAndRestore(backup)])
    assert again.pretrain_result is None and "resumed" in again.skipped


def test_smaller_mends(small, monkeypatch):
    x, labels, _ = small

    class Subclassed(keras.Model):
        def __init__(self):
            super().__init__()
            self.dense = keras.layers.Dense(10, activation="softmax")

        def call(self, inputs):
            return self.dense(inputs)

    model = Subclassed()
    model.compile(loss="sparse_categorical_crossentropy")
    model.build((None, 49))
    if not model.trainable_variables:  # Keras builds no sublayer here: the message says what to do
        with pytest.raises(ValueError, match=r"model\(x\[:1\]\)"):
            keras_subset.LBFGS().minimize(model, x, labels)
        model(x[:1])
    assert keras_subset.LBFGS(max_iterations=2).minimize(model, x, labels).iterations >= 1

    regression = keras.Sequential([keras.Input((49,)), keras.layers.Dense(1)])
    regression.compile(loss="mse")
    with pytest.raises(ValueError, match="continuous"):
        keras_subset.pretrain(regression, x, x[:, 3], size=20, strategy="stratified")

    with pytest.warns(UserWarning, match="no learning rate"):
        keras_subset.LBFGS().learning_rate = 0.1

    def forever():
        while True:
            yield x[:4], labels[:4]

    dataset = tf.data.Dataset.from_generator(
        forever, output_signature=(tf.TensorSpec((None, 49), tf.float32), tf.TensorSpec((None,), tf.int32))
    )
    monkeypatch.setattr(keras_subset.data, "MAX_UNKNOWN_CARDINALITY_BATCHES", 300)
    monkeypatch.setattr(keras_subset.data, "PROGRESS_SECONDS", 0.0)
    with pytest.raises(ValueError, match="301 batches.*may never end"):
        keras_subset.LBFGS().minimize(regression, dataset)


@pytest.mark.fast
def test_divisors_cost_no_forward_pass_unless_a_mask_needs_one(small):
    """Counted divisors are free; a masked loss's are measured by one forward pass per set of examples."""
    x, labels, tokens = small
    forwarded = {"examples": 0}

    from keras_subset.objective import Objective

    model = keras.Sequential([keras.Input((49,)), Counting(forwarded), keras.layers.Dense(10, activation="softmax")])
    model.compile(loss="sparse_categorical_crossentropy")
    objective = Objective(model, chunk_size=7)
    step = tf.function(objective.value_and_gradient)
    step(objective.position(), tf.constant(x), tf.constant(labels))  # no divisors given: counted, not measured
    assert forwarded["examples"] == N
    data = objective.data(tf.constant(x), tf.constant(labels))
    assert forwarded["examples"] == N  # nothing run for them

    keras.utils.set_random_seed(7)
    masked = keras.Sequential([
        keras.Input((49,)), Counting(forwarded), keras.layers.Embedding(4, 2, mask_zero=True),
        keras.layers.SimpleRNN(2, return_sequences=True), keras.layers.Dense(3, activation="softmax"),
    ])
    masked.compile(loss="sparse_categorical_crossentropy")
    objective = Objective(masked, chunk_size=7)
    y = np.repeat(labels[:, None] % 3, 49, axis=1)
    forwarded["examples"] = 0
    data = objective.data(tf.constant(tokens), tf.constant(y))
    assert forwarded["examples"] == N  # one pass measured the unmasked steps
    objective.value_and_gradient(objective.position(), *data)
    assert forwarded["examples"] == 2 * N


def test_callback_checks_at_construction_and_loss_reaches_the_batch_statistics(small):
    x, labels, _ = small
    # A class weighted 0 is legal (the check reads the dict, not a made-up example).
    keras_subset.SubsetPretraining(x, labels, size=10, class_weight={0: 0.0, 1: 1.0})
    with pytest.raises(ValueError, match="`copies` must be an integer >= 0"):
        keras_subset.SubsetPretraining(x, labels, size=10, augment=lambda images, seed: images, copies=-1)
    with pytest.raises(ValueError, match="applies to L-BFGS stages"):
        keras_subset.SubsetPretraining(x, labels, size=10, optimizer="adam", epochs=1,
                                       augment=lambda images, seed: images, copies=1)
    # No compiled loss, `loss=`, a Keras optimizer and Dropout: the final batch-statistics pass uses `loss` too.
    keras.utils.set_random_seed(8)
    model = keras.Sequential([keras.Input((49,)), keras.layers.Dropout(0.2), keras.layers.Dense(10, activation="softmax")])
    result = keras_subset.pretrain(model, x, labels, size=60, seed=0, loss="sparse_categorical_crossentropy",
                                   optimizer="adam", epochs=1, stop_rule="none")
    assert np.isfinite(result.loss)
