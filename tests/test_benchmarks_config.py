"""Tests of `benchmarks.config`: presets, overrides and flags."""

import os

import pytest

from benchmarks import config as config_lib
from benchmarks import runner


def test_presets_and_overrides():
    from benchmarks import cifar10, cifar100, mnist

    for module in (mnist, cifar10, cifar100):
        assert set(module.PRESETS) == {"smoke", "cpu", "paper"}
        for preset in module.PRESETS:
            config = config_lib.make_config("mnist", module.PRESETS, preset)
            assert config.ratios or config.fractions
    config = config_lib.make_config("mnist", mnist.PRESETS, "smoke", {"epochs": 7})
    assert config.epochs == 7 and config.width == mnist.PRESETS["smoke"]["width"]
    # Giving fractions drops the preset's ratios.
    config = config_lib.make_config("mnist", mnist.PRESETS, "cpu", {"fractions": (0.1,)})
    assert config.fractions == (0.1,) and config.ratios == ()
    assert [s.name for s in runner.run_specs(config)] == [
        "conventional", "lbfgs_f0.1", "adam_f0.1"]
    assert config.output_dir == os.path.join("results", "mnist")
    with pytest.raises(ValueError):
        config_lib.Config(subset_optimizer=("sgd",))


def test_flags_override_only_when_given():
    from absl import flags

    from benchmarks import mnist

    flag_values = flags.FlagValues()  # the test's own, not the global FLAGS
    config_lib.define_flags(flag_values)
    with pytest.raises(flags.DuplicateFlagError):
        config_lib.define_flags(flag_values)
    flag_values(["prog", "--preset=smoke", "--epochs=5", "--ratios=3,6", "--augment"])
    config = config_lib.config_from_flags(flag_values, "mnist", mnist.PRESETS)
    assert config.preset == "smoke"
    assert config.epochs == 5 and config.ratios == (3.0, 6.0) and config.augment
    assert config.width == mnist.PRESETS["smoke"]["width"]
    assert config.train_examples == mnist.PRESETS["smoke"]["train_examples"]
