"""The saving of subset pretraining as a function of the training set's Q (the Q-curve).

The paper's claim is about a ratio: a subset is as good as the full set once its
Q = K*M/P clearly exceeds 1, so a subset at Q* costs about Q*/Q_full of a
full-set evaluation and the saving is bounded near Q_full / Q*. This script
measures the saving where that bound is large: on one dataset, it runs the
benchmark of `benchmarks.runner` once per model width (the reference CNN of
`benchmarks.models`, the same data), from Q_full of about 1,000 (MNIST width 1)
down to about 15, each width from its own initial weights:

- `conventional`, `conventional_b512`: Adam at batch 128 and 512, each until it
  levels off (the stopping rule, at most `--epochs`): the user frame;
- `lbfgs_full`: full-set L-BFGS until it levels off (`--levelled_stop`: no
  test-accuracy gain and a full training loss that fell by less than 0.1 %
  over 20 iterations; `--lbfgs_full_iterations` is a cap, and a reference it
  ends is reported as not levelled): the paper frame;
- `paper_q<Q>` for Q in `--paper_ratios` (those whose subset is at most half the
  training set): the paper's protocol, one subset fitted by L-BFGS until its
  own loss levels off, then full-set L-BFGS until the targets; its subset
  phase also gives the Q sweep, so Q* (the smallest Q within 0.3 pp of
  `lbfgs_full`'s final test accuracy) and the bound Q_full / Q*, from the
  phases that reached their own minimum (one that an iteration or cost cap
  ended first is reported apart: `stats.subset_phase_at_minimum`);
- `progressive` (the library's defaults) and `progressive_adam`.

The progressive and paper runs stop their full-set stage once they reach the
targets of their seed, level off, or spend `--route_cost_cap` times
`lbfgs_full`'s cost to its target (`benchmarks.stops`); both frames and the
cost accounting are the other benchmarks' (`benchmarks.stats`), so the points
compare with theirs.

Outputs, under `--output_dir` (default `results/q_curve`):
`<dataset>/w<width>/` (each width's run files, summary.json, summary.md and
plots, as the dataset scripts write them), `<dataset>/q_curve.json` and
`<dataset>/q_curve.md` (the curve: one row per width), and `q_curve.png` (every
dataset under `--output_dir`: the paper-frame ratios against Q_full beside the
bound, and the user-frame ratios), rewritten after every width.

Usage:

```
KERAS_SUBSET_DATA_DIR=data python3 -m benchmarks.q_curve --dataset=mnist
python3 -m benchmarks.q_curve --dataset=cifar10 --widths=1,2 --seed=1 --seeds=2 --reuse
python3 -m benchmarks.q_curve --dataset=mnist --preset=smoke --output_dir=/tmp/q_curve
```

A flag of the dataset scripts (`benchmarks.config`) given here applies to
every width; `--width` is refused (use `--widths`). A width whose Q_full is
below 1 is refused, with its Q_full, before the first run.
"""

import dataclasses
import os
import sys

from absl import app
from absl import flags

from benchmarks import cifar10
from benchmarks import cli
from benchmarks import config
from benchmarks import datasets
from benchmarks import mnist
from benchmarks import models
from benchmarks import q_curve_report
from benchmarks import runner

CURVE_RUNS = ("conventional", "lbfgs_full", "progressive", "progressive_adam", "paper")
"""The run kinds of every width."""

CURVE = dict(
    runs=CURVE_RUNS,
    # Adam until it levels off: the cap only guards against a run that never does.
    epochs=40,
    lbfgs_full_iterations=1000,
    lbfgs_points_every=10,
    levelled_stop=True,
    loss_window=20,
    loss_tolerance=1e-3,
    route_cost_cap=1.0,
    paper_ratios=(16, 32, 64, 128, 256),
)
"""What the Q-curve sets over the dataset's `cpu` preset (its Adam and stage-rule settings)."""

DATASETS = {
    # name: (model builder, the dataset script's presets, default widths)
    "mnist": (models.mnist_cnn, mnist.PRESETS, (1, 2, 4, 8, 16)),
    "fashion_mnist": (models.mnist_cnn, mnist.PRESETS, (1, 2, 4, 8, 16)),
    "cifar10": (models.cifar_cnn, cifar10.PRESETS, (1, 2, 4, 8, 16)),
}

PRESETS = {
    name: {
        "cpu": {**{k: v for k, v in presets["cpu"].items() if k not in ("width", "ratios")},
                **CURVE},
        # Every route on a 2,000-example slice, a few iterations: a minute or two a width.
        "smoke": {**{k: v for k, v in presets["smoke"].items() if k not in ("width", "ratios")},
                  **CURVE, "train_examples": 2000, "epochs": 2, "adam_batch_sizes": (256,),
                  "lbfgs_full_iterations": 30, "paper_ratios": (2, 4),
                  "progressive_max_fraction": 0.5},
    }
    for name, (_, presets, _) in DATASETS.items()
}
"""Per dataset: preset name -> `Config` values (the widths come from `--widths`)."""

