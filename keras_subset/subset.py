"""Subset sizing by the overdetermination ratio Q = K*M/P, and subset selection."""

import math
import warnings

import numpy as np

from keras_subset import checks

STRATEGIES = ("random", "stratified")


def num_trainable_parameters(model):
    """Returns P, the number of trainable parameters of a built model."""
    checks.check_built("model", model)
    count = sum(int(np.prod(v.shape)) for v in model.trainable_variables)
    if count == 0:
        raise ValueError("`model` has no trainable weights.")
    return count


def output_shape_of(model):
    """Returns the output shape of a built single-output model, batch axis included, or `None`.

    `None` when the model does not tell it (subclassed, several outputs) or when
    an axis other than the batch axis has no fixed size.
    """
    checks.check_built("model", model)
    try:
        shape = model.output_shape if not isinstance(model.output_shape, list) else None
    except (AttributeError, ValueError, RuntimeError):
        shape = None
    if shape is None:
        outputs = getattr(model, "outputs", None)
        if outputs and len(outputs) == 1:
            shape = tuple(outputs[0].shape)
    if shape is None or not isinstance(shape, tuple) or any(d is None for d in shape[1:]):
        return None
    return shape


def num_outputs_of(model):
    """Returns M, the number of outputs per example: the product of the output shape but the batch axis.

    For a model with several outputs, M is the sum over the outputs.
    """
    shape = output_shape_of(model)
    if shape is not None:
        return int(np.prod(shape[1:]))
    outputs = getattr(model, "outputs", None) or []
    shapes = [tuple(o.shape) for o in outputs] if len(outputs) > 1 else []
    if shapes and all(d is not None for s in shapes for d in s[1:]):
        return int(sum(np.prod(s[1:]) for s in shapes))
    raise ValueError(
        "Cannot read the number of outputs per example from the model (subclassed, or with a variable "
        "output shape): pass `num_outputs`."
    )


def overdetermination_ratio(model, num_examples, num_outputs=None):
    """Returns the overdetermination ratio Q = K*M/P of fitting `model` to `num_examples`.

    Q > 1 means the training examples give more equations (K examples times M
    outputs each) than the model has free parameters P, so the loss minimum of
    those examples is well determined; the subset pretraining idea needs Q
    clearly above 1.

    Args:
        model: A built Keras model.
        num_examples: K, the number of training examples.
        num_outputs: M, outputs per example (e.g. the number of classes); read
            from the model's output shape when `None`.

    Returns:
        Q as a float.

    Example:

    >>> keras_subset.overdetermination_ratio(model, 60000)  # doctest: +SKIP
    58.6
    """
    num_examples = checks.check_int("num_examples", num_examples, minimum=1)
    p = num_trainable_parameters(model)
    m = num_outputs_of(model) if num_outputs is None else checks.check_int("num_outputs", num_outputs, minimum=1)
    return num_examples * m / p


def subset_size_for_ratio(model, ratio, num_outputs=None, copies=0):
    """Returns K = ceil(ratio*P/(M*(1 + copies))), the smallest subset size whose Q reaches `ratio`.

    Args:
        model: A built Keras model.
        ratio: Target overdetermination ratio Q (> 0).
        num_outputs: M, outputs per example; read from the model when `None`.
        copies: Augmented copies fitted with every example: they count as
            examples in Q (K examples make K*(1 + copies) equations per output).

    Returns:
        The subset size K (original examples) as an int.
    """
    ratio = checks.check_number("ratio", ratio, minimum=0, min_inclusive=False)
    copies = checks.check_int("copies", copies, minimum=0)
    p = num_trainable_parameters(model)
    m = num_outputs_of(model) if num_outputs is None else checks.check_int("num_outputs", num_outputs, minimum=1)
    # Round first so that e.g. 4.0 * P / M that is an integer up to float error stays one.
    return max(1, math.ceil(round(ratio * p / (m * (1 + copies)), 9)))


