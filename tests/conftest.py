"""Shared fixtures: small slices of real datasets from the folder named by KERAS_SUBSET_DATA_DIR."""

import contextlib
import os
import signal
import threading
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np
import pytest
import tensorflow as tf
import keras

DATA_ENV = "KERAS_SUBSET_DATA_DIR"


def data_file(name):
    """Returns the path of a real dataset file, failing (not skipping) when it is missing."""
    folder = os.environ.get(DATA_ENV)
    if not folder:
        pytest.fail(
            f"Set {DATA_ENV} to a folder holding mnist.npz (keras.datasets layout), "
            f"e.g. `{DATA_ENV}=../shared/data python -m pytest tests`."
        )
    path = os.path.join(folder, name)
    if not os.path.exists(path):
        pytest.fail(f"{path} does not exist: {DATA_ENV} must name a folder holding {name}.")
    return path


@pytest.fixture(scope="session")
def mnist():
    """The first 6,000 MNIST training and 2,000 test images, scaled to [0, 1], shape (28, 28, 1)."""
    with np.load(data_file("mnist.npz")) as d:
        x_train = d["x_train"][:6000, ..., None].astype("float32") / 255.0
        y_train = d["y_train"][:6000].astype("int32")
        x_test = d["x_test"][:2000, ..., None].astype("float32") / 255.0
        y_test = d["y_test"][:2000].astype("int32")
    return x_train, y_train, x_test, y_test


def small_cnn(seed=0, dropout=0.0, batch_norm=False, l2=0.0):
    """A small CNN for 28x28x1 images and 10 classes (P = 3,466 without batch norm)."""
    keras.utils.set_random_seed(seed)
    regularizer = keras.regularizers.L2(l2) if l2 else None
    layers = [
        keras.Input((28, 28, 1)),
        keras.layers.Conv2D(4, 3, strides=2, activation="relu", kernel_regularizer=regularizer),
        keras.layers.MaxPooling2D(),
        keras.layers.Flatten(),
    ]
    if batch_norm:
        layers.append(keras.layers.BatchNormalization())
    if dropout:
        layers.append(keras.layers.Dropout(dropout))
    layers.append(keras.layers.Dense(10, activation="softmax", kernel_regularizer=regularizer))
    model = keras.Sequential(layers)
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    return model


class Counting(keras.layers.Layer):
    """A pass-through layer that adds the batch size of every forward pass it runs to `counter["examples"]`."""

    def __init__(self, counter, **kwargs):
        super().__init__(**kwargs)
        object.__setattr__(self, "counter", counter)  # not tracked: Keras would store a copy of the dict

    def call(self, inputs):
        def count(batch):
            self.counter["examples"] += int(batch)
            return np.float32(0.0)

        zero = tf.py_function(count, [tf.shape(inputs)[0]], tf.float32)
        zero.set_shape([])
        return inputs + tf.cast(tf.stop_gradient(zero), inputs.dtype)


@contextlib.contextmanager
def interrupt_after(seconds):
    """Sends this process a SIGINT (Ctrl-C) after `seconds`, which Python turns into a `KeyboardInterrupt`.

    Python's own SIGINT handler is put in place for the block (a process started in the
    background may ignore SIGINT), and the former one back after it.
    """
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    timer = threading.Timer(seconds, signal.raise_signal, (signal.SIGINT,))
    timer.start()
    try:
        yield
    finally:
        timer.cancel()
        signal.signal(signal.SIGINT, previous)


def interrupt_delay(run, steps, wanted):
    """Seconds in which this machine, loaded as it is now, runs about `wanted` steps (3 s at least).

    Times `run()`, which runs `steps` steps (graphs already traced), so that a test that sends a
    Ctrl-C "after some progress" does not assume the machine's speed: CI's machine ran 11 L-BFGS
    iterations in the 3 s that gave about 100 on the machine the tests were written on.
    """
    started = time.perf_counter()
    run()
    return max(3.0, wanted * (time.perf_counter() - started) / steps)
