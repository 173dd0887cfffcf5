"""The exact full-batch loss of a Keras model as a function of one flat parameter vector."""

import numpy as np
import tensorflow as tf
import keras

# Keras has no public name for the base of its preprocessing layers (RandomFlip, Rescaling, ...).
from keras.src.layers.preprocessing.data_layer import DataLayer as _DataLayer

from keras_subset import checks
from keras_subset import chunking
from keras_subset import subset as subset_lib
from keras_subset.augment import Copies, check_copies
from keras_subset.keras_loss import KerasLoss
from keras_subset.tracing import ExampleFree

# Chunks in flight at once in the chunk loop. TensorFlow's default (10) kept the activations of
# up to 10 chunks alive: on the CIFAR-10 CNN at K=4000, chunks of 128, the gradient's peak memory
# was 127 MiB with 10 and 28 MiB with 1, at the same speed on 2 CPU cores (2925 and 3017
# examples/s). One at a time makes `chunk_size` bound the memory.
_PARALLEL_CHUNKS = 1


class Objective:
    """Full-batch loss and gradient of a Keras model, in chunks, as a flat vector function.

    The objective is the loss `model.evaluate` computes on a single batch that
    holds every example: Keras's own `compute_loss` for the compiled model (its
    loss container with several outputs, `loss_weights`, masks, sample weights
    and the losses' reductions, a `compute_loss` override, and `model.losses`:
    weight and activity regularisation). It is summed chunk by chunk,
    `chunk_size` examples at a time, so memory does not bound the number of
    examples; `keras_subset.keras_loss` says how the chunks add up exactly to
    the full-batch value. With `training=False` the chunked value and gradient
    equal the single-pass ones up to float round-off.

    The model is called inside a `keras.StatelessScope`, so the value depends
    only on the position vector and never on the model's current variables:

    - `training=False` (the default): dropout and other training-only noise
      are off and batch normalisation uses its moving statistics, which stay
      fixed. The objective is deterministic and independent of `chunk_size`.
    - `training=True`: the model runs in training mode. Every evaluation
      starts from the same non-trainable state, so random layers such as
      dropout draw the same masks at every evaluation and the objective stays
      a deterministic function of the position, as a line search needs.
      Batch normalisation uses the statistics of each chunk, so the value
      depends on `chunk_size`. `refresh_batch_norm_statistics` then sets the
      moving statistics to the population statistics of all examples at the
      final weights, so inference matches what was optimised.

    Args:
        model: A built Keras model.
        loss: A loss name, function or `keras.losses.Loss` (or a list/dict of
            them for several outputs); by default the loss `model` was compiled
            with (and its `compute_loss`).
        chunk_size: Examples per forward/backward pass; `"auto"` for the
            largest that fits `keras_subset.chunking`'s activation budget;
            `None` for a single pass over all examples.
        dtype: The dtype of the flat position, value and gradient.
        training: Whether to call the model in training mode (see above).
        weight_decay: Adds `weight_decay / 2 * |w|^2` over all trainable
            weights `w` to the objective (an L2 penalty; 0 for none).
        augment, copies, seed: With `copies` > 0, every example is fitted
            together with `copies` augmented versions of itself, made by
            `augment` once in `data` (stored, where they fit
            `keras_subset.augment.MATERIALIZE_BYTES`) or inside every chunk of
            every evaluation (see `keras_subset.augment.Copies`); the objective
            is the loss over all `N * (1 + copies)` examples.
    """

    def __init__(
        self, model, loss=None, chunk_size=None, dtype="float32", training=False, weight_decay=0.0,
        augment=None, copies=0, seed=None,
    ):
        checks.check_built("model", model)
        if not model.trainable_variables:
            raise ValueError(
                "`model` has no trainable weights: make some of its layers trainable. A subclassed model "
                "creates its weights at its first call: call it on a batch of inputs (`model(x[:1])`) first."
            )
        chunk_size = chunking.resolve_chunk_size(chunk_size, model)
        self.model = model
        self.dtype = tf.as_dtype(dtype)
        self.keras_loss = KerasLoss(model, loss)
        self.copies = Copies(augment, copies, seed) if check_copies(augment, copies) else None
        self.factor = 1 + (self.copies.copies if self.copies else 0)  # examples per original one
        self.chunk_size = None if chunk_size is None else int(chunk_size)
        self.training = bool(training)
        self.weight_decay = checks.check_number("weight_decay", weight_decay, minimum=0)
        self.variables = list(model.trainable_variables)
        self._shapes = [tuple(v.shape) for v in self.variables]
        self._sizes = [int(np.prod(s)) for s in self._shapes]
        self.num_parameters = sum(self._sizes)
        # Evaluations whose value or gradient was NaN or Inf, counted by `value_and_gradient` inside
        # the compiled loops, so that a failed line search can be put down to the right cause.
        self.non_finite_evaluations = tf.Variable(
            0, dtype=tf.int64, trainable=False, name="non_finite_evaluations"
        )
        # The graphs of this objective, each traced through `ExampleFree` (examples' dimension free,
        # first trace by `get_concrete_function`): a plain `tf.function` per objective counted
        # toward TensorFlow's retracing detector, which warned from the fifth model of a loop on.
        self._divisor_function = ExampleFree(self._divisors, examples=(1, 2, 3, 4))
        self._statistics_functions = {}  # per tuple of batch-normalisation layers

    # -- flat vector <-> model weights ---------------------------------------------------
    def position(self):
        """Returns the model's current trainable weights as one flat vector."""
        return flatten([v.value for v in self.variables], self.dtype)

    def unflatten(self, position):
        """Splits a flat vector into tensors shaped and typed like the trainable weights."""
        parts = tf.split(position, self._sizes)
        return [
            tf.cast(tf.reshape(p, s), v.dtype) for p, s, v in zip(parts, self._shapes, self.variables)
        ]

    def assign(self, position):
        """Writes a flat vector into the model's trainable weights."""
        assign_flat(self.variables, position)

    # -- the examples ---------------------------------------------------------------------
    # Which entries of `data`'s tuple (x, y, sample_weight, divisors, ids) hold one row per example:
    # compiled callers trace their leading dimension free (`keras_subset.tracing.ExampleFree`).
    EXAMPLE_ENTRIES = (0, 1, 2, 4)

    def data(self, x, y, sample_weight=None, ids=None):
        """Returns `(x, y, sample_weight, divisors, ids)`: what `value_and_gradient` and `value` take after the position.

        Builds the loss container (a mismatch of `y` and the model's outputs
        fails here, clearly) and finds the full-batch divisors of every
        output's loss (see `keras_subset.keras_loss`): counted from the number
        of examples, or, with masks or `"mean_with_sample_weight"`, measured
        with one forward pass. `x`, `y`, `sample_weight` are tensors (or
        nests), or per-replica values from `shard` under a `tf.distribute`
        strategy. `ids` are the examples' positions in the training set (int64,
        default `0 .. N-1`), from which their augmented copies are drawn; only
        used with `copies`. When the extended set fits
        `keras_subset.augment.MATERIALIZE_BYTES` (and there is one replica),
        the copies are made here, once, and the returned data hold all
        `N * (1 + copies)` examples, copy-major, with `ids=None`; otherwise
        they are made inside every evaluation, one chunk at a time.
        """
        divisors = None
        if not isinstance(tf.nest.flatten(x)[0], tf.distribute.DistributedValues):
            n = int(tf.shape(tf.nest.flatten(x)[0])[0])
            if self.copies is not None:
                self.copies.check_inputs(x)
                ids = tf.range(n, dtype=tf.int64) if ids is None else tf.cast(ids, tf.int64)
                if self.copies.fits(x, n):
                    # Made once here, not at every evaluation (see `augment.MATERIALIZE_BYTES`).
                    x, y, sample_weight = self.copies.extend(x, y, sample_weight, ids, self.chunk_size)
                    n, ids = n * self.factor, None
            self.keras_loss.build(x, y, sample_weight)
            divisors = self.keras_loss.static_divisors(n * self._factor(ids))
        elif self.copies is not None and ids is None:
            raise ValueError("Under a tf.distribute strategy, pass the shards' example `ids` with `copies`.")
        if divisors is None:  # masks or weight-sum divisors: one forward pass measures them
            divisors = self._divisor_function(self.position(), x, y, sample_weight, ids)
        return x, y, sample_weight, divisors, ids

    def _divisors(self, position, x, y, sample_weight, ids=None):
        """The divisors of every output's loss over all examples (summed over replicas)."""
        if not isinstance(tf.nest.flatten(x)[0], tf.distribute.DistributedValues):
            self.keras_loss.build(x, y, sample_weight)
            static = self.keras_loss.static_divisors(tf.shape(tf.nest.flatten(x)[0])[0] * self._factor(ids))
            return static if static is not None else self._shard_divisors(position, x, y, sample_weight, ids)
        strategy = tf.distribute.get_strategy()
        local = strategy.run(self._shard_divisors, args=(position, x, y, sample_weight, ids))
        return strategy.reduce("sum", local, axis=None)

    def _shard_divisors(self, position, x, y, sample_weight, ids=None):
        self.keras_loss.build(x, y, sample_weight)  # at the first trace; nothing once built
        weights = self.unflatten(position)
        non_trainable = [v.value for v in self.model.non_trainable_variables]
        originals = tf.shape(tf.nest.flatten(x)[0])[0]
        n = originals * self._factor(ids)
        chunk, num_chunks = self._chunks(n)

        def divisors_of(start, end):
            x_c, y_c, w_c = self._rows((x, y, sample_weight), start, end, ids, originals)
            with keras.StatelessScope(state_mapping=self._mapping(weights, non_trainable), collect_losses=True):
                y_pred = self.model(x_c, training=self.training)
                return self.keras_loss.chunk_divisors(x_c, y_c, y_pred, w_c)

        first = divisors_of(0, tf.minimum(chunk, n))
        if first.shape[0] == 0:
            return first
        _, total = tf.while_loop(
            lambda i, _: i < num_chunks,
            lambda i, total: (i + 1, total + divisors_of(i * chunk, tf.minimum((i + 1) * chunk, n))),
            (tf.constant(1), first),
            parallel_iterations=_PARALLEL_CHUNKS,
        )
        return total

    # -- value and gradient --------------------------------------------------------------
    def value_and_gradient(self, position, x, y, sample_weight=None, divisors=None, ids=None):
        """Returns the objective and its gradient at `position` (graph-compatible).

        Args:
            position: Flat vector of `self.dtype` and length `num_parameters`.
            x, y, sample_weight: Tensors (or nests of tensors for `x` and `y`)
                holding all examples.
            divisors: The full-batch divisors `data` found for these
                examples; `None` finds them again at this call (one more
                forward pass where masks need it).
            ids: The examples' ids while their copies are still to be made;
                `None` when there are no copies or the data hold them already
                (both as `data` returns them).

        Under a `tf.distribute` strategy, pass `x`, `y` and `sample_weight` as
        per-replica shards (see `shard`): each replica then computes its
        shard's share of the value and gradient, which are summed across
        replicas.

        Returns:
            A tuple `(value, gradient)` of `self.dtype`. An evaluation where either
            is not finite adds one to `non_finite_evaluations`.
        """
        if divisors is None:
            divisors = self._divisors(position, x, y, sample_weight, ids)
        value, gradient = self._counted(
            *self._summed(position, x, y, sample_weight, divisors, ids, with_gradient=True)
        )
        if self.weight_decay:
            decay = tf.cast(self.weight_decay, self.dtype)
            value += 0.5 * decay * tf.tensordot(position, position, 1)
            gradient += decay * position
        return value, gradient

    def value(self, position, x, y, sample_weight=None, divisors=None, ids=None):
        """Returns the objective's data term at `position`: the loss (and `model.losses`), no gradient.

        Forward passes only, in chunks; `weight_decay` is not added (it is a term of
        the weights, not of the examples). Used to measure a held-out loss.
        """
        if divisors is None:
            divisors = self._divisors(position, x, y, sample_weight, ids)
        return self._summed(position, x, y, sample_weight, divisors, ids, with_gradient=False)[0]

    def _summed(self, position, x, y, sample_weight, divisors, ids, with_gradient):
        if not isinstance(tf.nest.flatten(x)[0], tf.distribute.DistributedValues):
            n = tf.shape(tf.nest.flatten(x)[0])[0]
            return self._shard_sum(position, x, y, sample_weight, divisors, ids, n, with_gradient)

        def replica_fn(position, x, y, sample_weight, divisors, ids):
            local = tf.shape(tf.nest.flatten(x)[0])[0]
            total = tf.distribute.get_replica_context().all_reduce("sum", local)
            return self._shard_sum(position, x, y, sample_weight, divisors, ids, total, with_gradient)

        strategy = tf.distribute.get_strategy()
        value, gradient = strategy.run(replica_fn, args=(position, x, y, sample_weight, divisors, ids))
        return strategy.reduce("sum", value, axis=None), strategy.reduce("sum", gradient, axis=None)

    def _counted(self, value, gradient):
        """`(value, gradient)`, after counting the evaluation in `non_finite_evaluations` if not finite."""
        finite = tf.math.is_finite(value) & tf.reduce_all(tf.math.is_finite(gradient))
        counted = self.non_finite_evaluations.assign_add(tf.cast(~finite, tf.int64))
        with tf.control_dependencies([counted]):
            return tf.identity(value), tf.identity(gradient)

    def _factor(self, ids):
        """Rows of the objective per row of the data: `1 + copies` while the copies are still to be
        made (`ids` given), 1 for data without copies or with them made already (`ids=None`)."""
        return 1 if ids is None else self.factor

    def _chunks(self, n):
        chunk = tf.maximum(n, 1) if self.chunk_size is None else tf.minimum(tf.maximum(n, 1), self.chunk_size)
        return chunk, (n + chunk - 1) // chunk

    def _rows(self, tensors, start, end, ids=None, originals=None):
        """Rows `start:end` of `(x, y, sample_weight)`; with copies, of the set extended by them.

        The extended set holds `originals * (1 + copies)` examples, copy-major:
        row `e` is copy `e // originals` (0: the original) of example `e % originals`.
        """
        if self.copies is None or ids is None:  # no copies, or made already (`data`)
            return tf.nest.map_structure(lambda t: None if t is None else t[start:end], tensors)
        rows = tf.range(start, end)
        example, copy = rows % originals, rows // originals
        x, y, sample_weight = tf.nest.map_structure(
            lambda t: None if t is None else tf.gather(t, example), tensors
        )
        return self.copies.apply(x, tf.gather(ids, example), copy), y, sample_weight

    def _mapping(self, weights, non_trainable):
        return list(zip(self.variables, weights)) + list(zip(self.model.non_trainable_variables, non_trainable))

    def _shard_sum(self, position, x, y, sample_weight, divisors, ids, total, with_gradient):
        """The share of `x` (`total` examples in all shards) in the value and (if asked) the gradient."""
        weights = self.unflatten(position)
        non_trainable = [v.value for v in self.model.non_trainable_variables]
        originals = tf.shape(tf.nest.flatten(x)[0])[0]
        n, total = originals * self._factor(ids), total * self._factor(ids)
        chunk, num_chunks = self._chunks(n)
        data = (x, y, sample_weight, divisors, ids, originals)

        def body(i, value, gradients):
            start = i * chunk
            end = tf.minimum(start + chunk, n)
            if not with_gradient:
                chunk_value = self._chunk_value(weights, non_trainable, data, start, end, total)
                return i + 1, value + tf.cast(chunk_value, self.dtype), gradients
            with tf.GradientTape() as tape:
                tape.watch(weights)
                chunk_value = self._chunk_value(weights, non_trainable, data, start, end, total)
            chunk_gradients = tape.gradient(chunk_value, weights)
            chunk_gradients = [
                tf.zeros_like(w) if g is None else tf.convert_to_tensor(g)
                for g, w in zip(chunk_gradients, weights)
            ]
            return (
                i + 1,
                value + tf.cast(chunk_value, self.dtype),
                [a + g for a, g in zip(gradients, chunk_gradients)],
            )

        gradients = [tf.zeros_like(w) for w in weights] if with_gradient else []
        _, value, gradients = tf.while_loop(
            lambda i, *_: i < num_chunks,
            body,
            (tf.constant(0), tf.zeros([], self.dtype), gradients),
            parallel_iterations=_PARALLEL_CHUNKS,
        )
        if not with_gradient:
            return value, tf.zeros([0], self.dtype)
        gradient = tf.concat([tf.reshape(tf.cast(g, self.dtype), [-1]) for g in gradients], axis=0)
        return value, gradient

    def _chunk_value(self, weights, non_trainable, data, start, end, n):
        """This chunk's term of the full-batch loss: Keras's `compute_loss`, split as `KerasLoss` says."""
        x, y, sample_weight, divisors, ids, originals = data
        x_c, y_c, w_c = self._rows((x, y, sample_weight), start, end, ids, originals)
        fraction = tf.cast(end - start, self.keras_loss.dtype) / tf.cast(n, self.keras_loss.dtype)
        single_pass = self.chunk_size is None and not isinstance(
            tf.distribute.get_strategy(), tf.distribute.MirroredStrategy
        ) and tf.distribute.get_strategy().num_replicas_in_sync == 1
        with keras.StatelessScope(state_mapping=self._mapping(weights, non_trainable), collect_losses=True):
            y_pred = self.model(x_c, training=self.training)
            return self.keras_loss.chunk(x_c, y_c, y_pred, w_c, fraction, divisors, single_pass)

    @staticmethod
    def shard(strategy, tensor):
        """Splits `tensor` (or a nest) by rows into one contiguous shard per replica of `strategy`."""
        if tensor is None:
            return None
        replicas = strategy.num_replicas_in_sync

        def piece(context):
            i = context.replica_id_in_sync_group

            def rows(t):
                n = tf.shape(t)[0]
                return t[i * n // replicas : (i + 1) * n // replicas]

            return tf.nest.map_structure(rows, tensor)

        return strategy.experimental_distribute_values_from_function(piece)

    # -- batch normalisation ------------------------------------------------------------
    def refresh_batch_norm_statistics(self, x):
        """Sets every BatchNormalization layer's moving statistics to those of all of `x`.

        Runs the model in training mode over `x` in chunks at the current weights
        (from the same starting state as the objective) and stores the population
        mean and variance of each batch-normalised feature, computed exactly from
        the per-chunk means and variances. Frozen layers (`trainable=False`,
        which Keras runs in inference mode even in training mode) keep theirs
        bit for bit, as under Keras's `fit`. Does nothing for models without
        trainable `keras.layers.BatchNormalization` layers.

        Args:
            x: Tensors (or a nest) holding all inputs.
        """
        layers = [
            l for l in chunking.all_layers(self.model) if isinstance(l, keras.layers.BatchNormalization) and l.trainable
        ]
        if not layers:
            return
        key = tuple(id(layer) for layer in layers)
        if key not in self._statistics_functions:
            self._statistics_functions[key] = ExampleFree(
                lambda x: _population_statistics_graph(self, layers, x), examples=(0,)
            )
        stats = _population_statistics(self._statistics_functions[key], layers, x)
        for layer, (mean, variance) in zip(layers, stats):
            layer.moving_mean.assign(tf.cast(mean, layer.moving_mean.dtype))
            layer.moving_variance.assign(tf.cast(variance, layer.moving_variance.dtype))


def _population_statistics_graph(objective, layers, x):
    model = objective.model
    weights = [v.value for v in objective.variables]
    non_trainable = [v.value for v in model.non_trainable_variables]
    index = {id(v): i for i, v in enumerate(model.non_trainable_variables)}
    pairs = [(index[id(l.moving_mean)], index[id(l.moving_variance)], l.momentum) for l in layers]
    n = tf.shape(tf.nest.flatten(x)[0])[0]
    chunk = n if objective.chunk_size is None else tf.minimum(n, objective.chunk_size)
    num_chunks = (n + chunk - 1) // chunk

    def body(i, sums):
        start = i * chunk
        end = tf.minimum(start + chunk, n)
        x_chunk = tf.nest.map_structure(lambda t: t[start:end], x)
        _, updated = model.stateless_call(weights, non_trainable, x_chunk, training=True)
        share = tf.cast(end - start, tf.float32) / tf.cast(n, tf.float32)
        new_sums = []
        for (mi, vi, momentum), (mean_sum, square_sum) in zip(pairs, sums):
            # BatchNormalization stored m * old + (1 - m) * batch statistic: invert that.
            mean = (tf.cast(updated[mi], tf.float32) - momentum * tf.cast(non_trainable[mi], tf.float32)) / (1.0 - momentum)
            var = (tf.cast(updated[vi], tf.float32) - momentum * tf.cast(non_trainable[vi], tf.float32)) / (1.0 - momentum)
            new_sums.append((mean_sum + share * mean, square_sum + share * (var + tf.square(mean))))
        return i + 1, new_sums

    initial = [
        (tf.zeros(non_trainable[mi].shape, tf.float32), tf.zeros(non_trainable[mi].shape, tf.float32))
        for mi, _, _ in pairs
    ]
    _, sums = tf.while_loop(
        lambda i, _: i < num_chunks, body, (tf.constant(0), initial), parallel_iterations=_PARALLEL_CHUNKS
    )
    return [(m, tf.maximum(s - tf.square(m), 0.0)) for m, s in sums]


def _population_statistics(graph, layers, x):
    """The population statistics of `layers` over `x`, by `graph` (`_population_statistics_graph` compiled)."""
    for layer in layers:
        if not 0.0 <= layer.momentum < 1.0:
            raise ValueError(
                f"BatchNormalization layer {layer.name!r} has momentum {layer.momentum}; "
                "refreshing its statistics needs 0 <= momentum < 1."
            )
    return graph(tf.nest.map_structure(tf.convert_to_tensor, x))


def random_preprocessing_layers(model):
    """The kinds of random preprocessing layer in `model`, as a string (`"RandomFlip, RandomZoom"`), or `""`.

    Keras's preprocessing layers that draw random numbers (`RandomFlip`,
    `RandomTranslation`, `MixUp`, ...: a `SeedGenerator` of their own) are
    active only in training mode, where each call draws anew.
    """
    return ", ".join(sorted({
        type(layer).__name__ for layer in chunking.all_layers(model)
        if isinstance(layer, _DataLayer) and any(isinstance(v, keras.random.SeedGenerator) for v in vars(layer).values())
    }))


def flatten(tensors, dtype):
    """Concatenates `tensors`, flattened and cast to `dtype`, into one vector."""
    return tf.concat([tf.reshape(tf.cast(t, dtype), [-1]) for t in tensors], axis=0)


def assign_flat(variables, flat):
    """Writes the flat vector `flat` into `variables`, in order, each in its own shape and dtype."""
    parts = tf.split(flat, [int(np.prod(v.shape)) for v in variables])
    for variable, part in zip(variables, parts):
        variable.assign(tf.cast(tf.reshape(part, variable.shape), variable.dtype))


def single_loss(model, loss=None):
    """Returns `loss`, or the single loss `model` was compiled with, or `None` for several or none.

    Names are resolved with `keras.losses.get` (a name gives a function or a
    `keras.losses.Loss`); lists and dicts (several outputs) give `None`.
    """
    if loss is None:
        loss = getattr(model, "loss", None)
    if loss is None or isinstance(loss, (dict, list, tuple)) or not (isinstance(loss, str) or callable(loss)):
        return None
    if isinstance(loss, str):
        try:
            return keras.losses.get(loss)
        except ValueError:
            return None
    return loss


def check_targets(model, y, loss=None, name="y"):
    """Checks class labels against the model's outputs when the loss is a sparse categorical one.

    For `sparse_categorical_crossentropy` (by name, as the function or as
    `keras.losses.SparseCategoricalCrossentropy`, compiled or given), every
    label must be a class index `0 <= y < C`, C the size of the model's last
    output axis (`keras_subset.subset.num_outputs_of` for one output axis),
    or the loss's `ignore_class`. Other losses, and models whose output
    shape is unknown (subclassed, several outputs), are not checked here; a
    label out of range then fails at the first evaluation.

    Args:
        model: A built Keras model.
        y: The targets, a NumPy array (or a nest, which is not checked).
        loss: The loss given instead of the compiled one, or `None`.
        name: The argument's name in messages.

    Raises:
        ValueError: for a label outside the model's outputs.
    """
    if y is None or not isinstance(y, np.ndarray):
        return
    loss = single_loss(model, loss)
    if not (
        isinstance(loss, keras.losses.SparseCategoricalCrossentropy)
        or loss is keras.losses.sparse_categorical_crossentropy
        or getattr(loss, "fn", None) is keras.losses.sparse_categorical_crossentropy
    ):
        return
    shape = subset_lib.output_shape_of(model)
    if shape is None or len(shape) < 2:
        return
    ignore_class = loss.get_config().get("ignore_class") if hasattr(loss, "get_config") else None
    checks.check_class_labels(name, y, int(shape[-1]), ignore_class=ignore_class)