def resolve_subset_size(
    num_examples, size=None, fraction=None, ratio=None, model=None, num_outputs=None, names=("size", "fraction", "ratio"),
    copies=0,
):
    """Returns the subset size given exactly one of `size`, `fraction` or `ratio`.

    Args:
        num_examples: N, the size of the full training set.
        size: K directly.
        fraction: K = round(fraction * N), 0 < fraction <= 1.
        ratio: target Q, converted with the model's P and M.
        model: The model (needed for `ratio`, and for the Q < 1 warning).
        num_outputs: M, when it cannot be read from the model.
        names: The names of the three arguments in the caller's words (for
            the error messages).
        copies: Augmented copies fitted with every example, counted in Q (see
            `subset_size_for_ratio`).

    Returns:
        K, with 1 <= K <= N.

    Raises:
        ValueError: when not exactly one of size/fraction/ratio is given, or
            the value is out of range.
    """
    size, fraction, ratio = check_size_arguments(size, fraction, ratio, names)
    num_examples = checks.check_int("num_examples", num_examples, minimum=1)
    if size is not None:
        if size > num_examples:
            raise ValueError(
                f"`{names[0]}` must be at most the number of training examples ({num_examples}), got {size}."
            )
        k = int(size)
    elif fraction is not None:
        k = max(1, int(round(fraction * num_examples)))
    else:
        if model is None:
            raise ValueError(f"`{names[2]}` needs the model to convert Q into a number of examples.")
        k = subset_size_for_ratio(model, ratio, num_outputs, copies)
        if k > num_examples:
            with_copies = f" with {copies} copies of each" if copies else ""
            q_full = overdetermination_ratio(model, num_examples * (1 + copies), num_outputs)
            raise ValueError(
                f"`{names[2]}`={ratio} needs {k} examples{with_copies} but the training set has "
                f"{num_examples}; the full set's Q is {q_full:.3g}."
            )
    return k


def check_size_arguments(size=None, fraction=None, ratio=None, names=("size", "fraction", "ratio")):
    """Returns `(size, fraction, ratio)` as Python numbers (two of them `None`).

    Raises:
        ValueError: unless exactly one of them is given and valid.
    """
    given = [name for name, v in zip(names, (size, fraction, ratio)) if v is not None]
    if len(given) != 1:
        raise ValueError(
            f"Give exactly one of `{names[0]}` (examples), `{names[1]}` (0 < f <= 1) or `{names[2]}` "
            f"(target Q = K*M/P); got {given or 'none'}."
        )
    return (
        checks.check_int(names[0], size, minimum=1, allow_none=True),
        checks.check_number(names[1], fraction, minimum=0, maximum=1, min_inclusive=False, allow_none=True),
        checks.check_number(names[2], ratio, minimum=0, min_inclusive=False, allow_none=True),
    )


def warn_if_underdetermined(model, subset_size, num_outputs=None):
    """Warns when the subset's Q is below 1; returns Q."""
    q = overdetermination_ratio(model, subset_size, num_outputs)
    if q < 1:
        warnings.warn(
            f"The subset of {subset_size} examples has overdetermination ratio Q = {q:.3g} < 1: "
            "the model has more parameters than the subset has outputs, so its minimum says "
            "little about the full training set. Use a larger subset (Q clearly > 1).",
            stacklevel=3,
        )
    return q


class SavingWarning(UserWarning):
    """Subset pretraining is unlikely to save compute for this model and data (`warn_if_no_saving`)."""


SAVING_Q_FULL = 114.1
"""The smallest Q_full at which subset pretraining was measured at half of full-set L-BFGS's
compute or less against a full-set run that levelled off at its minimum: the MNIST CNN of the
benchmarks' `cpu` preset (P = 5,258, Q_full = 114.1), where `progressive` cost 0.154-0.360 of
`lbfgs_full` over three seeds (docs/results/mnist/summary.json, docs/results_no_augmentation.md;
`tests/test_docs_tables.py` checks it against that file). Smaller Q_full were measured only against
full-set runs that had not levelled off (CIFAR-10 at 44.8, CIFAR-100 at 87.2), which is no
evidence either way; the Q-curve (docs/results_q_curve.md) has no levelled point below it.
The threshold is necessary, not sufficient: on Fashion-MNIST the Q-curve measured no saving of
half on average at Q_full = 542.5, none in every seed at 1111.1 (one on average at 255.8), its subsets' gap to the full set shrinking
about as 1/Q, and on CIFAR-10 none in every seed at 646.0."""

LARGEST_Q_FULL_MEASURED = 1111.1
"""The largest Q_full the Q-curve tried (MNIST and Fashion-MNIST, width 1): the warning's threshold if
`SAVING_Q_FULL` is `None` (no Q_full measured saved half)."""


