"""Tests of `benchmarks.config`: presets, overrides and flags."""

import os

import numpy as np
import pytest

from benchmarks import config as config_lib
from benchmarks import runner

# Every test of this file is quick: all in the fast tier.
pytestmark = pytest.mark.fast


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
    config = config_lib.make_config(
        "mnist", mnist.PRESETS, "cpu",
        {"fractions": (0.1,), "runs": ("conventional", "subset"),
         "subset_optimizer": ("lbfgs", "adam")})
    assert config.fractions == (0.1,) and config.ratios == ()
    assert [s.name for s in runner.run_specs(config)] == [
        "conventional", "conventional_b512", "lbfgs_f0.1", "adam_f0.1"]
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


# Every setting refuses out-of-range values, naming its flag and what it accepts.
@pytest.mark.parametrize("field,value,accepted", [
    ("preset", "huge", "'smoke', 'cpu', 'paper'"),
    ("tfds_download", 1, "True or False"),
    ("train_examples", -5, "an integer >= 0"),
    ("test_examples", -1, "an integer >= 0"),
    ("train_eval_examples", -1, "an integer >= 0"),
    ("width", 0, "an integer >= 1"),
    ("batch_size", 0, "an integer >= 1"),
    ("batch_size", 32.5, "an integer >= 1"),
    ("epochs", -1, "an integer >= 0"),
    ("learning_rate", 0.0, "> 0"),
    ("learning_rate", -1e-3, "> 0"),
    ("ratios", (-1.0,), "> 0"),
    ("ratios", (float("nan"),), "a finite number > 0"),
    ("fractions", (0.0,), "> 0"),
    ("fractions", (1.5,), "<= 1"),
    ("subset_optimizer", ("sgd",), "'lbfgs', 'adam'"),
    ("subset_strategy", "balanced", "'random', 'stratified'"),
    ("subset_augment", "twice", "'none', 'once'"),
    ("lbfgs_iterations", 0, "an integer >= 1"),
    ("lbfgs_segments", 0, "an integer >= 1"),
    ("lbfgs_correction_pairs", 0, "an integer >= 1"),
    ("lbfgs_chunk_size", -512, "an integer >= 0"),
    ("lbfgs_chunk_size", "big", "auto (the library's rule) or an integer >= 0"),
    ("lbfgs_chunk_size", 1.5, "auto (the library's rule) or an integer >= 0"),
    ("runs", ("adam",), "'conventional', 'lbfgs_full', 'progressive', 'progressive_adam', "
                        "'paper', 'subset', 'sweep'"),
    ("paper_ratios", (0,), "> 0"),
    ("loss_window", 0, "an integer >= 1"),
    ("loss_tolerance", 0, "> 0"),
    ("loss_tolerance", 1.5, "<= 1"),
    ("route_cost_cap", -1, "> 0"),
    ("paper_iterations", -1, "an integer >= 0"),
    ("runs", (), "at least one of"),
    ("adam_batch_sizes", (0,), "an integer >= 1"),
    ("adam_batch_sizes", (64.5,), "an integer >= 1"),
    ("plateau_patience", 0, "an integer >= 1"),
    ("lbfgs_full_iterations", 0, "an integer >= 1"),
    ("lbfgs_points_every", 0, "an integer >= 1"),
    ("progressive_ratio", 0.0, "> 0"),
    ("growth", 1.0, "> 1"),
    ("progressive_max_fraction", 0.0, "> 0"),
    ("progressive_max_fraction", 1.5, "<= 1"),
    ("check_every", 0, "an integer >= 1"),
    ("check_patience", 0, "an integer >= 1"),
    ("check_tolerance", -0.1, ">= 0"),
    ("check_tolerance", 1.0, "< 1"),
    ("carry_history", "yes", "True or False"),
    ("weight_decay", -1e-4, ">= 0"),
    ("sweep_ratios", (0.0,), "> 0"),
    ("sweep_ratios", (float("inf"),), "a finite number > 0"),
    ("sweep_iterations", 0, "an integer >= 1"),
    ("subset_epochs", -1, "an integer >= 0"),
    ("subset_learning_rate", -0.1, ">= 0"),
    ("subset_batch_size", -1, "an integer >= 0"),
    ("subset_eval_points", 0, "an integer >= 1"),
    ("finetune_epochs", -2, "an integer >= 0"),
    ("finetune_learning_rate", -1.0, ">= 0"),
    ("augment", "yes", "True or False"),
    ("augment_copies", -1, "an integer >= 0"),
    ("augment_copies", 2.5, "an integer >= 0"),
    ("translation", -0.1, ">= 0"),
    ("translation", 1.5, "<= 1"),
    ("evals_per_epoch", 0, "an integer >= 1"),
    ("eval_batch_size", 0, "an integer >= 1"),
    ("target_tolerance", -0.3, ">= 0"),
    ("plateau_tolerance", -0.2, ">= 0"),
    ("seeds", 0, "an integer >= 1"),
    ("seed", -1, "an integer >= 0"),
    ("verbose", 3, "<= 2"),
])
def test_out_of_range_settings_are_refused_naming_the_flag(field, value, accepted):
    with pytest.raises(config_lib.ConfigError) as info:
        config_lib.Config(**{field: value})
    message = str(info.value)
    assert f"`--{field}`" in message and accepted in message, message


