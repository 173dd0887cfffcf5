"""Keras models the benchmarks do not use: the library's loss beside `model.evaluate`'s, one line each.

Run: python3 examples/keras_losses.py

Each line prints the loss `LBFGS.minimize` starts from (the objective, summed over chunks of 6
examples) and `model.evaluate(batch_size=N)` on the same weights and data; they agree to float32
round-off. Small random inputs (40 to 64 examples) keep it quick; `tests/test_keras_loss.py`
asserts the same on real MNIST.
"""

import numpy as np
import tensorflow as tf
import keras

import keras_subset


def compare(name, model, x, y, chunk_size=6, **kwargs):
    n = len(tf.nest.flatten(x)[0])
    expected = model.evaluate(x, y, batch_size=n, verbose=0, return_dict=True, **kwargs)["loss"]
    weights = model.get_weights()
    try:
        ours = keras_subset.LBFGS(max_iterations=1, chunk_size=chunk_size).minimize(model, x, y, **kwargs).initial_loss
        print(f"{name:40s} library {ours:.6f}  model.evaluate {expected:.6f}")
    except ValueError as error:
        # Raised while the graph is traced: TensorFlow puts the trace above the message.
        message = [line.strip() for line in str(error).splitlines() if line.strip()][-1]
        print(f"{name:40s} refused: {message[:110]}")
    model.set_weights(weights)


def main():
    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(64, 8)).astype("float32")
    labels = rng.integers(0, 3, 64)

    model = keras.Sequential([keras.Input((8,)), keras.layers.Dense(1, activation="sigmoid")])
    model.compile(loss="binary_crossentropy")
    compare("binary classifier, targets (N,)", model, x, (labels % 2).astype("float32"))

    inputs = keras.Input((8,))
    outputs = {"p": keras.layers.Dense(3, activation="softmax", name="p")(inputs), "q": keras.layers.Dense(1, name="q")(inputs)}
    model = keras.Model(inputs, outputs)
    model.compile(loss={"p": "sparse_categorical_crossentropy", "q": "mse"}, loss_weights={"p": 1.0, "q": 0.3},
                  metrics={"p": ["accuracy"]})
    compare("two outputs, dict losses + loss_weights", model, x, {"p": labels, "q": x[:, 0]})

    inputs = keras.Input((8,))
    model = keras.Model(inputs, [keras.layers.Dense(3, activation="softmax")(inputs), keras.layers.Dense(1)(inputs)])
    model.compile(loss=["sparse_categorical_crossentropy", None])
    compare("two outputs, one without a loss", model, x, [labels, x[:, 0]])

    tokens = rng.integers(1, 20, size=(64, 6))
    tokens[:, 4:] = 0
    tokens[::3, 2:] = 0
    model = keras.Sequential([keras.Input((6,)), keras.layers.Embedding(20, 4, mask_zero=True),
                              keras.layers.LSTM(5, return_sequences=True), keras.layers.Dense(3, activation="softmax")])
    model.compile(loss="sparse_categorical_crossentropy")
    compare("masked sequence (Embedding mask_zero)", model, tokens, rng.integers(0, 3, size=(64, 6)))

    model = keras.Sequential([keras.Input((8,)), keras.layers.Dense(4)])
    model.compile(loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True, ignore_class=-1))
    partly = np.where(np.arange(64) % 3 == 0, -1, rng.integers(0, 4, 64))
    compare("ignore_class", model, x, partly)

    def squared(y_true, y_pred):
        return tf.reduce_sum(tf.square(y_true - y_pred), axis=-1)

    model = keras.Sequential([keras.Input((8,)), keras.layers.Dense(4, activation="softmax")])
    model.compile(loss=squared)
    compare("custom loss, float64 one-hot targets", model, x, keras.utils.to_categorical(labels, 4))

    def batch_mean(y_true, y_pred):
        return tf.reduce_mean(tf.square(y_true - y_pred))

    model.compile(loss=batch_mean)
    weights = rng.random(64).astype("float32")
    compare("custom loss of one value per batch", model, x, keras.utils.to_categorical(labels, 4), sample_weight=weights)
    compare("  the same in one pass", model, x, keras.utils.to_categorical(labels, 4), chunk_size=None,
            sample_weight=weights)

    class Penalised(keras.Model):
        def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
            loss = super().compute_loss(x, y, y_pred, sample_weight, training)
            return loss + 0.1 * tf.reduce_sum(tf.square(self.trainable_variables[0]))

    inputs = keras.Input((8,))
    model = Penalised(inputs, keras.layers.Dense(3, activation="softmax", kernel_regularizer="l2",
                                                 activity_regularizer="l2")(inputs), name="penalised")
    model.compile(loss=keras.losses.SparseCategoricalCrossentropy(reduction="mean_with_sample_weight"))
    compare("compute_loss override, regularisers, mwsw", model, x, labels, sample_weight=weights)

    sequences = rng.normal(size=(64, 5, 3)).astype("float32")
    sequences[::2, 3:] = 0
    model = keras.Sequential([keras.Input((5, 3)), keras.layers.Masking(0.0),
                              keras.layers.LSTM(4, return_sequences=True), keras.layers.Dense(2)])
    model.compile(loss="mse")
    compare("Masking + LSTM, per-step weights (N, T)", model, sequences, rng.normal(size=(64, 5, 2)).astype("float32"),
            sample_weight=rng.random((64, 5)).astype("float32"))


if __name__ == "__main__":
    main()
