"""Argument checks shared by every public entry point.

Each check raises a `ValueError` that names the argument, says what is accepted
and shows the value it got, before any work is done. NumPy scalars are accepted
wherever a Python number is (`np.float32(0.5)`, `np.int64(3)`), and `bool` is
refused where a number is meant (`True` is an `int` to Python, never a size).
"""

import math

import numpy as np


def is_integer(value):
    """Whether `value` is an integer (Python or NumPy), and not a `bool`."""
    return isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))


def is_number(value):
    """Whether `value` is a real number (Python or NumPy), and not a `bool`."""
    return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, (bool, np.bool_))


def _range_text(minimum, maximum, min_inclusive=True, max_inclusive=True):
    parts = []
    if minimum is not None:
        parts.append(f"{'>=' if min_inclusive else '>'} {minimum:g}")
    if maximum is not None:
        parts.append(f"{'<=' if max_inclusive else '<'} {maximum:g}")
    return " and ".join(parts)


def check_int(name, value, minimum=None, maximum=None, allow_none=False):
    """Returns `value` as an `int`, or raises a `ValueError` naming `name`.

    Args:
        name: The argument's name, as the user wrote it.
        value: The value to check.
        minimum, maximum: Inclusive bounds, or `None`.
        allow_none: Whether `None` is accepted (and returned).

    Returns:
        `int(value)`, or `None`.
    """
    if value is None and allow_none:
        return None
    bounds = _range_text(minimum, maximum)
    if (
        not is_integer(value)
        or (minimum is not None and value < minimum)
        or (maximum is not None and value > maximum)
    ):
        what = "an integer" + (f" {bounds}" if bounds else "") + (" or None" if allow_none else "")
        raise ValueError(f"`{name}` must be {what}, got {value!r}.")
    return int(value)


def check_number(
    name, value, minimum=None, maximum=None, min_inclusive=True, max_inclusive=True, allow_none=False
):
    """Returns `value` as a finite `float`, or raises a `ValueError` naming `name`.

    Args:
        name: The argument's name.
        value: The value to check.
        minimum, maximum: Bounds, or `None`.
        min_inclusive, max_inclusive: Whether the bounds themselves are accepted.
        allow_none: Whether `None` is accepted (and returned).

    Returns:
        `float(value)`, or `None`.
    """
    if value is None and allow_none:
        return None
    ok = is_number(value) and math.isfinite(float(value))
    if ok and minimum is not None:
        ok = value >= minimum if min_inclusive else value > minimum
    if ok and maximum is not None:
        ok = value <= maximum if max_inclusive else value < maximum
    if not ok:
        bounds = _range_text(minimum, maximum, min_inclusive, max_inclusive)
        what = "a finite number" + (f" {bounds}" if bounds else "") + (" or None" if allow_none else "")
        raise ValueError(f"`{name}` must be {what}, got {value!r}.")
    return float(value)


def check_bool(name, value):
    """Returns `value` as a `bool`; anything but `True`/`False` (or NumPy's) is a `ValueError`."""
    if not isinstance(value, (bool, np.bool_)):
        raise ValueError(f"`{name}` must be True or False, got {value!r}.")
    return bool(value)


def check_choice(name, value, choices):
    """Returns `value` when it is one of `choices`, or raises a `ValueError` naming them."""
    if not isinstance(value, str) or value not in choices:
        raise ValueError(f"`{name}` must be one of {tuple(choices)}, got {value!r}.")
    return value


def check_seed(name, value):
    """Returns a seed: `None` or an integer >= 0 (what `np.random.default_rng` takes)."""
    return check_int(name, value, minimum=0, allow_none=True)


def check_verbose(value, name="verbose"):
    """Returns `verbose` when it is 0 (silent), 1 (progress bar) or 2 (one line per update)."""
    if not is_integer(value) or value not in (0, 1, 2):
        raise ValueError(f"`{name}` must be 0, 1 or 2, got {value!r}.")
    return int(value)


def check_built(name, model):
    """Returns `model` when it is built (its weights exist), or raises a `ValueError` naming `name`.

    A `keras.Sequential` without `keras.Input` has no weights until it is
    called on a batch, so neither its parameter count nor its output shape is
    known yet.
    """
    if not getattr(model, "built", False):
        raise ValueError(
            f"`{name}` is not built, so its weights and output shape do not exist yet: give it an "
            "input shape (`keras.Input(shape)` as the first layer of a Sequential), call it on a "
            "batch, or call `model.build(input_shape)` first."
        )
    return model


# NumPy dtype kinds a model can train on: bool, signed and unsigned integers, floating point.
NUMERIC_KINDS = "biuf"