def test_settings_that_depend_on_each_other_are_checked():
    with pytest.raises(config_lib.ConfigError, match="`--lbfgs_segments` must be at most"):
        config_lib.Config(lbfgs_iterations=3, lbfgs_segments=5)
    with pytest.raises(config_lib.ConfigError, match="`--seed`"):
        config_lib.Config(seed=2**32 - 2, seeds=3)
    with pytest.raises(config_lib.ConfigError, match="`--subset_augment=once` and `--augment_copies=4`"):
        config_lib.Config(augment=True, augment_copies=4, subset_augment="once")
    # Copies apply with --augment only (a preset may set them for its augmented runs).
    assert config_lib.Config(augment_copies=4).copies == 0
    assert config_lib.Config(augment=True, augment_copies=4).copies == 4
    # The same value twice would be two runs writing one file.
    with pytest.raises(config_lib.ConfigError, match="`--ratios` lists 2 more than once"):
        config_lib.Config(ratios=(2, 2.0))
    with pytest.raises(config_lib.ConfigError, match="`--subset_optimizer` lists adam"):
        config_lib.Config(subset_optimizer=("adam", "lbfgs", "adam"))


def test_lists_of_new_flags_refuse_repeats_and_chunk_size_takes_auto_zero_or_a_number():
    with pytest.raises(config_lib.ConfigError, match="`--sweep_ratios` lists 2 more than once"):
        config_lib.Config(sweep_ratios=(2, 2.0))
    with pytest.raises(config_lib.ConfigError, match="`--runs` lists sweep more than once"):
        config_lib.Config(runs=("sweep", "sweep"))
    with pytest.raises(config_lib.ConfigError, match="`--adam_batch_sizes` lists 512"):
        config_lib.Config(adam_batch_sizes=(512, 512))
    assert config_lib.Config(lbfgs_chunk_size="auto").lbfgs_chunk_size == "auto"
    assert config_lib.Config(lbfgs_chunk_size="0").lbfgs_chunk_size == 0
    assert config_lib.Config(lbfgs_chunk_size=np.int64(256)).lbfgs_chunk_size == 256
    assert config_lib.lbfgs_chunk_size(0) is None
    assert config_lib.lbfgs_chunk_size("auto") == "auto"


def test_stage_rule_defaults_follow_keras_subset_pretrain():
    import inspect

    import keras_subset

    defaults = inspect.signature(keras_subset.pretrain).parameters
    config = config_lib.Config()
    for field, argument in config_lib.PRETRAIN_OPTIONS.items():
        assert getattr(config, field) == defaults[argument].default, field
    assert config.pretrain_options() == {
        argument: defaults[argument].default for argument in config_lib.PRETRAIN_OPTIONS.values()}


def test_run_kinds_and_their_specs():
    config = config_lib.Config(
        runs=config_lib.RUN_KINDS, batch_size=128, adam_batch_sizes=(128, 512),
        learning_rate=1e-3, ratios=(4,), subset_optimizer=("lbfgs",), sweep_ratios=(1, 2))
    specs = {s.name: s for s in runner.run_specs(config)}
    assert list(specs) == [
        "conventional", "conventional_b512", "lbfgs_full", "progressive", "progressive_adam",
        "lbfgs_q4", "sweep_q1", "sweep_q2"]
    # The extra batch size's learning rate is scaled by sqrt(B / batch_size); a batch size
    # equal to --batch_size is the conventional run itself.
    assert specs["conventional_b512"].learning_rate == pytest.approx(2e-3)
    assert specs["conventional_b512"].kind == "conventional"
    assert specs["progressive_adam"].fraction == config.progressive_max_fraction
    # Fine-tuning's cap: --finetune_epochs, or --epochs for 0.
    assert config_lib.Config(epochs=7).finetune_epoch_cap == 7
    assert config_lib.Config(epochs=7, finetune_epochs=3).finetune_epoch_cap == 3


def test_in_range_edge_values_are_accepted():
    config = config_lib.Config(
        train_examples=0, learning_rate=1e-9, fractions=(1.0,), translation=0.0,
        verbose=2, subset_optimizer="adam", lbfgs_iterations=np.int64(4), lbfgs_segments=4,
        ratios=np.array([0.5, 2]), target_tolerance=0,
    )
    assert config.subset_optimizer == ("adam",) and config.ratios == (0.5, 2.0)
    assert type(config.lbfgs_iterations) is int and type(config.target_tolerance) is float


def test_bad_flag_values_are_refused_before_anything_runs():
    from absl import flags

    from benchmarks import mnist

    for argv, flag in ((["--train_examples=-5"], "--train_examples"),
                       (["--ratios=-1"], "--ratios"),
                       (["--ratios=2,abc"], "--ratios"),
                       (["--runs=conventional,adam"], "--runs"),
                       (["--adam_batch_sizes=256,x"], "--adam_batch_sizes"),
                       (["--sweep_ratios=1,-2"], "--sweep_ratios"),
                       (["--lbfgs_chunk_size=-1"], "--lbfgs_chunk_size"),
                       (["--lbfgs_chunk_size=huge"], "--lbfgs_chunk_size"),
                       (["--growth=1"], "--growth"),
                       (["--progressive_max_fraction=2"], "--progressive_max_fraction"),
                       (["--check_tolerance=1"], "--check_tolerance"),
                       (["--preset=smoke", "--lbfgs_iterations=0"], "--lbfgs_iterations")):
        flag_values = flags.FlagValues()
        config_lib.define_flags(flag_values)
        flag_values(["prog"] + argv)
        with pytest.raises(config_lib.ConfigError, match=f"`{flag}`"):
            config_lib.config_from_flags(flag_values, "mnist", mnist.PRESETS)


def test_levelled_stop_needs_a_loss_window_the_points_measure():
    config_lib.Config(loss_window=15, lbfgs_points_every=10)  # not read without --levelled_stop
    with pytest.raises(config_lib.ConfigError, match="`--loss_window` .15. must be a multiple of "
                       "`--lbfgs_points_every` .10."):
        config_lib.Config(levelled_stop=True, loss_window=15, lbfgs_points_every=10)
