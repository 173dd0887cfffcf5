"""A convex test problem on real MNIST: L2-regularised softmax regression, in Keras and in NumPy."""

import numpy as np
import scipy.optimize
import tensorflow as tf
import keras

L2 = 1e-3


def downsampled(mnist, n):
    """n MNIST images averaged to 7x7 = 49 features, float64, plus labels."""
    x, y = mnist[0][:n], mnist[1][:n]
    x = x.reshape(n, 7, 4, 7, 4).mean(axis=(2, 4)).reshape(n, 49).astype("float64")
    return x, y


def _float64_l2(weights):
    # keras.regularizers.L2 rounds to float32 precision; this keeps the test at float64.
    return tf.constant(L2, tf.float64) * tf.reduce_sum(tf.square(weights))


def logistic_regression(num_features):
    keras.utils.set_random_seed(1)
    model = keras.Sequential(
        [
            keras.Input((num_features,), dtype="float64"),
            keras.layers.Dense(
                10,
                dtype="float64",
                kernel_regularizer=_float64_l2,
                bias_regularizer=_float64_l2,
            ),
        ]
    )
    model.compile(loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True, dtype="float64"))
    return model


def numpy_objective(params, x, y):
    """Mean softmax cross-entropy + L2 on all weights, and its gradient, written in NumPy."""
    d = x.shape[1]
    w, b = params[: d * 10].reshape(d, 10), params[d * 10 :]
    logits = x @ w + b
    logits -= logits.max(axis=1, keepdims=True)
    log_p = logits - np.log(np.exp(logits).sum(axis=1, keepdims=True))
    n = len(x)
    value = -log_p[np.arange(n), y].mean() + L2 * (np.sum(w * w) + np.sum(b * b))
    delta = np.exp(log_p)
    delta[np.arange(n), y] -= 1.0
    delta /= n
    grad_w = x.T @ delta + 2 * L2 * w
    grad_b = delta.sum(axis=0) + 2 * L2 * b
    return value, np.concatenate([grad_w.ravel(), grad_b])


def flat_weights(model):
    """The model's weights as one float64 vector."""
    return np.concatenate([w.ravel() for w in model.get_weights()]).astype("float64")


def scipy_optimum(model, x, y):
    """SciPy's L-BFGS-B optimum of `numpy_objective`, started from the model's weights."""
    return scipy.optimize.minimize(
        numpy_objective, flat_weights(model), args=(x, y), jac=True, method="L-BFGS-B",
        options={"maxiter": 10000, "gtol": 1e-11, "ftol": 1e-15},
    )
