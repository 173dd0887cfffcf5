"""Fixed augmented copies of the examples: copy j of example i is a fixed function of (seed, i, j).

Full-batch training on fixed augmented copies (Geiping et al. 2022 trained CIFAR-10
full-batch on 10 and 40 fixed copies) multiplies a set's examples, and so its
overdetermination ratio Q, by `1 + copies` without changing the model. A line search
compares losses of one objective, so the copies must be the same at every evaluation:
each copy is drawn from stateless random ops seeded by `(seed, example id, copy)`, one
example at a time (vectorised with `tf.vectorized_map`), so it does not depend on the
chunk an example falls in, on the subset around it, or on the order of evaluations.

Made or stored. TensorFlow has no vectorised form of the stateless random ops and image
transforms, so the per-example copies run in a loop: measured here (the MNIST CNN of the
benchmarks, width 8, 6,000 images, translations), 66 us per augmented example against
14 us for the forward and backward pass of a stored one. So when the extended set fits
`MATERIALIZE_BYTES`, the copies are made once per set of examples (`Copies.extend`) and
every evaluation reads them (same values, 4.7 times faster per evaluation there); larger
sets (and sets sharded over `tf.distribute` replicas) make them inside every chunk of
every evaluation, never stored, so that memory does not grow with `copies`.
"""

import numpy as np
import tensorflow as tf
import keras

from keras_subset import checks
from keras_subset.tracing import ExampleFree

MATERIALIZE_BYTES = 4 * 2**30
"""The largest extended set (inputs of all `N * (1 + copies)` examples, in bytes) whose
copies are made once and stored; beyond it they are made inside every evaluation. 4 GiB
holds MNIST's 60,000 images with 16 copies or CIFAR-10's 50,000 with 4 (float32). Set it
to 0 to never store copies (memory bounded by one chunk), higher where memory allows."""