def warn_if_no_saving(q_full):
    """Warns (`SavingWarning`, never an error) when Q_full = N*M/P of the data given to
    `pretrain` lies below `SAVING_Q_FULL`, the smallest Q_full at which this library's
    benchmarks measured a saving of half against a full-set run at its minimum (where that is
    `None`, below `LARGEST_Q_FULL_MEASURED`). A subset matches the full set only from some Q*
    (256 where the benchmarks here measured one with a subset at its minimum and a levelled
    full-set run: Fashion-MNIST's Q-curve, one seed; on CIFAR-10's a subset at Q = 128 came
    within 0.3 pp in one seed of three, not on average), so a subset's evaluations cost about
    Q*/Q_full of the full set's and the saving is bounded near Q_full / Q*. Returns whether it
    warned."""
    threshold = SAVING_Q_FULL if SAVING_Q_FULL is not None else LARGEST_Q_FULL_MEASURED
    if threshold is None or q_full >= threshold:
        return False
    measured = ("the smallest Q_full at which keras-subset's benchmarks measured it at half of "
                "full-set L-BFGS's compute against a full-set run at its minimum"
                if SAVING_Q_FULL is not None else
                "the largest Q_full measured, and no Q_full measured saved half of full-set "
                "L-BFGS's compute")
    warnings.warn(
        f"Subset pretraining is unlikely to save compute for this model and data: Q_full = "
        f"{q_full:.3g} (N*M/P of all the examples given) is below {threshold:.4g}, {measured} "
        "(docs/results_no_augmentation.md; the Q-curve: docs/results_q_curve.md). A subset "
        "matches the full set only from some Q* (256 where those benchmarks measured one, none "
        "at 32 or below), so the saving is bounded near Q_full / Q*.",
        SavingWarning,
        stacklevel=4,  # the caller of `pretrain` (through `_Plan`)
    )
    return True


def select_subset(examples, size, strategy="random", seed=None):
    """Returns the sorted indices of a subset of `size` training examples.

    Args:
        examples: The number of training examples N, or an array of their
            targets. `"stratified"` needs class labels: integers of shape
            `(N,)` or `(N, 1)`, or one-hot `(N, C)`; `"random"` only uses
            the array's length, so any targets do.
        size: K, the subset size (1 <= K <= N).
        strategy: `"random"`: K examples drawn uniformly without replacement.
            `"stratified"`: class-balanced: every class gets K // C examples (one
            more for a random K % C of them); a class with too few examples
            gives all it has and the rest is spread over the others.
        seed: An int >= 0 for a reproducible subset, or `None`.

    Returns:
        An int64 array of K distinct indices in increasing order.

    Example:

    >>> keras_subset.select_subset(y_train, 1000, "stratified", seed=0)  # doctest: +SKIP
    """
    checks.check_choice("strategy", strategy, STRATEGIES)
    seed = checks.check_seed("seed", seed)
    size = checks.check_int("size", size, minimum=1)
    if checks.is_integer(examples):
        n, labels = int(examples), None
        if n < 1:
            raise ValueError(f"`examples` must be a number of examples >= 1 or an array of targets, got {n}.")
        if strategy == "stratified":
            raise ValueError('strategy="stratified" needs the class labels: pass them as `examples`.')
    elif isinstance(examples, (str, bytes, float, np.floating, bool, np.bool_)) or examples is None or np.ndim(examples) == 0:
        raise ValueError(
            "`examples` must be the number of training examples (an integer) or an array of their "
            f"targets, got {examples!r}."
        )
    else:
        labels = _as_class_labels(examples) if strategy == "stratified" else None
        n = len(labels) if labels is not None else len(examples)
        if n == 0:
            raise ValueError("`examples` is empty: there are no training examples to choose from.")
    if size > n:
        raise ValueError(f"`size` must be at most the number of examples ({n}), got {size}.")
    rng = np.random.default_rng(seed)
    if strategy == "random":
        return np.sort(rng.choice(n, size=size, replace=False)).astype(np.int64)
    return _stratified(labels, size, rng)


