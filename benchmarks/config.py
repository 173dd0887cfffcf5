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
import inspect
import os

from absl import flags
import keras_subset
from keras_subset import checks

from benchmarks import datasets
from benchmarks import stats

SUBSET_OPTIMIZERS = ("lbfgs", "adam")
PRESET_NAMES = ("smoke", "cpu", "paper")
RUN_KINDS = stats.RUN_KINDS
"""The run kinds `--runs` may list (see `benchmarks.runner`)."""

PRETRAIN_OPTIONS = {
    "check_every": "check_every",
    "check_patience": "patience",
    "check_tolerance": "check_tolerance",
    "carry_history": "carry_history",
    "weight_decay": "weight_decay",
}
"""`Config` field -> the `keras_subset.pretrain` argument it sets for the progressive runs.
Their defaults are the library's (`_pretrain_default`), so that they follow it."""


def _pretrain_default(name):
    """The default of `keras_subset.pretrain`'s argument `name`, read from its signature."""
    return inspect.signature(keras_subset.pretrain).parameters[name].default


class ConfigError(ValueError):
    """A setting out of range; the message names its flag and what it accepts."""


def _option(default, help, **metadata):
    """A `Config` field: its default, its flag's help text and what it accepts.

    `metadata` may add:
        choices: the accepted values (an enum flag, or the accepted items of
            a list flag);
        item_type: the type of the items of a comma-separated list flag;
        minimum, maximum: inclusive bounds of a number (of each item);
        above: exclusive lower bound of a number (of each item);
        flag: `False` for a field that is no flag.
    """
    return dataclasses.field(default=default, metadata=dict(help=help, **metadata))


def _pretrain_option(argument, help, **metadata):
    """A `Config` field that sets `keras_subset.pretrain`'s `argument`, whose
    default it takes from `pretrain`'s signature (so it follows the library)."""
    return _option(
        _pretrain_default(argument),
        f"{help}; default: keras_subset.pretrain's `{argument}`.",
        **metadata,
    )


def _checked(flag, kind, value, meta):
    """`value` (of type `kind`) checked against the bounds or choices in `meta`,
    by `keras_subset.checks`; a `ValueError` names `flag` otherwise."""
    if meta.get("chunk_size"):
        return _chunk_size(flag, value)
    if "choices" in meta:
        return checks.check_choice(flag, value, meta["choices"])
    if kind is bool:
        return checks.check_bool(flag, value)
    if kind is int:
        return checks.check_int(flag, value, meta.get("minimum"), meta.get("maximum"))
    if kind is float:
        if "above" in meta:
            return checks.check_number(
                flag, value, meta["above"], meta.get("maximum"), min_inclusive=False
            )
        if "below" in meta:
            return checks.check_number(
                flag, value, meta.get("minimum"), meta["below"], max_inclusive=False
            )
        return checks.check_number(flag, value, meta.get("minimum"), meta.get("maximum"))
    return value


def _chunk_size(flag, value):
    """A chunk size: `"auto"` (the library's rule), 0 (one pass over all examples) or a
    number of examples, as an int or its text (a flag's value)."""
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value)
    if value == "auto" or (checks.is_integer(value) and value >= 0):
        return value if value == "auto" else int(value)
    raise ValueError(
        f"`{flag}` must be auto (the library's rule) or an integer >= 0 (0: one pass over all "
        f"examples), got {value!r}."
    )


def lbfgs_chunk_size(value):
    """`--lbfgs_chunk_size` as `keras_subset.LBFGS(chunk_size=...)` takes it (0 -> `None`)."""
    return None if value == 0 else value


