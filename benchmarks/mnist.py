"""MNIST benchmark: Adam, full-set L-BFGS, progressive subsets, single subsets and the Q sweep.

Model: `models.mnist_cnn` (width 8: P = 5,258, Q of the 60,000 training
examples = 114.1; width 16: P = 12,810, Q = 46.8). See `benchmarks/README.md`
and `benchmarks.runner`.

Usage:

```
KERAS_SUBSET_DATA_DIR=/path/to/data python -m benchmarks.mnist --preset=smoke
python -m benchmarks.mnist --preset=cpu --runs=conventional,lbfgs_full,progressive
```
"""

from absl import app

from benchmarks import cli
from benchmarks import config
from benchmarks import models

ALL_RUNS = config.RUN_KINDS
"""Every run kind, in the order they run."""

PRESETS = {
    "smoke": dict(
        # Every run kind, tiny: 1,000 examples (Q of the set 4.3 at width 4), a few
        # iterations; the sweep skips Q = 8 (K = 1,877 > 1,000). About 75 s here.
        train_examples=1000, test_examples=500, train_eval_examples=500,
        width=4, batch_size=64, adam_batch_sizes=(256,), epochs=3, runs=ALL_RUNS,
        ratios=(4,), lbfgs_iterations=10, subset_epochs=2, finetune_epochs=2,
        lbfgs_full_iterations=8, lbfgs_points_every=4, check_every=3,
        progressive_ratio=1, progressive_max_fraction=0.5, sweep_ratios=(1, 2, 8),
        sweep_iterations=8,
    ),
    "cpu": dict(
        # Measured here (2 cores, shared with two other jobs, load 3 to 5), width 8
        # (P = 5,258; Q of the 60,000 examples 114): one L-BFGS evaluation of the full
        # training set 2.5-2.7 s (chunk_size auto = 256), about one evaluation per
        # iteration (initial_step line search), 10-20 s of tracing per pretrain stage
        # that starts a new graph; an Adam epoch 3.7 s (batch 128) and 2.9 s (512); a
        # point's evaluation 0.5 s, one over the whole training set 1.3 s. Estimate:
        # lbfgs_full 9 min, progressive 11 min (its last stage, the full set, is as
        # long as lbfgs_full), progressive_adam 2 min, conventional runs 1-2 min each,
        # sweep Q = 1-32 at 150 iterations 5 min (K = 526 ... 16,827), lbfgs_q8 2 min:
        # about 35 min with the evaluations. Measured end to end: 26.1 min (training
        # seconds: lbfgs_full 514 s, 216 evaluations, 2.4 s each; progressive 566 s;
        # progressive_adam 75 s; conventional 21 s, 5 epochs; conventional_b512 18 s;
        # lbfgs_q8 41 s; the sweep 209 s).
        width=8, batch_size=128, adam_batch_sizes=(512,), epochs=15, runs=ALL_RUNS,
        ratios=(8,), subset_optimizer=("lbfgs",), lbfgs_iterations=100,
        evals_per_epoch=2, plateau_patience=3, lbfgs_full_iterations=200, lbfgs_points_every=10,
        sweep_ratios=(1, 2, 4, 8, 16, 32), sweep_iterations=150,
        # With --augment: 4 fixed copies per example in the L-BFGS phases. Measured
        # (`benchmarks.copies_worth`, docs/results/copies: K = 2,000 originals, 100
        # iterations): no copies 94.76 % test accuracy; 2, 4, 8, 16 copies 96.16, 96.51,
        # 96.55, 96.72 %, one copy worth 0.53, 0.36, 0.19, 0.11 original examples. Past 4
        # copies the cost grows much faster than the accuracy, and one L-BFGS evaluation of
        # all 60,000 images with 4 copies (300,000 examples) already takes about 5 s here.
        augment_copies=4,
    ),
    "paper": dict(
        width=16, batch_size=64, adam_batch_sizes=(256,), epochs=30, runs=ALL_RUNS,
        ratios=(1, 2, 4, 8, 16), subset_optimizer=("lbfgs", "adam"), lbfgs_iterations=1000,
        lbfgs_chunk_size=16384, subset_epochs=100, evals_per_epoch=4, seeds=3,
        train_eval_examples=0, lbfgs_full_iterations=1000, lbfgs_points_every=20,
        sweep_ratios=(1, 2, 4, 8, 16, 32, 64, 128, 256, 512), sweep_iterations=1000,
        augment_copies=8,  # a GPU: Geiping et al. used 10 and 40 fixed copies on CIFAR-10
    ),
}
"""Preset values; flags given on the command line override them."""


def main(argv):
    cli.main(argv, "mnist", models.mnist_cnn, PRESETS)


if __name__ == "__main__":
    config.define_flags()
    app.run(main, flags_parser=cli.parse_flags)
