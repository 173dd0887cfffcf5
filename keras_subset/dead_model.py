"""Whether a fit ended at a dead model: one whose outputs are the same for every example.

A few large first steps can switch off every unit of a layer (ReLUs whose inputs all turned
negative, the one filter of a narrow convolution zeroed). The model then predicts one output for
every input, its gradient is zero but for the biases after the dead layer, and L-BFGS soon
reports "converged", at about the loss of a constant prediction (ln M for M balanced classes):
no minimum, and no later iteration or stage can revive it. The Q-curve met it twice, with a CNN
of one first-layer filter (MNIST at Q = 16, CIFAR-10 at Q = 64; docs/results_q_curve.md), where
the stage said "converged" like any other. Where a fit claims a minimum (L-BFGS converged, or
its line search found no decrease left, or `stop_rule="minimum"`'s plateau), `pretrain` checks
that stage's end and `LBFGS.minimize` its run's (`examine`: one forward pass of up to
`SAMPLE_SIZE` examples), and they say so (`DeadModelWarning`, the `reason`, a `dead_model` flag)
instead. Ends that claim no minimum (a cap, a held-out stop, a callback) are not checked. The
check's forwards count in `pretrain`'s cost (`Stage.example_forwards`); `LBFGS.minimize` leaves
them out of `LBFGSResult.evaluations` (they are no objective evaluation) and says so there.
"""

import warnings

import keras
import numpy as np

from keras_subset import data as data_lib

SAMPLE_SIZE = 256
"""Examples whose outputs `outputs_constant` compares (the first ones of the data given)."""

TOLERANCE = 1e-6
"""Largest spread of an output over the examples, relative to its largest magnitude (at least 1),
that still counts as "the same" (a dead model's spread is exactly 0 in float32)."""


class DeadModelWarning(UserWarning):
    """A `pretrain` stage or an `LBFGS.minimize` run ended at a model whose outputs are the same
    for every example checked (`outputs_constant`)."""


def outputs_constant(model, x, sample_size=SAMPLE_SIZE, tolerance=TOLERANCE):
    """Whether every output of `model` is the same for the first examples of `x`.

    The model runs in inference mode (`training=False`: no dropout, batch normalization's
    moving statistics) on at most `sample_size` examples, once.

    Args:
        model: A built Keras model.
        x: Its inputs: an array or a nest of arrays with one first dimension.
        sample_size: How many of the first examples to compare.
        tolerance: The largest spread (largest minus smallest value over the examples, of any
            output element) relative to the output's largest magnitude (at least 1) that still
            counts as the same.

    Returns:
        `True` when there are at least two examples, their inputs are not all the same, and
        every output element is the same for all of them; `False` otherwise (identical inputs,
        e.g. sequences masked out whole, say nothing about the model; a non-finite output is
        never the same).

    Example:

    >>> model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(
    ...     3, activation="relu", bias_initializer=keras.initializers.Constant(-1e3)),
    ...     keras.layers.Dense(2)])
    >>> outputs_constant(model, np.random.rand(8, 4))
    True
    """
    return examine(model, x, sample_size, tolerance)[0]


def examine(model, x, sample_size=SAMPLE_SIZE, tolerance=TOLERANCE):
    """`outputs_constant` with its cost: returns `(dead, forwarded)`, `forwarded` the examples
    the model ran on (0 where there was nothing to compare: fewer than two examples, or
    identical inputs), for callers that count every example forwarded."""
    n = min(int(sample_size), data_lib.num_examples(x))
    if n < 2:
        return False, 0
    rows = data_lib.take(x, np.arange(n))
    if all(np.all(leaf == leaf[:1]) for leaf in map(np.asarray, keras.tree.flatten(rows))):
        return False, 0
    outputs = keras.tree.flatten(model(rows, training=False))
    for output in outputs:
        values = np.asarray(keras.ops.convert_to_numpy(output), dtype=np.float64).reshape(n, -1)
        spread = np.max(values.max(axis=0) - values.min(axis=0))
        scale = max(1.0, float(np.max(np.abs(values))))
        if not np.isfinite(spread) or spread > tolerance * scale:
            return False, n
    return True, n


REASON = "its outputs are the same for every example checked: a dead model, not a minimum"
"""What a run's or stage's `reason` gets appended (after "; ") when it ended at a dead model."""


def warn_dead(what, checked, stacklevel):
    """Warns (`DeadModelWarning`) that `what` (e.g. "pretrain's stage 1/3") ended at a dead
    model, its outputs the same for the `checked` examples compared; `stacklevel` as for
    `warnings.warn`, counted from this function's caller."""
    warnings.warn(
        f"{what} ended at a dead model: its outputs are the same for all {checked} examples checked, "
        "so its gradient is zero but for the biases after the dead layer and no later iteration "
        "changes that ('converged' here is not a minimum). Its first steps may have switched off "
        "every unit of a layer (ReLUs, a single filter): try another seed or initialization, more "
        "examples, or a wider layer.",
        DeadModelWarning,
        stacklevel=stacklevel + 1,
    )