@dataclasses.dataclass
class Config:
    """Settings of one benchmark invocation.

    Integers documented as "0: ..." use 0 for "all" or "the same as ...".
    Each field says beside it what it accepts (see `_option`); any other value
    raises `ConfigError` naming the flag, before any data is loaded.
    """

    dataset: str = _option("mnist", "Dataset name (set by the script).", flag=False)
    preset: str = _option(
        "cpu",
        "Preset of the script: smoke (CI, < 2 min), cpu (a 2-core CPU, at most 45 min a dataset), "
        "paper (full scale, for a GPU). Flags given explicitly override its values.",
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
    train_examples: int = _option(0, "Use only this many training examples (0: all).", minimum=0)
    test_examples: int = _option(0, "Use only this many test examples (0: all).", minimum=0)
    train_eval_examples: int = _option(
        10000,
        "Training examples on which the training loss and accuracy are "
        "measured at each point (0: all).",
        minimum=0,
    )
    width: int = _option(
        16, "Width (filters of the first convolution) of the reference CNN.", minimum=1
    )
    runs: tuple = _option(
        ("conventional", "subset"),
        "Comma-separated run kinds: conventional (Adam at --batch_size and at each of "
        "--adam_batch_sizes), lbfgs_full (L-BFGS on the full set), progressive (growing subsets, "
        "then the full set), progressive_adam (growing subsets up to --progressive_max_fraction, "
        "then Adam), paper (the paper's protocol: one subset per --paper_ratios value fitted by "
        "L-BFGS until its own loss levels off, then L-BFGS on the full set), subset (one subset "
        "per --ratios/--fractions value and --subset_optimizer, then Adam), sweep (one subset per "
        "--sweep_ratios value fitted to its minimum, no fine-tuning).",
        item_type=str,
        choices=RUN_KINDS,
    )
    batch_size: int = _option(128, "Adam minibatch size on the full training set.", minimum=1)
    adam_batch_sizes: tuple = _option(
        (512,),
        "Comma-separated extra batch sizes of conventional runs (run conventional_b<B> each, "
        "learning rate scaled by sqrt(B / --batch_size)); a value equal to --batch_size is the "
        "conventional run itself.",
        item_type=int,
        minimum=1,
    )
    epochs: int = _option(
        10,
        "Most epochs of the conventional runs (they stop earlier by the stopping rule: "
        "--plateau_tolerance, --plateau_patience).",
        minimum=0,
    )
    learning_rate: float = _option(1e-3, "Adam learning rate of the conventional run.", above=0)
    ratios: tuple = _option(
        (),
        "Comma-separated target overdetermination ratios Q = K*M/P of the subsets (one subset run "
        "per value and subset optimizer).",
        item_type=float,
        above=0,
    )
    fractions: tuple = _option(
        (),
        "Comma-separated subset sizes as fractions of the training set (instead "
        "of, or besides, --ratios).",
        item_type=float,
        above=0,
        maximum=1,
    )
    subset_optimizer: tuple = _option(
        ("lbfgs",),
        "Comma-separated subset-phase optimizers: lbfgs (full-batch L-BFGS), adam "
        "(minibatch Adam over the subset).",
        item_type=str,
        choices=SUBSET_OPTIMIZERS,
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
    augment_copies: int = _option(
        0,
        "With --augment: fixed augmented copies of every example (copy j of example i a fixed "
        "function of the seed, i and j), fitted together with it by every L-BFGS phase: "
        "lbfgs_full, the progressive stages, the subset runs' L-BFGS phase and the sweep. Q, the "
        "sweep's and the progressive runs' subset sizes and the cost count them (K examples are "
        "K*(1 + copies)); 0: those phases fit the original examples. The Adam phases keep live "
        "random augmentation.",
        minimum=0,
    )
    dtype_policy: str = _option(
        "float32",
        "Keras dtype policy the model is built under, for every run kind (Adam and L-BFGS alike): "
        "float32, or mixed_bfloat16 (bfloat16 computation, float32 weights; L-BFGS keeps its "
        "position, history and chunk sums in float32).",
        choices=("float32", "mixed_bfloat16"),
    )
    lbfgs_iterations: int = _option(
        100, "Maximum L-BFGS iterations of the subset phase (all segments together).", minimum=1
    )
    lbfgs_segments: int = _option(
        1,
        "Split the L-BFGS phase into this many minimize calls (one test point after each; every "
        "call restarts L-BFGS's history).",
        minimum=1,
    )
    lbfgs_correction_pairs: int = _option(10, "L-BFGS history size.", minimum=1)
    lbfgs_chunk_size: str = _option(
        "auto",
        "Examples per L-BFGS forward/backward pass: auto (keras_subset's rule from the model's "
        "activation size), 0 (all at once) or a number; bounds memory, not the cost.",
        chunk_size=True,
    )
    lbfgs_full_iterations: int = _option(
        200,
        "Most L-BFGS iterations of the lbfgs_full run, and of every stage of the progressive runs.",
        minimum=1,
    )
    lbfgs_points_every: int = _option(
        10,
        "L-BFGS iterations between the points of the lbfgs_full run (one continuous run: its "
        "curvature history is kept across points).",
        minimum=1,
    )
    progressive_ratio: float = _option(
        1.0,
        "Overdetermination ratio Q of the first subset of the progressive runs.",
        above=0,
    )
    growth: float = _option(
        2.0, "Factor between the subset sizes of consecutive progressive stages.", above=1
    )
    progressive_max_fraction: float = _option(
        0.25,
        "Fraction of the training set of the last subset of the progressive_adam run (Adam on "
        "the full set follows).",
        above=0,
        maximum=1,
    )
    check_every: int = _pretrain_option(
        "check_every",
        "L-BFGS iterations between the held-out checks of the progressive runs (and between "
        "their points)",
        minimum=1,
    )
    check_patience: int = _pretrain_option(
        "patience", "Held-out checks without improvement that end a progressive stage", minimum=1
    )
    check_tolerance: float = _pretrain_option(
        "check_tolerance",
        "Relative decrease of the held-out loss that counts as an improvement",
        minimum=0,
        below=1,
    )
    carry_history: bool = _pretrain_option(
        "carry_history",
        "Whether each progressive L-BFGS stage starts with the previous stage's curvature pairs",
    )
    weight_decay: float = _pretrain_option(
        "weight_decay", "L2 penalty of the progressive stages on fewer than all examples", minimum=0
    )
    paper_ratios: tuple = _option(
        (),
        "Comma-separated overdetermination ratios Q of the paper runs paper_q<Q> (run kind paper): "
        "one subset of Q fitted by L-BFGS until its own loss levels off (it improved by less "
        "than a share --lbfgs_points_every / --loss_window of --loss_tolerance, relative, over "
        "every --lbfgs_points_every segment of the last --loss_window iterations; at most "
        "--lbfgs_full_iterations), then L-BFGS on the full set from there (at "
        "most --lbfgs_full_iterations, stopped as --levelled_stop says); values whose subset "
        "holds the whole training set are skipped, saying so.",
        item_type=float,
        above=0,
    )
    paper_iterations: int = _option(
        0,
        "Most L-BFGS iterations of each stage of the paper runs (the subset phase and the "
        "full-set one); 0: --lbfgs_full_iterations. Only the paper runs read it, so raising it "
        "for a subset phase that the cap cut short of its own minimum keeps every other run "
        "reusable (--reuse).",
        minimum=0,
    )
    levelled_stop: bool = _option(
        False,
        "Run lbfgs_full until it levels off instead of to --lbfgs_full_iterations (then a cap, "
        "recorded): its test accuracy no longer gains by the stopping rule (--plateau_tolerance, "
        "--plateau_patience, over its points) and its full training loss fell by less than "
        "--loss_tolerance (relative) over the last --loss_window iterations. The full-set stage "
        "of the progressive and paper runs then stops once it has reached every target of its "
        "seed (lbfgs_full's and conventional's), once it levels off by the same rule, or once "
        "the run has spent --route_cost_cap times lbfgs_full's cost to its target.",
    )
    loss_window: int = _option(
        20,
        "Iterations over which --levelled_stop measures the relative fall of the full training "
        "loss; with --levelled_stop, a multiple of --lbfgs_points_every.",
        minimum=1,
    )
    loss_tolerance: float = _option(
        1e-3,
        "Relative fall of the full training loss over --loss_window iterations below which an "
        "L-BFGS run has levelled off (--levelled_stop; the paper runs' subset phase too, see "
        "--paper_ratios).",
        above=0,
        maximum=1,
    )
    route_cost_cap: float = _option(
        1.0,
        "With --levelled_stop: most cost of a progressive or paper run, in multiples of "
        "lbfgs_full's cost to its target (of the same seed); a run stopped there has no saving.",
        above=0,
    )
    sweep_ratios: tuple = _option(
        (1, 2, 4, 8, 16, 32),
        "Comma-separated overdetermination ratios Q of the sweep runs (one subset each, fitted by "
        "L-BFGS to its minimum, no fine-tuning); values whose subset exceeds the training set "
        "are skipped, saying so.",
        item_type=float,
        above=0,
    )
    sweep_iterations: int = _option(
        200, "Most L-BFGS iterations of a sweep run.", minimum=1
    )
    subset_epochs: int = _option(
        20, "Epochs of Adam over the subset (--subset_optimizer=adam).", minimum=0
    )
    subset_learning_rate: float = _option(
        0.0, "Adam learning rate of the subset phase (0: --learning_rate).", minimum=0
    )
    subset_batch_size: int = _option(
        0, "Adam minibatch size in the subset phase (0: --batch_size).", minimum=0
    )
    subset_eval_points: int = _option(5, "Points recorded during an Adam subset phase.", minimum=1)
    finetune_epochs: int = _option(
        0,
        "Most epochs of Adam fine-tuning on the full set after a subset phase (subset and "
        "progressive_adam runs; they stop earlier by the stopping rule); 0: --epochs.",
        minimum=0,
    )
    finetune_learning_rate: float = _option(
        0.0, "Adam learning rate of fine-tuning (0: --learning_rate).", minimum=0
    )
    augment: bool = _option(
        False, "Augment the training data (random translations; plus horizontal flips on CIFAR)."
    )
    translation: float = _option(
        0.1, "Largest random translation, as a fraction of height/width.", minimum=0, maximum=1
    )
    evals_per_epoch: int = _option(
        1, "Points (test evaluations) per epoch on the full set.", minimum=1
    )
    eval_batch_size: int = _option(1000, "Batch size of the metric evaluations.", minimum=1)
    target_tolerance: float = _option(
        0.3,
        "Target = conventional final test accuracy minus this many percentage points.",
        minimum=0,
        maximum=100,
    )
    plateau_tolerance: float = _option(
        0.2,
        "Stopping rule of the Adam phases on the full set: an epoch end improves when its test "
        "accuracy beats the best earlier epoch end of the phase (its starting point not counted, "
        "so that a fine-tuning phase from pretrained weights is stopped as Adam from the initial "
        "weights is) by at least this many percentage points.",
        minimum=0,
        maximum=100,
    )
    plateau_patience: int = _option(
        2,
        "Stopping rule: an Adam phase on the full set stops after this many epochs in a row "
        "without improvement (or at its epoch cap); a run has levelled off when its last this "
        "many points did not improve.",
        minimum=1,
    )
    reuse: bool = _option(
        False,
        "Run a benchmark in parts: reuse the complete runs already in --output_dir whose "
        "settings match this invocation's (they are not run again) and report every such run "
        "there, also of run kinds or seeds this invocation does not list.",
    )
    seeds: int = _option(
        1, "Number of seeds (seed, seed+1, ...); reports mean and standard deviation.", minimum=1
    )
    seed: int = _option(0, "First seed.", minimum=0)
    verbose: int = _option(0, "Keras verbosity of fit and L-BFGS (0 silent).", minimum=0, maximum=2)

    def __post_init__(self):
        try:
            self._check()
        except ValueError as e:
            raise ConfigError(str(e)) from None
        if not self.output_dir:
            self.output_dir = os.path.join("results", self.dataset)

    def _check(self):
        """Checks every flag field against its metadata (`_option`), and the
        settings that depend on each other; normalizes lists to tuples."""
        for field in _flag_fields():
            flag, meta, value = f"--{field.name}", field.metadata, getattr(self, field.name)
            if "item_type" in meta:
                items = (value,) if isinstance(value, (str, int, float)) else tuple(value)
                value = tuple(_checked(flag, meta["item_type"], v, meta) for v in items)
                names = [f"{v:g}" if isinstance(v, float) else v for v in value]
                twice = sorted({n for n in names if names.count(n) > 1})
                if twice:
                    raise ValueError(
                        f"`{flag}` lists {', '.join(map(str, twice))} more than once; each value "
                        "is one run, named after it."
                    )
            else:
                value = _checked(flag, field.type, value, meta)
            setattr(self, field.name, value)
        if not self.runs:
            raise ValueError(f"`--runs` must list at least one of {RUN_KINDS}, got none.")
        if self.levelled_stop and self.loss_window % self.lbfgs_points_every:
            raise ValueError(
                f"`--loss_window` ({self.loss_window}) must be a multiple of `--lbfgs_points_every` "
                f"({self.lbfgs_points_every}): the full training loss is known at the points."
            )
        if self.lbfgs_segments > self.lbfgs_iterations:
            raise ValueError(
                f"`--lbfgs_segments` must be at most `--lbfgs_iterations` "
                f"({self.lbfgs_iterations}): every segment runs at least one iteration; "
                f"got {self.lbfgs_segments}."
            )
        if self.augment and self.augment_copies and self.subset_augment != "none":
            raise ValueError(
                f"`--subset_augment={self.subset_augment}` and `--augment_copies="
                f"{self.augment_copies}` both set what a subset run's L-BFGS phase fits: give one "
                "(--subset_augment=none with copies)."
            )
        # The seeds seed, ..., seed + seeds - 1 must all be valid NumPy seeds.
        checks.check_int("--seed", self.seed, 0, 2**32 - self.seeds)

    @property
    def copies(self):
        """Augmented copies of every example in the L-BFGS phases: `augment_copies` with
        `--augment`, else 0."""
        return self.augment_copies if self.augment else 0

    @property
    def seed_list(self):
        return [self.seed + i for i in range(self.seeds)]

    @property
    def finetune_epoch_cap(self):
        """Most epochs of a fine-tuning phase: `finetune_epochs`, or `epochs` for 0."""
        return self.finetune_epochs or self.epochs

    def pretrain_options(self):
        """The stage-rule arguments of `keras_subset.pretrain` for the progressive runs."""
        return {arg: getattr(self, field) for field, arg in PRETRAIN_OPTIONS.items()}


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
        if "item_type" in meta:
            flags.DEFINE_list(name, **kwargs)
        elif "choices" in meta:
            flags.DEFINE_enum(name, enum_values=meta["choices"], **kwargs)
        elif meta.get("chunk_size"):
            flags.DEFINE_string(name, **kwargs)
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

    Raises:
        ConfigError: naming the flag, when a value is out of range.
    """
    preset = preset or "cpu"
    if preset not in presets:
        raise ConfigError(f"`--preset` must be one of {tuple(presets)}, got {preset!r}.")
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
            value = tuple(_list_item(name, field.metadata["item_type"], v) for v in value)
        overrides[name] = value
    return make_config(dataset, presets, flag_values.preset, overrides)


def _list_item(name, item_type, text):
    """An item of a comma-separated list flag, converted to `item_type`."""
    try:
        return item_type(text)
    except ValueError:
        raise ConfigError(
            f"`--{name}` must be a comma-separated list of {item_type.__name__} values, "
            f"got {text!r} in it."
        ) from None
