"""`SubsetPretraining`: `keras_subset.pretrain` as a `model.fit` callback, run when `fit` starts."""

import inspect
import math

import tensorflow as tf
import keras

from keras_subset import checks
from keras_subset import data as data_lib
from keras_subset.pretrain import check_arguments, pretrain

LOG_PREFIX = "pretraining_"


class SubsetPretraining(keras.callbacks.Callback):
    """Runs `keras_subset.pretrain` when `model.fit` starts, then lets `fit` train on all the data.

    When `fit` starts, this callback fits a subset of the training data, or
    nested growing subsets (`growth`), with full-batch L-BFGS by default or any
    Keras optimizer, exactly as `keras_subset.pretrain` does with the same
    arguments, and hands the weights back to `fit`, which then trains on the
    full data with the compiled optimizer as usual. The compiled optimizer is
    not touched, so its state is what `fit` expects.

    Keras gives callbacks no access to the data or the arguments `fit` was
    called with, so the training data, and whatever of `fit`'s arguments shape
    the loss, are passed here too (the same arrays cost no extra memory):
    `sample_weight` and `class_weight` as given to `fit` (a callback cannot see
    them, so they would otherwise be silently left out of the pretraining),
    and `validation_split`, so that the examples `fit` holds out for
    validation (the last fraction of `x`, before any shuffling) stay out of
    every subset and held-out check, and the validation scores stay honest.

    The figures are added, with the prefix `pretraining_`, to the `logs` of
    every epoch, so `History`, `CSVLogger`, `TensorBoard` and the progress bar
    see them: `loss` and the compiled metrics on the last subset after
    pretraining, `initial_loss`, `stages`, `iterations`, `evaluations` (summed
    over the stages; epochs for a Keras optimizer), `example_gradients`,
    `example_forwards`, `seconds`, `subset_size` and `ratio` (Q) of the last
    stage. Callbacks placed before this one in the list do not see them at the
    first epoch; put it first. The same figures are in `result`, and the
    `keras_subset.PretrainResult` (with every stage) in `pretrain_result`, once
    `fit` has started.

    The pretraining runs once, when the first epoch of the first `fit` the
    callback is passed to begins (after every callback's `on_train_begin`). A
    `fit` that `keras.callbacks.BackupAndRestore` resumes from a backup (its
    first epoch is not 0) does not pretrain again: the restored weights
    already hold the pretraining. Every argument is checked when the callback
    is made; those that need the data or the model, when `fit` starts, before
    any weight changes.

    Args:
        x, y: The training data, as `keras_subset.pretrain` takes it.
        validation_split: The `validation_split` given to `fit` (0 for none):
            the last fraction of `x` and `y` is left out of the pretraining,
            as `fit` leaves it out of training.
        **kwargs: The keyword arguments of `keras_subset.pretrain`
            (`sample_weight`, `class_weight`, `loss`, `augment`, `copies`, `size`, `fraction`, `ratio`, `growth`, `max_size`,
            `max_fraction`, `max_ratio`, `strategy`, `optimizer`, `epochs`,
            `batch_size`, `seed`, `num_outputs`, `weight_decay`, `stop_rule`,
            `check_every`, `patience`, `check_tolerance`, `carry_history`,
            `training`, `callbacks`), with the same meaning; `verbose`
            defaults to 1 here.

    Example:

    ```python
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    pretraining = keras_subset.SubsetPretraining(x, y, ratio=1.0, growth=2.0, max_fraction=0.25, seed=0)
    history = model.fit(x, y, epochs=3, callbacks=[pretraining])
    history.history["pretraining_loss"], pretraining.pretrain_result.stages
    ```
    """

    def __init__(self, x, y=None, validation_split=0.0, **kwargs):
        super().__init__()
        self.validation_split = checks.check_number(
            "validation_split", validation_split, minimum=0, maximum=1, max_inclusive=False
        )
        accepted = [
            name for name, p in inspect.signature(pretrain).parameters.items() if p.kind is p.KEYWORD_ONLY
        ]
        unknown = sorted(set(kwargs) - set(accepted))
        if unknown:
            raise ValueError(f"SubsetPretraining got unknown arguments {unknown}; it takes {accepted}.")
        kwargs.setdefault("verbose", 1)
        defaults = {name: p.default for name, p in inspect.signature(pretrain).parameters.items()}
        checked = {name: kwargs.get(name, defaults[name]) for name in inspect.signature(check_arguments).parameters}
        # Check everything that does not need the data or the model now, not at fit time.
        kwargs["optimizer"] = check_arguments(**checked)
        self._data = (x, y)
        self._kwargs = kwargs
        self.optimizer = kwargs["optimizer"]
        self.result = None
        self.pretrain_result = None
        self.subset_indices = None
        self.skipped = None  # why the pretraining did not run, in words

    def on_epoch_begin(self, epoch, logs=None):
        if self.result is not None or self.skipped is not None:
            return
        # BackupAndRestore sets the first epoch of a resumed fit at its on_train_begin.
        resumed = getattr(self.model, "_initial_epoch", None)
        if epoch > 0 and resumed:
            self.skipped = f"fit resumed at epoch {epoch + 1} from a backup: the restored weights hold the pretraining"
            if self._kwargs["verbose"]:
                print(f"Subset pretraining skipped: {self.skipped}.")
            return
        self._pretrain()

    def _pretrain(self):
        kwargs = dict(self._kwargs)
        # Read the data once (a dataset is read here, not again by pretrain).
        x, y, sample_weight = data_lib.to_arrays(*self._data, kwargs.pop("sample_weight", None))
        # As fit does, before the split: the weights of the examples pretrain and evaluate see.
        sample_weight = data_lib.apply_class_weight(y, sample_weight, kwargs.pop("class_weight", None))
        if self.validation_split:
            # fit's split: the last fraction of the examples, before shuffling (keras's array_slicing).
            n = data_lib.num_examples(x)
            split_at = int(math.floor(n * (1.0 - self.validation_split)))
            if split_at == 0:
                raise ValueError(
                    f"`validation_split`={self.validation_split} leaves no training example of the {n} given."
                )
            x, y, sample_weight = (
                None if a is None else tf.nest.map_structure(lambda t: t[:split_at], a)  # views, no copy
                for a in (x, y, sample_weight)
            )
        result = pretrain(self.model, x, y, sample_weight=sample_weight, **kwargs)
        xs, ys, ws = (data_lib.take(a, result.subset_indices) for a in (x, y, sample_weight))
        evaluated = self.model.evaluate(xs, ys, sample_weight=ws, verbose=0, return_dict=True)
        figures = result.as_logs()
        figures.update(evaluated)
        self.result, self.pretrain_result, self.subset_indices = figures, result, result.subset_indices
        if self._kwargs["verbose"]:
            shown = ", ".join(f"{key}: {value:.4g}" for key, value in figures.items())
            print(f"Subset pretraining done: {shown}")

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None and self.result is not None:
            logs.update({LOG_PREFIX + key: value for key, value in self.result.items()})
