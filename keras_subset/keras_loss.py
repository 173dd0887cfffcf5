"""Keras's own loss of a model, split so that chunks of examples add up to the full-batch loss.

`model.evaluate` on one batch holding every example computes, for each output
`o` of the compiled loss container, `w_o * S_o / D_o`: `S_o` the sum of the
loss elements times sample weights and masks, `D_o` the reduction's divisor
(the number of loss elements, the number of unmasked ones, or the sum of the
sample weights, as the loss's `reduction` says), and adds `model.losses`
(weight and activity regularisation, `add_loss`). A chunk of examples has its
own divisor, so the mean of per-chunk losses is not the full-batch loss when
masks, `ignore_class` or `"mean_with_sample_weight"` make divisors differ.

`KerasLoss` runs Keras's machinery itself: `model.compute_loss` (a user
override included) or, for a loss given as an argument, Keras's `CompileLoss`
container over it, with the structure matching, `loss_weights`, masks and
sample weights that Keras applies. Only the last step of each output's
reduction is changed while a chunk is evaluated: each per-output loss returns
`S_o,c / (D_o * f_c)`, `D_o` the divisor of all examples (counted, or measured
once per set of examples: `Objective.data`) and `f_c` the chunk's share of the examples.
The whole `compute_loss` of the chunk is then weighted by `f_c`, so that

    sum_c f_c * compute_loss_c = sum_o w_o * S_o / D_o + sum_c f_c * model.losses_c,

Keras's full-batch value: exact for the compiled losses, and for
`model.losses` (constant regularisation terms, per-batch-mean activity terms).
A `compute_loss` override is weighted the same way, which is exact when it is a
mean over examples plus terms of the weights (the usual form, e.g.
`super().compute_loss(...) + penalty`); with one chunk (`chunk_size=None`) it
is exact for any override. Under a `tf.distribute` strategy of R replicas,
Keras divides `model.losses` by R (the replicas' gradients are summed): each
chunk is weighted by `R * f_c` there, and the outputs' losses divided by it.
"""

import contextlib

import tensorflow as tf
import keras

# Keras has no public name for the loss container `model.compile` builds; this is its class.
from keras.src.trainers.compile_utils import CompileLoss
from keras.src.losses import loss as keras_loss_lib

_DIVIDED = ("sum_over_batch_size", "mean", "mean_with_sample_weight")
SUPPORTED_REDUCTIONS = _DIVIDED + ("sum",)


def _keras_mask(tensor):
    return getattr(tensor, "_keras_mask", None)


class _SplitLoss:
    """One output's Keras loss, returning its chunk's share of the full-batch value (or recording divisors)."""

    def __init__(self, loss, index, split):
        self.loss = loss
        self.index = index
        self.split = split

    def __call__(self, y_true, y_pred, sample_weight=None):
        loss = self.loss  # a keras.losses.Loss: the container wraps functions and names in one
        reduction = loss.reduction
        if reduction not in SUPPORTED_REDUCTIONS:
            raise ValueError(
                f"The loss {loss.name!r} has reduction={reduction!r}: full-batch training needs a scalar loss, "
                f"so the reduction must be one of {SUPPORTED_REDUCTIONS}."
            )
        # What keras.losses.Loss.__call__ does, up to the reduction.
        given = (y_true, y_pred)
        in_mask = _keras_mask(y_pred)
        y_pred = tf.nest.map_structure(lambda t: tf.cast(t, loss.dtype), y_pred)
        y_true = tf.nest.map_structure(lambda t: tf.cast(t, loss.dtype), y_true)
        values = loss.call(y_true, y_pred)
        out_mask = _keras_mask(values)
        masks = [m for m in (in_mask, out_mask) if m is not None]
        mask = None if not masks else (masks[0] if len(masks) == 1 else tf.logical_and(masks[0], masks[1]))
        values = tf.convert_to_tensor(values, loss.dtype)
        if values.shape.rank == 0 and self.split.single_pass:
            # A loss that reduces over the batch itself: Keras's value as it is (one chunk only).
            if self.split.recorded is not None:
                self.split.recorded.append(tf.ones([], values.dtype))
            if self.split.kinds is not None:
                self.split.kinds.append(None)
            return loss(*given, sample_weight)
        if values.shape.rank == 0:
            raise ValueError(
                f"The loss {loss.name!r} returns one value for the whole batch, not one per example, so "
                "its full-batch value cannot be summed over chunks of examples: return per-example "
                "values (reduce over the last axis only, as Keras's losses do), or pass "
                "`chunk_size=None` to LBFGS to evaluate all examples in one pass."
            )
        numerator = keras_loss_lib.reduce_weighted_values(
            values, sample_weight=sample_weight, mask=mask, reduction="sum", dtype=loss.dtype
        )
        divisor = self._divisor(values, sample_weight, mask, reduction)
        if self.split.recorded is not None:
            self.split.recorded.append(divisor)
        if self.split.kinds is not None:
            self.split.kinds.append(self._kind(values, sample_weight, mask, reduction))
        if self.split.divisors is None:  # one chunk, or the divisor pass: Keras's own value
            return tf.math.divide_no_nan(numerator, divisor)
        total = tf.cast(self.split.divisors[self.index], numerator.dtype)
        return tf.math.divide_no_nan(numerator, total * tf.cast(self.split.scale, numerator.dtype))

    @staticmethod
    def _kind(values, sample_weight, mask, reduction):
        """The divisor's form: 0 for a constant 1, k for k loss elements per example, `None` when it depends on the data."""
        if reduction == "sum":
            return 0
        if mask is not None or (reduction == "mean_with_sample_weight" and sample_weight is not None):
            return None
        per_example = values.shape[1:].num_elements()
        return per_example if per_example else None

    @staticmethod
    def _divisor(values, sample_weight, mask, reduction):
        """The divisor Keras's `reduce_values` divides this chunk's sum by (1 for `"sum"`)."""
        if reduction == "sum":
            return tf.ones([], values.dtype)
        if reduction == "mean_with_sample_weight":
            weights = keras_loss_lib.apply_mask(sample_weight, mask, dtype=values.dtype, reduction=reduction)
            if weights is not None:
                weights = tf.cast(weights, values.dtype)
                _, weights = keras_loss_lib.squeeze_or_expand_to_same_rank(values, weights)
                return tf.reduce_sum(weights)
            return tf.cast(tf.size(values), values.dtype)
        if mask is not None:
            return tf.reduce_sum(tf.cast(mask, values.dtype))
        return tf.cast(tf.size(values), values.dtype)


