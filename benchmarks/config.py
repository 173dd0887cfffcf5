"""Settings of a benchmark invocation: the `Config` dataclass, presets and flags.

Every `Config` field but `dataset` is also a command-line flag of the same
name, with the help text written beside the field. A value comes from, in
increasing priority: the field's default here, the script's `--preset` table,
a flag given on the command line.

A script defines the flags (`define_flags()`), lets `absl.app` parse them and
builds its `Config` with `config_from_flags(flags.FLAGS, dataset, presets)`;
tests pass their own `flags.FlagValues()` instead of the global one.
"""

import dataclasses
import os

from absl import flags

from benchmarks import datasets

SUBSET_OPTIMIZERS = ("lbfgs", "adam")
PRESET_NAMES = ("smoke", "cpu", "paper")


def _option(default, help, **metadata):
    """A `Config` field: its default and its flag's help text.

    `metadata` may add `choices` (an enum flag), `item_type` (a
    comma-separated list flag whose items are converted by it) or
    `flag=False` (no flag).
    """
    return dataclasses.field(default=default, metadata=dict(help=help, **metadata))


@dataclasses.dataclass
class Config:
    """Settings of one benchmark invocation.

    Integers documented as "0: ..." use 0 for "all" or "the same as ...".
    """

    dataset: str = _option("mnist", "Dataset name (set by the script).", flag=False)
    preset: str = _option(
        "cpu",
        "Preset of the script: smoke (CI, < 2 min), cpu (a 2-core CPU, about 20 min), paper (full "
        "scale, for a GPU). Flags given explicitly override its values.",
        choices=PRESET_NAMES,
    )
    output_dir: str = _option(
        "", "Folder for the JSON files, table and plots (default results/<dataset>)."
    )
    data_dir: str = _option(
        "", "tensorflow-datasets data folder (used only without a local data folder)."
    )
    local_data_dir: str = _option(
        "",
        "Folder with mnist.npz, cifar10.npz, cifar100.npz (keras.datasets layout) and "
        f"fashion-mnist/*.gz; default ${datasets.ENV_VAR}. When set, tfds is not used.",
    )
    tfds_download: bool = _option(True, "Whether tensorflow-datasets may download the data.")
    train_examples: int = _option(0, "Use only this many training examples (0: all).")
    test_examples: int = _option(0, "Use only this many test examples (0: all).")
    train_eval_examples: int = _option(
        10000,
        "Training examples on which the training loss and accuracy are "
        "measured at each point (0: all).",
    )
    width: int = _option(16, "Width (filters of the first convolution) of the reference CNN.")
    batch_size: int = _option(128, "Adam minibatch size on the full training set.")
    epochs: int = _option(10, "Epochs of the conventional run.")
    learning_rate: float = _option(1e-3, "Adam learning rate of the conventional run.")
    ratios: tuple = _option(
        (),
        "Comma-separated target overdetermination ratios Q = K*M/P of the subsets (one subset run "
        "per value and subset optimizer).",
        item_type=float,
    )
    fractions: tuple = _option(
        (),
        "Comma-separated subset sizes as fractions of the training set (instead "
        "of, or besides, --ratios).",
        item_type=float,
    )
    subset_optimizer: tuple = _option(
        ("lbfgs",),
        "Comma-separated subset-phase optimizers: lbfgs (full-batch L-BFGS), adam "
        "(minibatch Adam over the subset).",
        item_type=str,
    )
    subset_strategy: str = _option(
        "random",
        "Subset selection: random or stratified (class-balanced).",
        choices=("random", "stratified"),
    )
    subset_augment: str = _option(
        "none",
        "With --augment: none (the subset phase fits the original examples) or once (each subset "
        "example augmented once, fixed).",
        choices=("none", "once"),
    )
    lbfgs_iterations: int = _option(
        100, "Maximum L-BFGS iterations of the subset phase (all segments together)."
    )
    lbfgs_segments: int = _option(
        1,
        "Split the L-BFGS phase into this many minimize calls (one test point after each; every "
        "call restarts L-BFGS's history).",
    )
    lbfgs_correction_pairs: int = _option(10, "L-BFGS history size.")
    lbfgs_chunk_size: int = _option(
        512,
        "Examples per L-BFGS forward/backward pass (0: all at once); bounds memory, not the cost.",
    )
    subset_epochs: int = _option(20, "Epochs of Adam over the subset (--subset_optimizer=adam).")
    subset_learning_rate: float = _option(
        0.0, "Adam learning rate of the subset phase (0: --learning_rate)."
    )
    subset_batch_size: int = _option(
        0, "Adam minibatch size in the subset phase (0: --batch_size)."
    )
    subset_eval_points: int = _option(5, "Points recorded during an Adam subset phase.")
    finetune_epochs: int = _option(
        2, "Epochs of Adam fine-tuning on the full set after the subset phase."
    )
    finetune_learning_rate: float = _option(
        0.0, "Adam learning rate of fine-tuning (0: --learning_rate)."
    )
    augment: bool = _option(
        False, "Augment the training data (random translations; plus horizontal flips on CIFAR)."
    )
    translation: float = _option(0.1, "Largest random translation, as a fraction of height/width.")
    evals_per_epoch: int = _option(1, "Points (test evaluations) per epoch on the full set.")
    eval_batch_size: int = _option(1000, "Batch size of the metric evaluations.")
    target_tolerance: float = _option(
        0.3, "Target = conventional final test accuracy minus this many percentage points."
    )
    plateau_tolerance: float = _option(
        0.2,
        "The conventional run has levelled off when its last epoch gained less than this many "
        "percentage points of test accuracy.",
    )
    seeds: int = _option(
        1, "Number of seeds (seed, seed+1, ...); reports mean and standard deviation."
    )
    seed: int = _option(0, "First seed.")
    verbose: int = _option(0, "Keras verbosity of fit and L-BFGS (0 silent).")

    def __post_init__(self):
        self.ratios = tuple(float(r) for r in self.ratios)
        self.fractions = tuple(float(f) for f in self.fractions)
        if isinstance(self.subset_optimizer, str):
            self.subset_optimizer = (self.subset_optimizer,)
        self.subset_optimizer = tuple(self.subset_optimizer)
        for opt in self.subset_optimizer:
            if opt not in SUBSET_OPTIMIZERS:
                raise ValueError(
                    f"subset_optimizer {opt!r} is not one of {SUBSET_OPTIMIZERS}"
                )
        if any(not r > 0 for r in self.ratios):
            raise ValueError(f"ratios must be > 0, got {self.ratios}")
        if any(not 0 < f <= 1 for f in self.fractions):
            raise ValueError(f"fractions must be in (0, 1], got {self.fractions}")
        for name in ("epochs", "finetune_epochs", "subset_epochs"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0")
        for name in ("batch_size", "seeds", "evals_per_epoch", "lbfgs_segments",
                     "lbfgs_iterations", "subset_eval_points", "width"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1")
        if not self.output_dir:
            self.output_dir = os.path.join("results", self.dataset)

    @property
    def seed_list(self):
        return [self.seed + i for i in range(self.seeds)]


def _flag_fields():
    """The `Config` fields that are flags."""
    return [f for f in dataclasses.fields(Config) if f.metadata.get("flag", True)]


def define_flags(flag_values=flags.FLAGS):
    """Defines one absl flag per `Config` field (but `dataset`) in `flag_values`.

    Every flag's default is `None`, so that `config_from_flags` can tell the
    flags given on the command line from the preset's values. Defining them
    twice in the same `FlagValues` is an error (absl's `DuplicateFlagError`).
    """
    for field in _flag_fields():
        name, meta = field.name, field.metadata
        kwargs = dict(default=None, help=meta["help"], flag_values=flag_values)
        if "choices" in meta:
            flags.DEFINE_enum(name, enum_values=meta["choices"], **kwargs)
        elif "item_type" in meta:
            flags.DEFINE_list(name, **kwargs)
        elif field.type is bool:
            flags.DEFINE_boolean(name, **kwargs)
        elif field.type is int:
            flags.DEFINE_integer(name, **kwargs)
        elif field.type is float:
            flags.DEFINE_float(name, **kwargs)
        else:
            flags.DEFINE_string(name, **kwargs)


def make_config(dataset, presets, preset=None, overrides=None):
    """Builds a `Config`: defaults, then `presets[preset]`, then `overrides`.

    Args:
        dataset: Dataset name.
        presets: Dict from preset name to a dict of `Config` field values.
        preset: Preset name (default `"cpu"`).
        overrides: Dict of field values that win over the preset. If it sets
            `ratios` or `fractions`, the preset's values of both are dropped.

    Returns:
        A `Config`.
    """
    preset = preset or "cpu"
    if preset not in presets:
        raise ValueError(f"Unknown preset {preset!r}; expected one of {list(presets)}")
    values = dict(presets[preset])
    overrides = dict(overrides or {})
    if "ratios" in overrides or "fractions" in overrides:
        values.pop("ratios", None)
        values.pop("fractions", None)
    values.update(overrides)
    values.update(dataset=dataset, preset=preset)
    return Config(**values)


def config_from_flags(flag_values, dataset, presets):
    """Builds a `Config` from parsed flags: only those given explicitly
    override the preset.

    Args:
        flag_values: The parsed `flags.FlagValues` holding `define_flags()`'s
            flags (a script passes `flags.FLAGS`).
        dataset: Dataset name.
        presets: The script's preset table (see `make_config`).
    """
    overrides = {}
    for field in _flag_fields():
        name = field.name
        if name == "preset" or not flag_values[name].present:
            continue
        value = flag_values[name].value
        if "item_type" in field.metadata:
            value = tuple(field.metadata["item_type"](v) for v in value)
        overrides[name] = value
    return make_config(dataset, presets, flag_values.preset, overrides)
