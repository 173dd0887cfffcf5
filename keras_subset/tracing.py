"""One trace per model: compiled functions whose example dimension is left free.

`tf.function` traces a graph for the shapes of its first call; with
`reduce_retracing=True` the second call with another number of examples
traces once more, with that dimension relaxed to `None`. Tracing the L-BFGS
loop around a CNN costs seconds (about 8 s on the benchmark CNNs here), and
progressive subsets call it with a new number of examples at every stage. An
`ExampleFree` function traces once, at its first call, with the leading
(example) dimension of its data arguments unknown, so every later subset size
reuses that graph.

Values spread over `tf.distribute` replicas are traced as `tf.function` does
it (their per-replica shapes are the strategy's business).
"""

import tensorflow as tf


def _free(value):
    """A `TensorSpec` of `value` with its leading dimension unknown (rank 0 stays as it is)."""
    if not isinstance(value, tf.Tensor):
        return value
    spec = tf.TensorSpec.from_tensor(value)
    if spec.shape.rank:
        spec = tf.TensorSpec([None] + spec.shape[1:], spec.dtype)
    return spec


def _spec(value):
    return tf.TensorSpec.from_tensor(value) if isinstance(value, tf.Tensor) else value


class ExampleFree:
    """A `tf.function` traced once with the example dimension of its data arguments free.

    Args:
        python_function: What to compile.
        examples: The positions of the arguments whose tensors (or nests of
            tensors) hold one row per example; every other argument is traced
            with its own shapes.
        **kwargs: For `tf.function` (e.g. `jit_compile`).

    Example:

    ```python
    total = ExampleFree(lambda w, x: tf.reduce_sum(x) * w, examples=(1,))
    total(tf.constant(2.0), tf.ones([5, 3]))
    total(tf.constant(2.0), tf.ones([8, 3]))  # same graph
    assert total.experimental_get_tracing_count() == 1
    ```
    """

    def __init__(self, python_function, examples, **kwargs):
        self.function = tf.function(python_function, reduce_retracing=True, **kwargs)
        self.examples = frozenset(examples)

    def __call__(self, *args):
        self.trace(*args)
        return self.function(*args)

    def trace(self, *args):
        """Traces the graph for arguments like `args` (the example dimension free), unless traced; runs nothing."""
        # Inside another function's trace the call is part of that graph, with its shapes.
        first = self.function.experimental_get_tracing_count() == 0 and tf.executing_eagerly()
        if first and not _distributed(args):
            specs = [
                tf.nest.map_structure(_free if i in self.examples else _spec, arg)
                for i, arg in enumerate(args)
            ]
            self.function.get_concrete_function(*specs)

    def experimental_get_tracing_count(self):
        """Graphs traced so far (as `tf.function`'s)."""
        return self.function.experimental_get_tracing_count()


def signature(*values):
    """What of `values` an `ExampleFree` graph is traced for: their nesting, dtypes and shapes past
    the examples' dimension (hashable).

    Graphs traced for one signature must not serve another: `tf.function` would relax the
    shapes where they differ (targets of shape `(N,)`, then `(N, 1)`, to an unknown rank, which
    Keras's losses cannot take). `None` entries stay `None`.

    Args:
        *values: Arrays or tensors, nests of them, or `None`.

    Returns:
        A tuple, one entry per value.
    """

    def leaf(array):
        return tuple(array.shape[1:]), str(array.dtype)

    return tuple(
        None if value is None else (repr(tf.nest.map_structure(lambda _: None, value)),
                                    tuple(leaf(a) for a in tf.nest.flatten(value)))
        for value in values
    )


def _distributed(args):
    return any(isinstance(v, tf.distribute.DistributedValues) for v in tf.nest.flatten(args))