MAX_PAPER_FRACTION = 0.5
"""A paper run's subset is at most this share of the training set: a larger one cannot save
half of a full-set evaluation per iteration, so it says nothing about the claim."""


def define_flags(flag_values=flags.FLAGS):
    """`--dataset`, `--widths` and every flag of `benchmarks.config` (but `--width`)."""
    config.define_flags(flag_values)
    flags.DEFINE_enum("dataset", None, list(DATASETS), "Dataset of the curve.",
                      flag_values=flag_values)
    flags.DEFINE_list("widths", None, "Comma-separated model widths, one point of the curve "
                      "each (default: the dataset's, 1,2,4,8,16).", flag_values=flag_values)


def widths_from_flags(flag_values, dataset):
    """The widths `--widths` lists (default: the dataset's), checked: positive integers, each once."""
    text = flag_values.widths
    if text is None:
        return DATASETS[dataset][2]
    widths = []
    for item in text:
        if not item.strip().isdigit() or int(item) < 1:
            raise config.ConfigError(
                f"`--widths` must list integers >= 1 (model widths), got {item!r} in it.")
        widths.append(int(item))
    if len(set(widths)) != len(widths) or not widths:
        raise config.ConfigError(f"`--widths` must list each width once, got {text}.")
    return tuple(widths)


def width_configs(flag_values, dataset, widths):
    """One `Config` per width: the dataset's curve preset, the flags given, the width and
    its output folder `<--output_dir>/<dataset>/w<width>`."""
    if flag_values["width"].present:
        raise config.ConfigError("`--width` is not a flag of the Q-curve: use `--widths`.")
    base = config.config_from_flags(flag_values, dataset, PRESETS[dataset])
    root = flag_values.output_dir or os.path.join("results", "q_curve")
    return [dataclasses.replace(base, width=w, output_dir=os.path.join(root, dataset, f"w{w}"))
            for w in widths], root


def check_widths(configs, data, build_model):
    """Refuses, before any run, a width whose Q_full = N*M/P is below 1; returns their Q_full."""
    out = {}
    for c in configs:
        model = build_model(width=c.width, input_shape=data.input_shape,
                            num_classes=data.num_classes)
        p = models.count_trainable(model)
        q = len(data.x_train) * data.num_classes / p
        if q < 1:
            raise config.ConfigError(
                f"`--widths` value {c.width} gives Q_full = {q:.3g} < 1 on {data.name} (P = {p:,d} "
                f"parameters, N = {len(data.x_train):,d} examples, M = {data.num_classes}): the "
                "training set does not determine that model; use a smaller width.")
        out[c.width] = q
    return out


def paper_ratios_for(c, q_full):
    """The `--paper_ratios` of a width whose subset is at most `MAX_PAPER_FRACTION` of the set
    (the others are left out, saying so)."""
    kept = tuple(q for q in c.paper_ratios if q <= MAX_PAPER_FRACTION * q_full)
    left = [q for q in c.paper_ratios if q not in kept]
    if left:
        print(f"width {c.width} (Q_full = {q_full:.1f}): paper runs at Q = "
              f"{', '.join(f'{q:g}' for q in left)} left out: their subset would hold more than "
              f"{MAX_PAPER_FRACTION:.0%} of the training set.", flush=True)
    return kept


def plan(flag_values, dataset):
    """The checked widths and their `Config`s, from the flags (before any data is loaded);
    returns `(configs, root)`."""
    return width_configs(flag_values, dataset, widths_from_flags(flag_values, dataset))


def execute(configs, root, dataset):
    """Loads the data, then runs every width and writes the curve after each."""
    build_model = DATASETS[dataset][0]
    widths = [c.width for c in configs]
    first = configs[0]
    data = datasets.load_dataset(
        dataset, local_data_dir=first.local_data_dir or None, data_dir=first.data_dir or None,
        train_examples=first.train_examples or None, test_examples=first.test_examples or None,
        download=first.tfds_download)
    q_full = check_widths(configs, data, build_model)
    print(f"Q-curve of {dataset}: widths {', '.join(map(str, widths))}, Q_full "
          + ", ".join(f"{q_full[w]:.1f}" for w in widths), flush=True)
    for c in configs:
        c = dataclasses.replace(c, paper_ratios=paper_ratios_for(c, q_full[c.width]))
        print(f"\n=== {dataset} width {c.width}: Q_full = {q_full[c.width]:.1f} -> {c.output_dir}",
              flush=True)
        runner.run_benchmark(c, data, build_model)
        q_curve_report.write(root, dataset)
    print(q_curve_report.curve_markdown(q_curve_report.load(root, dataset)), flush=True)


def main(argv, flag_values=flags.FLAGS):
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
    if flag_values.dataset is None:
        sys.exit(f"ERROR: `--dataset` is required: one of {', '.join(DATASETS)}.")
    try:
        execute(*plan(flag_values, flag_values.dataset), flag_values.dataset)
    except (config.ConfigError, datasets.DataNotFoundError) as e:
        sys.exit(f"ERROR: {e}")


if __name__ == "__main__":
    define_flags()
    app.run(main, flags_parser=cli.parse_flags)
