"""Subset pretraining of a CNN with BatchNormalization and Dropout, then one epoch of Adam.

The case of issue 10: on such a model, pretraining a 10 % subset used to leave the model worse
off than one epoch of Adam alone. For each seed this prints the test accuracy after one Adam
epoch (batch 128) from the same start: with no pretraining, with the former treatment (inference
mode, the subset fitted to the optimizer's limits) and with `pretrain`'s defaults (training mode,
chosen by itself for such a model, and the held-out stop).

Run from the repository root: KERAS_SUBSET_DATA_DIR=data python3 -m examples.batchnorm_dropout [SEED ...]
(default seeds: 0 1; `-m` puts the root on the path, for `benchmarks.datasets`).
"""

import os
import sys
import time

import keras

import keras_subset
from benchmarks import datasets

TREATMENTS = (
    ("Adam alone", None),
    ("former: inference mode, to the minimum", dict(training=False, stop_rule="none")),
    ("default: training mode + held-out stop", dict()),
)


def build(seed):
    keras.utils.set_random_seed(seed)
    layers = keras.layers
    model = keras.Sequential([
        keras.Input((28, 28, 1)),
        layers.Conv2D(16, 3), layers.BatchNormalization(), layers.ReLU(), layers.MaxPooling2D(),
        layers.Conv2D(32, 3), layers.BatchNormalization(), layers.ReLU(), layers.MaxPooling2D(),
        layers.Flatten(), layers.Dense(64), layers.BatchNormalization(), layers.ReLU(),
        layers.Dropout(0.5), layers.Dense(10),
    ])
    model.compile(optimizer="adam", metrics=["accuracy"],
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    return model


def main(seeds):
    data = datasets.load_dataset("fashion_mnist", local_data_dir=os.environ.get("KERAS_SUBSET_DATA_DIR"))
    for seed in seeds:
        for name, kwargs in TREATMENTS:
            model = build(seed)
            start, info = time.perf_counter(), ""
            if kwargs is not None:
                result = keras_subset.pretrain(model, data.x_train, data.y_train, fraction=0.1, seed=seed, **kwargs)
                stage = result.stages[-1]
                accuracy = model.evaluate(data.x_test, data.y_test, verbose=0)[1]
                info = (f" | pretrain {result.seconds:.0f} s, {stage.iterations} iterations, "
                        f"{stage.evaluations} evaluations, subset loss {stage.loss:.3f}, test acc {accuracy:.4f}")
            model.fit(data.x_train, data.y_train, batch_size=128, epochs=1, verbose=0)
            accuracy = model.evaluate(data.x_test, data.y_test, verbose=0)[1]
            print(f"seed {seed} | {name}: test acc after 1 epoch {accuracy:.4f}{info} | "
                  f"{time.perf_counter() - start:.0f} s", flush=True)


if __name__ == "__main__":
    main([int(s) for s in sys.argv[1:]] or [0, 1])