def nested_order(examples, strategy="random", seed=None):
    """Returns an order of all examples whose every prefix is a random (or class-balanced) subset.

    Progressive subsets are prefixes of this order, so each one holds the previous one.

    Args:
        examples: The number of training examples N, or an array of their
            targets (class labels for `"stratified"`, as `select_subset` takes).
        strategy: `"random"`: a uniformly random permutation, so the first K
            examples are a uniformly random subset. `"stratified"`: the classes
            take turns in a random order, each class's examples in a random
            order, so every prefix is class-balanced (classes differ by at most
            one example until a class runs out).
        seed: An int >= 0 for a reproducible order, or `None`.

    Returns:
        An int64 permutation of `range(N)`.
    """
    checks.check_choice("strategy", strategy, STRATEGIES)
    seed = checks.check_seed("seed", seed)
    if checks.is_integer(examples):
        if strategy == "stratified":
            raise ValueError('strategy="stratified" needs the class labels: pass them as `examples`.')
        n, labels = int(examples), None
    else:
        labels = _as_class_labels(examples) if strategy == "stratified" else None
        n = len(examples) if labels is None else len(labels)
    if n < 1:
        raise ValueError("`examples` is empty: there are no training examples to order.")
    rng = np.random.default_rng(seed)
    if labels is None:
        return rng.permutation(n).astype(np.int64)
    # Rank of each example within its class, in a random order; then all first-ranked examples
    # (classes in a random order), all second-ranked ones, and so on.
    shuffled = rng.permutation(n)
    rank = np.empty(n, np.int64)
    for c in np.unique(labels):
        members = shuffled[labels[shuffled] == c]
        rank[members] = np.arange(len(members))
    class_turn = {c: t for t, c in enumerate(rng.permutation(np.unique(labels)))}
    turn = np.array([class_turn[c] for c in labels], np.int64)
    return np.lexsort((turn, rank)).astype(np.int64)


def _stratified(labels, size, rng):
    classes, counts = np.unique(labels, return_counts=True)
    quota = np.zeros(len(classes), np.int64)
    remaining = size
    open_classes = np.arange(len(classes))
    # Fill equal shares; classes that run out hand their share to the others.
    while remaining > 0:
        share, extra = divmod(remaining, len(open_classes))
        take = np.full(len(open_classes), share)
        take[rng.permutation(len(open_classes))[:extra]] += 1
        room = counts[open_classes] - quota[open_classes]
        take = np.minimum(take, room)
        quota[open_classes] += take
        remaining -= int(take.sum())
        open_classes = open_classes[quota[open_classes] < counts[open_classes]]
    chosen = [rng.choice(np.flatnonzero(labels == c), size=q, replace=False) for c, q in zip(classes, quota) if q]
    return np.sort(np.concatenate(chosen)).astype(np.int64)


def _as_class_labels(y):
    """The class index of every example, from labels `(N,)`, `(N, 1)` or one-hot `(N, C)`."""
    y = np.asarray(y)
    if y.ndim == 0 or len(y) == 0:
        raise ValueError(f"Class labels must be a non-empty array of shape (N,), (N, 1) or (N, C); got {y!r}.")
    if y.dtype.kind not in "iufb":
        raise ValueError(f"Class labels must be numbers (integers or one-hot), got dtype {y.dtype}.")
    if y.dtype.kind == "f" and not np.all(np.isfinite(y)):
        raise ValueError("Class labels contain NaN or Inf values.")
    if y.ndim == 2 and y.shape[1] > 1:
        if y.dtype.kind == "f" and (np.any(y < 0) or not np.allclose(y.sum(axis=1), 1.0, atol=1e-3)):
            raise ValueError(
                f"Class labels of shape {y.shape} must be one-hot (or class probabilities: >= 0, each row "
                "summing to 1); these look like continuous targets, which have no classes to balance. "
                'Use strategy="random".'
            )
        return np.argmax(y, axis=1)
    y = y.reshape(len(y), -1)
    if y.shape[1] != 1:
        raise ValueError(f"Class labels must have shape (N,), (N, 1) or one-hot (N, C); got {y.shape}.")
    if y.dtype.kind == "f" and not np.all(y == np.round(y)):
        raise ValueError(
            "Class labels must be whole numbers (class indices); these targets are continuous "
            f"(e.g. {y[y != np.round(y)][0]!r}), so they have no classes to balance. Use strategy=\"random\"."
        )
    return y[:, 0]