def check_numeric(name, array):
    """Returns `array` when its dtype is a number type (bool, integer or floating point).

    Strings (`"5"`), bytes and object arrays (ragged lists, mixed types) cannot
    be fed to a model: TensorFlow would fail deep inside the graph with
    "Cast string to int64 is not supported".

    Args:
        name: The argument's name.
        array: A NumPy array.

    Returns:
        `array`, unchanged.
    """
    dtype = np.asarray(array).dtype
    if dtype.kind not in NUMERIC_KINDS:
        raise ValueError(
            f"`{name}` must hold numbers (a bool, integer or floating-point dtype), got dtype {dtype}: "
            "convert it first (e.g. class names to integer labels)."
        )
    return array


# Values per block of `check_finite`: its temporary arrays stay this small (1 MiB of booleans).
_FINITE_BLOCK = 2**20


def check_finite(name, array):
    """Returns `array` when every value in it is finite; else a `ValueError` naming the first bad example.

    A NaN or Inf in the inputs, targets or weights makes the loss or its
    gradient non-finite wherever that example is evaluated: at the start, or
    only at a later stage of progressive subsets, after the weights moved.
    Checked in blocks of examples, so no temporary array grows with the data.

    Args:
        name: The array's name (e.g. `"x"`, `"x['image']"`).
        array: A NumPy array, one row per example (integer and bool arrays
            are finite by kind).

    Returns:
        `array`, unchanged.
    """
    array = np.asarray(array)
    if array.dtype.kind not in "fc" or array.size == 0:
        return array
    rows = array.reshape(len(array), -1) if array.ndim else array.reshape(1, 1)
    step = max(1, _FINITE_BLOCK // max(rows.shape[1], 1))
    for start in range(0, len(rows), step):
        finite = np.isfinite(rows[start : start + step])
        if finite.all():
            continue
        example = start + int(np.argmin(finite.all(axis=1)))
        entry = np.unravel_index(int(np.argmin(np.isfinite(rows[example]))), array.shape[1:])
        value = array[(example,) + entry] if array.ndim else array.item()
        what = "NaN" if np.isnan(value) else "Inf" if value > 0 else "-Inf"
        bad = sum(int(np.count_nonzero(~np.isfinite(rows[s : s + step]).all(axis=1))) for s in range(start, len(rows), step))
        raise ValueError(
            f"`{name}` holds {what} at example {example} (entry {(example,) + tuple(int(i) for i in entry)}); "
            f"{bad} example{'s hold' if bad > 1 else ' holds'} NaN or Inf values in all, which make the loss or "
            "its gradient non-finite. Remove those examples or replace the values (e.g. `np.nan_to_num`)."
        )
    return array


def check_sample_weight(name, weights):
    """Returns per-example weights when they are finite, >= 0 and not all zero.

    A negative weight turns the minimisation into a maximisation of that
    example's loss (L-BFGS then "succeeds" with a loss of -1e34), a NaN or Inf
    makes the loss non-finite, and all-zero weights leave nothing to fit.

    Args:
        name: The argument's name.
        weights: A NumPy array of per-example weights.

    Returns:
        `weights`, unchanged.
    """
    weights = check_finite(name, check_numeric(name, np.asarray(weights)))
    if weights.size == 0:
        return weights
    if np.any(weights < 0):
        raise ValueError(
            f"`{name}` must be finite and >= 0, but {int(np.count_nonzero(weights < 0))} weight(s) are "
            f"negative (the smallest is {weights.min()!r}): a negative weight rewards that example's "
            "loss for growing without bound."
        )
    if not np.any(weights > 0):
        raise ValueError(f"`{name}` is zero for every example: there is nothing to fit.")
    return weights


def check_class_labels(name, labels, num_classes, ignore_class=None):
    """Returns `labels` when they are whole numbers in `[0, num_classes)` (or `ignore_class`).

    What a sparse categorical loss takes: one class index per label. A label
    outside the model's outputs fails deep inside the graph on a CPU
    (`InvalidArgumentError`) and gives a NaN loss on a GPU.

    Args:
        name: The argument's name.
        labels: A NumPy array of class indices (any shape).
        num_classes: The number of classes (the model's outputs per label).
        ignore_class: A label value the loss skips (Keras's `ignore_class`), or `None`.

    Returns:
        `labels`, unchanged.
    """
    values = np.asarray(labels).ravel()
    if values.dtype.kind == "f":
        whole = np.isfinite(values) & (values == np.round(values))
        if not np.all(whole):
            raise ValueError(
                f"`{name}` must hold class indices (whole numbers in [0, {num_classes})), got "
                f"{values[~whole][0]!r}."
            )
    outside = (values < 0) | (values >= num_classes)
    if ignore_class is not None:
        outside &= values != ignore_class
    if np.any(outside):
        found = np.unique(values[outside])
        shown = ", ".join(str(v.item()) for v in found[:5]) + (", ..." if len(found) > 5 else "")
        accepted = f"[0, {num_classes})" + ("" if ignore_class is None else f" or {ignore_class}")
        raise ValueError(
            f"`{name}` holds labels outside [0, {num_classes}) for a model with {num_classes} outputs "
            f"per label: {shown} ({int(np.count_nonzero(outside))} label(s)). A sparse categorical "
            f"loss takes class indices in {accepted}."
        )
    return labels