class Copies:
    """`copies` augmented versions of every example, made by `augment` from `seed`.

    Args:
        augment: A Keras layer (e.g. `keras.layers.RandomFlip`, or a
            `keras.Sequential` of random preprocessing layers), called in
            training mode with its random seeds set per example; or a function
            `(images, seed) -> images` taking a batch of one image and a shape
            [2] integer seed for TensorFlow's stateless random ops
            (`tf.image.stateless_random_flip_left_right(images, seed)`, ...).
        copies: The number of augmented copies of each example (>= 0).
        seed: An integer >= 0; the same seed gives the same copies.
    """

    def __init__(self, augment, copies, seed=None):
        self.copies = check_copies(augment, copies)
        self.augment = augment
        self.seed = 0 if seed is None else checks.check_seed("seed", seed)
        self._checked = set()  # the example shapes and dtypes `check_inputs` has accepted
        # One graph for every set this makes copies of (stages of any size): the example dimension free.
        self._extend = ExampleFree(lambda x, ids, chunk_size: _extend_graph(self, x, ids, chunk_size), (0, 1))

    def check_inputs(self, x):
        """Refuses inputs the copies cannot be made of, and an `augment` that changes their shape (traced only)."""
        if tf.nest.is_nested(x):
            raise ValueError(
                "`augment` applies to a single input array (images); `x` is a list or dict of inputs."
            )
        key = (tuple(x.shape[1:]), x.dtype)
        if key in self._checked:
            return
        spec = tf.TensorSpec([None] + list(x.shape[1:]), x.dtype)
        out = tf.function(lambda images: self._one((images[0], tf.zeros([2], tf.int64)))).get_concrete_function(spec)
        if tuple(out.output_shapes) != tuple(x.shape[1:]):
            raise ValueError(
                f"`augment` must keep the shape of an example: it turned {tuple(x.shape[1:])} into "
                f"{tuple(out.output_shapes)} (use padding='same'-style settings, or crop after padding)."
            )
        self._checked.add(key)

    def apply(self, images, ids, copy):
        """`images` with row k replaced by copy `copy[k]` of example `ids[k]` (copy 0: the image itself).

        Args:
            images: A batch of examples (a tensor).
            ids: Their example ids (int64, shape [n]): positions in the full training set.
            copy: Which copy each row is (int, shape [n]; 0 for the original).
        """
        base = tf.constant([self.seed, 0], tf.int64)
        # warn=False: Keras's layers are converted with while_loops, which TensorFlow says at
        # every trace (about 26 log lines per augmented run) though nothing is wrong.
        seeds = tf.vectorized_map(
            lambda pair: tf.random.experimental.stateless_fold_in(
                tf.random.experimental.stateless_fold_in(base, pair[0]), pair[1]
            ),
            (tf.cast(ids, tf.int64), tf.cast(copy, tf.int64)),
            warn=False,
        )
        augmented = tf.vectorized_map(self._one, (images, seeds), warn=False)
        keep = tf.reshape(copy > 0, [-1] + [1] * (images.shape.rank - 1))
        return tf.where(keep, tf.cast(augmented, images.dtype), images)

    def fits(self, x, n):
        """Whether the `n` examples `x` with their copies fit `MATERIALIZE_BYTES` (then `extend` stores them)."""
        row = int(np.prod(x.shape[1:])) * tf.as_dtype(x.dtype).size
        return n * (1 + self.copies) * row <= MATERIALIZE_BYTES

    def extend(self, x, y, sample_weight, ids, chunk_size=None):
        """The extended set, stored: `n * (1 + copies)` rows, copy-major (row e: copy e // n of example e % n).

        The same values as `apply` gives inside an evaluation; made in chunks of `chunk_size`
        examples (all at once for `None`). Returns `(x, y, sample_weight)`.
        """
        factor = 1 + self.copies
        made = self._extend(x, tf.cast(ids, tf.int64), tf.constant(chunk_size or 0))
        tile = lambda t: None if t is None else tf.concat([t] * factor, axis=0)  # noqa: E731
        return made, tf.nest.map_structure(tile, y), tile(sample_weight)

    def _one(self, pair):
        image, seed = pair
        if isinstance(self.augment, keras.layers.Layer):
            if not self.augment.built:
                self.augment.build((None,) + tuple(image.shape))
            states = [v for v in self.augment.non_trainable_variables if "seed" in v.name]
            mapping = [
                (v, tf.cast(tf.random.experimental.stateless_fold_in(seed, k), v.dtype)) for k, v in enumerate(states)
            ]
            with keras.StatelessScope(state_mapping=mapping):
                return self.augment(image[None], training=True)[0]
        return self.augment(image[None], seed)[0]


def check_copies(augment, copies):
    """Returns `copies` as an int after checking it and `augment` (raises `ValueError`/`TypeError`)."""
    copies = checks.check_int("copies", copies, minimum=0)
    if copies and augment is None:
        raise ValueError(f"`copies`={copies} needs `augment`: the function or Keras layer that makes the copies.")
    if augment is not None and not (isinstance(augment, keras.layers.Layer) or callable(augment)):
        raise TypeError(
            "`augment` must be a Keras layer (a random preprocessing layer or a keras.Sequential of them) or "
            f"a function (images, seed) -> images; got {augment!r}."
        )
    return copies


def _extend_graph(copies, x, ids, chunk_size):
    """`x` followed by its copies 1 .. `copies.copies`, made `chunk_size` rows at a time (0: all)."""
    n = tf.shape(x)[0]
    made = n * copies.copies  # rows n .. n * (1 + copies) - 1 of the extended set
    chunk = tf.where(chunk_size > 0, tf.minimum(chunk_size, tf.maximum(made, 1)), tf.maximum(made, 1))
    num_chunks = (made + chunk - 1) // chunk
    parts = tf.TensorArray(x.dtype, size=num_chunks, infer_shape=False, element_shape=[None] + x.shape[1:])

    def body(i, parts):
        rows = n + tf.range(i * chunk, tf.minimum((i + 1) * chunk, made))
        example = rows % n
        return i + 1, parts.write(i, copies.apply(tf.gather(x, example), tf.gather(ids, example), rows // n))

    _, parts = tf.while_loop(lambda i, _: i < num_chunks, body, (tf.constant(0), parts))
    return tf.concat([x, parts.concat()], axis=0)