class _Split:
    """What the `_SplitLoss`es of one chunk evaluation share; `scale` is what the chunk's value is weighted by."""

    def __init__(self, divisors, scale, single_pass, recorded, kinds=None):
        self.divisors, self.scale, self.single_pass, self.recorded = divisors, scale, single_pass, recorded
        self.kinds = kinds


class KerasLoss:
    """The loss `model.evaluate` computes for `model`, per chunk of examples (see the module docstring).

    Args:
        model: A built Keras model, compiled with a loss unless `loss` is given.
        loss: A loss name, function, `keras.losses.Loss`, or a list/dict of
            those for several outputs, as `model.compile` takes it; it replaces
            the compiled loss (and a `compute_loss` override).
        loss_weights: Weights of the outputs' losses with `loss`, as
            `model.compile` takes them.
    The losses are added up in Keras's `floatx()`, or in float64 for a model
    with float64 weights (so such a model's loss keeps its precision).
    """

    def __init__(self, model, loss=None, loss_weights=None):
        self.model = model
        self.overridden = (
            loss is None and type(model).compute_loss is not keras.Model.compute_loss
        )
        if loss is None:
            if getattr(model, "_compile_loss", None) is None and not self.overridden:
                raise ValueError(
                    "The model was not compiled with a loss: call `model.compile(loss=...)`, or pass "
                    "`loss=` (a loss name, function or keras.losses.Loss, or a list/dict of them for "
                    "several outputs)."
                )
            self.container = getattr(model, "_compile_loss", None)
        else:
            check_loss_argument(loss)
            self.container = CompileLoss(loss, loss_weights, output_names=getattr(model, "output_names", None))
        self.dtype = tf.as_dtype(keras.backend.floatx())
        if any(tf.as_dtype(v.dtype) == tf.float64 for v in model.trainable_variables):
            self.dtype = tf.float64  # a float64 model's regularisers are float64: add up in float64
        self._kinds = None  # each output's divisor form, learnt by `build`

    @contextlib.contextmanager
    def _split(self, split):
        container = self.container
        if container is None:
            yield
            return
        original_flat, original_dtype = getattr(container, "_flat_losses", None), container._dtype
        if original_flat is not None:
            container._flat_losses = [
                entry._replace(loss=_SplitLoss(entry.loss, i, split)) for i, entry in enumerate(original_flat)
            ]
        # The container casts each output's loss to its dtype (floatx): keep a float64 objective float64.
        if self.dtype.size > tf.as_dtype(original_dtype).size:
            container._dtype = self.dtype.name
        try:
            yield
        finally:
            if original_flat is not None:
                container._flat_losses = original_flat
            container._dtype = original_dtype

    def build(self, x, y, sample_weight=None):
        """Builds the loss container and learns each output's divisor form, by tracing (nothing runs).

        Keras builds its container at its first call; building it here lets the
        chunked evaluations split every output's loss from the first one on,
        and shows a mismatch of targets and outputs as a clear error before
        any work. The trace also tells whether a divisor depends on the data
        (masks, `"mean_with_sample_weight"`), so that `static_divisors` can
        spare the forward pass that measures it otherwise. `x`, `y`,
        `sample_weight` are tensors (or nests); under a `tf.distribute`
        strategy this is called inside a replica and only builds.
        """
        if self._kinds is not None:
            return
        if self.container is None and not self.overridden:
            return
        # A concrete function of its own: traced (also from inside another trace), never run.
        spec = lambda t: None if t is None else tf.TensorSpec([None] + list(t.shape[1:]), t.dtype)
        specs = tf.nest.map_structure(spec, (x, y, sample_weight))
        tf.function(lambda x, y, w: self._probe(x, y, w, learn=True)).get_concrete_function(*specs)

    def _probe(self, x, y, sample_weight, learn=False):
        kinds = []
        # Only traced, never run: no variable or tracker changes.
        y_pred = self.model(x, training=False)
        if self.container is not None and not getattr(self.container, "built", False):
            self.container(y, y_pred, sample_weight)  # Keras builds it at its first call
        with self._split(_Split(None, None, True, [], kinds)):
            self._compute(x, y, y_pred, sample_weight)
        if learn:
            self._kinds = kinds
        return tf.zeros([])

    def static_divisors(self, num_examples):
        """The full-batch divisors of `num_examples` (an int or a scalar tensor) examples, or `None`.

        `None` when a divisor depends on the data (masks, `"mean_with_sample_weight"`)
        or `build` has not run.
        """
        if self._kinds is None or any(k is None for k in self._kinds):
            return None
        if not self._kinds:  # an override that uses no compiled loss
            return tf.zeros([0], self.dtype)
        n = tf.cast(num_examples, self.dtype)
        return tf.stack([tf.ones([], self.dtype) if k == 0 else n * k for k in self._kinds])

    def chunk(self, x, y, y_pred, sample_weight, fraction, divisors, single_pass):
        """`f_c * compute_loss` of one chunk, whose sum over the chunks is the full-batch loss.

        Call it right after the model's call on the chunk (inside the
        `keras.StatelessScope` of that call, if any), so that `model.losses`
        holds this chunk's losses.

        Args:
            x, y, y_pred, sample_weight: The chunk's inputs, targets, outputs and weights.
            fraction: The chunk's share of all examples (a scalar tensor).
            divisors: The full-batch divisors (`Objective.data`), or `None` when
                the chunk holds every example.
            single_pass: Whether the chunk holds every example.
        """
        # Under a tf.distribute strategy, Keras divides `model.losses` by the number of replicas R
        # (their gradients are summed over the replicas): weight the chunk by R times its share.
        scale = tf.cast(fraction, self.dtype) * tf.distribute.get_strategy().num_replicas_in_sync
        with self._split(_Split(divisors, scale, single_pass, None)):
            value = self._compute(x, y, y_pred, sample_weight)
        return tf.cast(value, self.dtype) * scale

    def chunk_divisors(self, x, y, y_pred, sample_weight):
        """The divisors of every output's loss over this chunk, as a vector (empty when there is no container)."""
        recorded = []
        with self._split(_Split(None, None, True, recorded)):
            self._compute(x, y, y_pred, sample_weight)
        if not recorded:
            return tf.zeros([0], self.dtype)
        return tf.stack([tf.cast(d, self.dtype) for d in recorded])

    def _compute(self, x, y, y_pred, sample_weight):
        model = self.model
        if self.overridden or self.container is getattr(model, "_compile_loss", None):
            # Keras's own entry point (`_compute_loss` also takes overrides written without `training`).
            return model._compute_loss(x=x, y=y, y_pred=y_pred, sample_weight=sample_weight, training=True)
        # A loss given as an argument: Keras's default compute_loss over our container.
        losses = [self.container(y, y_pred, sample_weight)]
        losses += [tf.reduce_sum(l) for l in model.losses]
        return tf.add_n([tf.cast(l, self.dtype) for l in losses])


def check_loss_argument(loss):
    """Raises a `ValueError` unless `loss` is a loss, or a list/tuple/dict of losses, as `compile` takes."""
    leaves = list(loss.values()) if isinstance(loss, dict) else list(loss) if isinstance(loss, (list, tuple)) else [loss]
    for leaf in leaves:
        if leaf is None or isinstance(leaf, (str, keras.losses.Loss)) or callable(leaf):
            continue
        raise ValueError(
            "`loss` must be a loss name, function or keras.losses.Loss, or a list/dict of them (one per "
            f"output), as model.compile takes it; got {leaf!r}."
        )
