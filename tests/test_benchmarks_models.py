"""Tests of `benchmarks.models`: the reference CNNs' parameter counts."""

import pytest

from benchmarks import models

# Every test of this file is quick: all in the fast tier.
pytestmark = pytest.mark.fast


def test_models_parameter_counts():
    assert models.count_trainable(models.mnist_cnn(width=16)) == 12810
    assert models.count_trainable(models.cifar_cnn(width=16, num_classes=10)) == 33834
    assert models.count_trainable(models.cifar_cnn(width=16, num_classes=100)) == 126084
    # Q of the full training set is well above 1 for the preset widths.
    assert 60000 * 10 / models.count_trainable(models.mnist_cnn(width=16)) > 10
    assert 50000 * 100 / models.count_trainable(models.cifar_cnn(width=32, num_classes=100)) > 10
