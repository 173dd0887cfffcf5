"""How many examples one forward/backward pass of the full-batch objective takes (`chunk_size="auto"`).

The objective sums the loss and gradient over all examples in chunks, one chunk at
a time. Small chunks pay TensorFlow's per-op and per-loop-iteration overhead many
times; large chunks hold large activations, which on a CPU fall out of the caches.
Measured on a 2-core CPU (`python -m benchmarks.engine --chunk_sweep`): the
benchmark CNNs, about 76 KB of layer outputs per example, ran best at 128 to 512
examples a chunk, while an MLP with 3.7 KB per example ran 2.3 times faster in
chunks of 2,048 and more than in chunks of 128. One number cannot serve both, so
`"auto"` takes the largest chunk whose layer outputs fit `ACTIVATION_BUDGET_BYTES`.
The budget is 32 MiB: in the sweep of `docs/results/engine/chunk_sweep.json` it
picks 8,192 / 256 / 128 examples on the MLP / MNIST CNN / CIFAR-10 CNN, the best
chunk or within 4 % of it on each, where 16 MiB picked 4,096 / 128 / 64 (13 %
below the best on the CIFAR-10 CNN).
"""

import math

import numpy as np

from keras_subset import checks

# The bytes of layer outputs one chunk may hold (forward pass, float32 counted as 4 bytes).
ACTIVATION_BUDGET_BYTES = 32 * 2**20
# Bounds of the automatic chunk size, and its value when the model's layer outputs are unknown.
MIN_CHUNK_SIZE = 32
MAX_CHUNK_SIZE = 65536
FALLBACK_CHUNK_SIZE = 128


def activation_bytes_per_example(model):
    """Returns the bytes of all layer outputs for one example, or `None` when unknown.

    Sums the output sizes of every layer (nested ones included) of a model built
    with symbolic inputs (`keras.Input`, Sequential, functional); subclassed
    models do not know their layers' outputs.
    """
    total = 0
    for layer in all_layers(model):
        try:
            outputs = layer.output
        except (AttributeError, ValueError, RuntimeError):
            return None
        for output in _flatten(outputs):
            shape = getattr(output, "shape", None)
            if shape is None or any(d is None for d in tuple(shape)[1:]):
                return None
            itemsize = np.dtype(getattr(output, "dtype", "float32") or "float32").itemsize
            total += int(np.prod(tuple(shape)[1:])) * itemsize
    return total or None


def auto_chunk_size(model, budget_bytes=ACTIVATION_BUDGET_BYTES):
    """The largest power of two of examples whose layer outputs fit `budget_bytes`.

    Args:
        model: A built Keras model.
        budget_bytes: The bytes of layer outputs one chunk may hold.

    Returns:
        An int in [`MIN_CHUNK_SIZE`, `MAX_CHUNK_SIZE`], or `FALLBACK_CHUNK_SIZE`
        when the model's layer outputs are unknown (subclassed models).
    """
    per_example = activation_bytes_per_example(model)
    if not per_example:
        return FALLBACK_CHUNK_SIZE
    fits = max(1, budget_bytes // per_example)
    return int(min(MAX_CHUNK_SIZE, max(MIN_CHUNK_SIZE, 2 ** int(math.log2(fits)))))


def check_chunk_size(chunk_size):
    """Returns `chunk_size` when it is `"auto"`, `None` (one pass) or an integer >= 1."""
    if isinstance(chunk_size, str):
        if chunk_size != "auto":
            raise ValueError(f"`chunk_size` must be \"auto\", None or an integer >= 1, got {chunk_size!r}.")
        return chunk_size
    return checks.check_int("chunk_size", chunk_size, minimum=1, allow_none=True)


def resolve_chunk_size(chunk_size, model):
    """Returns the chunk size to use for `model`: `auto_chunk_size(model)` for `"auto"`, else `chunk_size`."""
    chunk_size = check_chunk_size(chunk_size)
    return auto_chunk_size(model) if chunk_size == "auto" else chunk_size


def all_layers(layer):
    """Yields every layer nested in `layer` through the public `layers` attribute."""
    for sub in getattr(layer, "layers", []):
        yield sub
        yield from all_layers(sub)


def _flatten(outputs):
    if isinstance(outputs, dict):
        outputs = list(outputs.values())
    if isinstance(outputs, (list, tuple)):
        for item in outputs:
            yield from _flatten(item)
    else:
        yield outputs
