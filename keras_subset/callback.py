"""`SubsetPretraining`: fit a subset of the training set to its minimum when `fit` starts."""

import time

import tensorflow as tf
import keras

from keras_subset import checks
from keras_subset import data as data_lib
from keras_subset import subset as subset_lib
from keras_subset.lbfgs import LBFGS
from keras_subset.objective import check_targets, loss_object

LOG_PREFIX = "pretraining_"


class SubsetPretraining(keras.callbacks.Callback):
    """Fits a subset of the training data to its loss minimum before `fit` trains on all of it.

    When `model.fit` starts, this callback draws a subset of the training
    data, minimises the model's loss on it (with full-batch L-BFGS by default,
    or with any Keras optimizer for a number of epochs), and hands the
    pretrained weights back to `fit`, which then trains on the full data with
    the compiled optimizer as usual. The compiled optimizer is not touched, so
    its state is what `fit` expects.

    The subset size is given by exactly one of `size`, `fraction` or `ratio`;
    `ratio` is the overdetermination ratio Q = K*M/P (K subset examples, M
    outputs per example, P trainable parameters), which should clearly exceed
    1 for the subset's minimum to be close to the full set's.

    Keras gives callbacks no access to the data `fit` was called with, so the
    training data is passed here too (the same arrays cost no extra memory).

    The pretraining's figures are added, with the prefix `pretraining_`, to
    the `logs` of every epoch, so `History`, `CSVLogger`, `TensorBoard` and the
    progress bar see them: `loss` and the compiled metrics on the subset after
    pretraining, `initial_loss`, `iterations`, `evaluations` (full-subset
    objective evaluations for L-BFGS; epochs for a Keras optimizer),
    `seconds`, `subset_size` and `ratio` (Q). Callbacks placed before this one
    in the list do not see them at the first epoch; put it first. The same
    figures are in `result` after `fit` has started.

    The pretraining runs once, at the start of the first `fit` the callback
    is passed to.

    Args:
        x: Training inputs: arrays, tensors (or a list/dict of them) or a
            finite, batched `tf.data.Dataset` of `(x, y)` or
            `(x, y, sample_weight)` pairs.
        y: Training targets (`None` when `x` is a dataset).
        sample_weight: Optional per-example weights.
        size: Subset size K in examples.
        fraction: Subset size as a fraction of the training set, in (0, 1].
        ratio: Subset size as a target overdetermination ratio Q.
        strategy: `"random"` or `"stratified"` (class-balanced; needs class
            labels as `y`).
        optimizer: A `keras_subset.LBFGS` (the default, `LBFGS()`), or a Keras
            optimizer instance or name, run for `epochs` epochs of minibatches
            of `batch_size` over the subset. It must not be the compiled
            optimizer.
        epochs: Epochs over the subset for a Keras optimizer; must be `None`
            for L-BFGS.
        batch_size: Minibatch size for a Keras optimizer.
        seed: Seed for the subset selection and minibatch shuffling.
        num_outputs: M, outputs per example, when the model's output shape
            does not tell it (only needed with `ratio`).
        verbose: 0 silent, 1 progress bar and summary, 2 one line per update.

    Example:

    ```python
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    pretraining = keras_subset.SubsetPretraining(
        x, y, ratio=4.0, optimizer=keras_subset.LBFGS(max_iterations=200))
    history = model.fit(x, y, epochs=3, callbacks=[pretraining])
    history.history["pretraining_loss"]
    ```
    """

    def __init__(
        self,
        x,
        y=None,
        *,
        sample_weight=None,
        size=None,
        fraction=None,
        ratio=None,
        strategy="random",
        optimizer=None,
        epochs=None,
        batch_size=32,
        seed=None,
        num_outputs=None,
        verbose=1,
    ):
        super().__init__()
        # Check everything that does not need the data or the model now, not at fit time.
        size, fraction, ratio = subset_lib.check_size_arguments(size, fraction, ratio)
        checks.check_choice("strategy", strategy, subset_lib.STRATEGIES)
        seed = checks.check_seed("seed", seed)
        num_outputs = checks.check_int("num_outputs", num_outputs, minimum=1, allow_none=True)
        if optimizer is None:
            optimizer = LBFGS()
        elif isinstance(optimizer, str):
            optimizer = keras.optimizers.get(optimizer)
        if isinstance(optimizer, LBFGS):
            if epochs is not None:
                raise ValueError("`epochs` applies to a Keras optimizer only; for LBFGS set `max_iterations`.")
        elif isinstance(optimizer, keras.optimizers.Optimizer):
            epochs = checks.check_int("epochs", epochs, minimum=1)
        else:
            raise ValueError(
                "`optimizer` must be a keras_subset.LBFGS, a keras.optimizers.Optimizer or an "
                f"optimizer name, got {optimizer!r}."
            )
        batch_size = checks.check_int("batch_size", batch_size, minimum=1)
        verbose = checks.check_verbose(verbose)
        self._data = (x, y, sample_weight)
        self.size, self.fraction, self.ratio = size, fraction, ratio
        self.strategy = strategy
        self.optimizer = optimizer
        self.epochs = epochs
        self.batch_size = int(batch_size)
        self.seed = seed
        self.num_outputs = num_outputs
        self.verbose = verbose
        self.result = None
        self.subset_indices = None

    def on_train_begin(self, logs=None):
        if self.result is not None:
            return
        if self.optimizer is getattr(self.model, "optimizer", None):
            raise ValueError("`optimizer` must not be the model's compiled optimizer: pass a new instance.")
        # `fit` builds an unbuilt model at its first step, after this callback has run.
        checks.check_built("model", self.model)
        x, y, sample_weight = data_lib.to_arrays(*self._data)
        if y is None:
            raise ValueError("`y` is None: pass the training targets (or a dataset of (x, y)).")
        check_targets(self.model, y)
        n = data_lib.num_examples(x)
        k = subset_lib.resolve_subset_size(n, self.size, self.fraction, self.ratio, self.model, self.num_outputs)
        q = subset_lib.warn_if_underdetermined(self.model, k, self.num_outputs)
        self.subset_indices = subset_lib.select_subset(y, k, self.strategy, self.seed)
        xs, ys, ws = (data_lib.take(a, self.subset_indices) for a in (x, y, sample_weight))
        if self.verbose:
            print(f"Subset pretraining: {k} of {n} examples, Q = {q:.3g}, optimizer {self._optimizer_name()}")

        start = time.perf_counter()
        if isinstance(self.optimizer, LBFGS):
            run = self.optimizer.minimize(self.model, xs, ys, ws, verbose=self.verbose)
            figures = {
                "initial_loss": run.initial_loss,
                "iterations": run.iterations,
                "evaluations": run.evaluations,
            }
            if self.verbose:
                print(f"Subset pretraining: {run.reason}")
        else:
            figures = self._fit_with_keras_optimizer(xs, ys, ws)
        figures["seconds"] = time.perf_counter() - start
        evaluated = self.model.evaluate(xs, ys, sample_weight=ws, verbose=0, return_dict=True)
        self.result = {**evaluated, **figures, "subset_size": k, "ratio": q}
        if self.verbose:
            shown = ", ".join(f"{key}: {value:.4g}" for key, value in self.result.items())
            print(f"Subset pretraining done: {shown}")

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None and self.result is not None:
            logs.update({LOG_PREFIX + key: value for key, value in self.result.items()})

    def _optimizer_name(self):
        if isinstance(self.optimizer, LBFGS):
            return f"L-BFGS (max_iterations={self.optimizer.max_iterations})"
        return f"{type(self.optimizer).__name__} for {self.epochs} epochs"

    def _fit_with_keras_optimizer(self, x, y, sample_weight):
        """Minibatch training of the subset with `self.optimizer`, as `fit` would do it."""
        model, optimizer = self.model, self.optimizer
        loss = loss_object(model)
        optimizer.build(model.trainable_variables)

        @tf.function
        def step(xb, yb, wb):
            with tf.GradientTape() as tape:
                y_pred = model(xb, training=True)
                value = loss(yb, y_pred, sample_weight=wb)
                if model.losses:
                    value = value + tf.add_n([tf.cast(l, value.dtype) for l in model.losses])
            gradients = tape.gradient(value, model.trainable_variables)
            optimizer.apply(gradients, model.trainable_variables)
            return value

        parts = (x, y) if sample_weight is None else (x, y, sample_weight)
        dataset = tf.data.Dataset.from_tensor_slices(parts)
        k = data_lib.num_examples(x)
        dataset = dataset.shuffle(k, seed=self.seed, reshuffle_each_iteration=True).batch(self.batch_size)
        bar = keras.utils.Progbar(self.epochs, verbose=self.verbose, unit_name="epoch") if self.verbose else None
        steps = 0
        for epoch in range(self.epochs):
            total, batches = 0.0, 0
            for batch in dataset:
                xb, yb = batch[0], batch[1]
                wb = batch[2] if len(batch) > 2 else None
                total += float(step(xb, yb, wb))
                batches += 1
            steps += batches
            if bar is not None:
                bar.update(epoch + 1, values=[("loss", total / batches)])
        return {"iterations": steps, "evaluations": self.epochs}
