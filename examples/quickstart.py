"""The README's quick start on real MNIST: progressive subset pretraining with L-BFGS, then 3 epochs of Adam.

Run: KERAS_SUBSET_DATA_DIR=data python3 examples/quickstart.py [--baseline]
(`--baseline` trains the same model with Adam alone, same epochs, for comparison.)
"""

import os
import sys
import time

import numpy as np
import keras

import keras_subset


def main():
    folder = os.environ.get("KERAS_SUBSET_DATA_DIR")
    if folder:
        with np.load(os.path.join(folder, "mnist.npz")) as d:
            (x, y), (x_test, y_test) = (d["x_train"], d["y_train"]), (d["x_test"], d["y_test"])
    else:
        (x, y), (x_test, y_test) = keras.datasets.mnist.load_data()
    x, x_test = x[..., None] / 255.0, x_test[..., None] / 255.0

    keras.utils.set_random_seed(0)
    model = keras.Sequential([
        keras.Input((28, 28, 1)),
        keras.layers.Conv2D(16, 3, activation="relu"),
        keras.layers.MaxPooling2D(),
        keras.layers.Conv2D(32, 3, activation="relu"),
        keras.layers.MaxPooling2D(),
        keras.layers.Flatten(),
        keras.layers.Dense(10, activation="softmax"),
    ])
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    print(f"P = {model.count_params()}, Q of the full set = "
          f"{keras_subset.overdetermination_ratio(model, len(x)):.1f}")

    callbacks = []
    if "--baseline" not in sys.argv:
        # Nested subsets from Q = 1, doubling up to a quarter of the data, each stopped at its
        # statistical accuracy (the held-out loss of the next stage's examples), L-BFGS throughout.
        callbacks.append(keras_subset.SubsetPretraining(
            x, y, ratio=1.0, growth=2.0, max_fraction=0.25, optimizer=keras_subset.LBFGS(max_iterations=200), seed=0))
    start = time.perf_counter()
    model.fit(x, y, epochs=3, batch_size=128, callbacks=callbacks, verbose=2)
    seconds = time.perf_counter() - start
    loss, accuracy = model.evaluate(x_test, y_test, verbose=0)
    print(f"test accuracy {accuracy:.4f}, test loss {loss:.4f}, {seconds:.0f} s for fit")


if __name__ == "__main__":
    main()
