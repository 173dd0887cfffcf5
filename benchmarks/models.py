"""Reference CNNs of the benchmarks.

Plain convolutional networks (ReLU, max pooling, no batch normalization, no
dropout), so that the training objective is a fixed deterministic function of
the weights, as full-batch L-BFGS needs. The last layer outputs logits; the
loss is `SparseCategoricalCrossentropy(from_logits=True)`.

`mnist_cnn(width)` (MNIST, Fashion-MNIST; 28x28x1 inputs):

    Conv2D(width, 3, relu, valid) -> MaxPool(2)        26x26 -> 13x13
    Conv2D(2*width, 3, relu, valid) -> MaxPool(2)      11x11 -> 5x5
    Flatten -> Dense(10)

`cifar_cnn(num_classes, width)` (CIFAR-10, CIFAR-100; 32x32x3 inputs):

    Conv2D(width, 3, relu, same) -> MaxPool(2)         32 -> 16
    Conv2D(2*width, 3, relu, same) -> MaxPool(2)       16 -> 8
    Conv2D(4*width, 3, relu, same) -> MaxPool(2)       8 -> 4
    Flatten -> Dense(num_classes)

Trainable parameters P and overdetermination ratio of the full training set
Q = N*M/P (N = 60,000 for MNIST, 50,000 for CIFAR):

| model | width | P | M | Q of full set |
|---|---|---|---|---|
| mnist_cnn | 4 | 2,346 | 10 | 255.8 |
| mnist_cnn | 8 | 5,258 | 10 | 114.1 |
| mnist_cnn | 16 | 12,810 | 10 | 46.8 |
| mnist_cnn | 32 | 34,826 | 10 | 17.2 |
| cifar_cnn (10 classes) | 4 | 4,146 | 10 | 120.6 |
| cifar_cnn (10 classes) | 8 | 11,162 | 10 | 44.8 |
| cifar_cnn (10 classes) | 16 | 33,834 | 10 | 14.8 |
| cifar_cnn (10 classes) | 32 | 113,738 | 10 | 4.4 |
| cifar_cnn (100 classes) | 4 | 27,276 | 100 | 183.3 |
| cifar_cnn (100 classes) | 8 | 57,332 | 100 | 87.2 |
| cifar_cnn (100 classes) | 16 | 126,084 | 100 | 39.7 |
| cifar_cnn (100 classes) | 32 | 298,148 | 100 | 16.8 |

(`python -m benchmarks.models` prints this table.) The subset phase of a run
with ratio Q uses K = ceil(Q*P/M) examples.
"""

import keras

import keras_subset.subset


def mnist_cnn(width=16, input_shape=(28, 28, 1), num_classes=10):
    """Reference CNN for MNIST and Fashion-MNIST (see the module docstring).

    Args:
        width: Filters of the first convolution; the second has `2*width`.
        input_shape: Image shape.
        num_classes: Number of outputs (logits).

    Returns:
        An uncompiled, built `keras.Sequential`.
    """
    return keras.Sequential(
        [
            keras.Input(input_shape),
            keras.layers.Conv2D(width, 3, activation="relu"),
            keras.layers.MaxPooling2D(),
            keras.layers.Conv2D(2 * width, 3, activation="relu"),
            keras.layers.MaxPooling2D(),
            keras.layers.Flatten(),
            keras.layers.Dense(num_classes),
        ],
        name=f"mnist_cnn_w{width}",
    )


def cifar_cnn(width=16, input_shape=(32, 32, 3), num_classes=10):
    """Reference CNN for CIFAR-10 and CIFAR-100 (see the module docstring).

    Args:
        width: Filters of the first convolution; then `2*width`, `4*width`.
        input_shape: Image shape.
        num_classes: Number of outputs (logits).

    Returns:
        An uncompiled, built `keras.Sequential`.
    """
    layers = [keras.Input(input_shape)]
    for block in range(3):
        layers += [
            keras.layers.Conv2D(
                width * 2**block, 3, padding="same", activation="relu"
            ),
            keras.layers.MaxPooling2D(),
        ]
    layers += [keras.layers.Flatten(), keras.layers.Dense(num_classes)]
    return keras.Sequential(layers, name=f"cifar_cnn_w{width}_c{num_classes}")


def build_under_policy(policy, build, **kwargs):
    """`build(**kwargs)` under Keras's dtype policy `policy` (e.g. `"mixed_bfloat16"`).

    The policy is read when the layers are made: the model keeps it, and the
    process's policy is left as it was.
    """
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy(policy)
    try:
        return build(**kwargs)
    finally:
        keras.config.set_dtype_policy(previous)


def count_trainable(model):
    """Returns the number of trainable parameters P of a built model (keras_subset's count)."""
    return keras_subset.subset.num_trainable_parameters(model)


def _table():
    rows = []
    for builder, kwargs, n in (
        (mnist_cnn, {}, 60000),
        (cifar_cnn, {"num_classes": 10}, 50000),
        (cifar_cnn, {"num_classes": 100}, 50000),
    ):
        m = kwargs.get("num_classes", 10)
        for width in (4, 8, 16, 32):
            p = count_trainable(builder(width=width, **kwargs))
            rows.append(
                f"| {builder.__name__} ({m} classes) | {width} | {p:,d} | {m} "
                f"| {n * m / p:.1f} |"
            )
    return "\n".join(rows)


if __name__ == "__main__":
    print(_table())
