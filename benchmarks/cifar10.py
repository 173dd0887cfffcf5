"""CIFAR-10 benchmark: Adam, full-set L-BFGS, progressive subsets, single subsets and the Q sweep.

Model: `models.cifar_cnn` with 10 outputs (width 8: P = 11,162, Q of the
50,000 training examples = 44.8; width 16: P = 33,834, Q = 14.8). See
`benchmarks/README.md` and `benchmarks.runner`.

Usage:

```
KERAS_SUBSET_DATA_DIR=/path/to/data python -m benchmarks.cifar10 --preset=smoke
python -m benchmarks.cifar10 --preset=cpu --augment
```
"""

from absl import app

from benchmarks import cli
from benchmarks import config
from benchmarks import mnist
from benchmarks import models

PRESETS = {
    # MNIST's, on 2,000 examples (Q of the set 4.8 at width 4): the sweep skips Q = 8.
    "smoke": dict(mnist.PRESETS["smoke"], train_examples=2000, ratios=(2,)),
    "cpu": dict(
        # Measured here (2 cores, shared with two other jobs, load 3 to 5), width 8
        # (P = 11,162; Q of the 50,000 examples 44.8): one L-BFGS evaluation of the
        # full training set 4.2 s (chunk_size auto = 128; width 4: 3.5 s), about one
        # per iteration; an Adam epoch 6.7 s (batch 128) and 7.0 s (512); a point's
        # evaluation 0.7 s, one over the whole training set 2.5 s. Estimate (from these
        # and MNIST's measured run, whose estimate of 35 min came out at 26 min):
        # lbfgs_full 8 min (about 1.08 evaluations per iteration), progressive 11 min
        # (its stages below the full set cost about 40 epochs on MNIST), progressive_adam
        # 2 min, conventional runs 2 min each, sweep Q = 1-16 at 100 iterations 6 min
        # (K = 1,117 ... 17,860), lbfgs_q4 2 min: about 34 min with the evaluations;
        # --augment adds about 15% to an Adam epoch.
        width=8, batch_size=128, adam_batch_sizes=(512,), epochs=20, runs=mnist.ALL_RUNS,
        ratios=(4,), subset_optimizer=("lbfgs",), lbfgs_iterations=100,
        evals_per_epoch=2, plateau_patience=3, lbfgs_full_iterations=100, lbfgs_points_every=10,
        sweep_ratios=(1, 2, 4, 8, 16), sweep_iterations=100,
        augment_copies=4,  # with --augment; chosen on MNIST (see benchmarks.mnist)
    ),
    "paper": dict(
        width=16, batch_size=64, adam_batch_sizes=(256,), epochs=60, runs=mnist.ALL_RUNS,
        ratios=(1, 2, 4, 8), subset_optimizer=("lbfgs", "adam"), lbfgs_iterations=1000,
        lbfgs_chunk_size=16384, subset_epochs=100, evals_per_epoch=4, seeds=3,
        train_eval_examples=0, lbfgs_full_iterations=2000, lbfgs_points_every=20,
        sweep_ratios=(1, 2, 4, 8, 16, 32, 64, 128), sweep_iterations=1000,
        augment_copies=8,  # a GPU: Geiping et al. used 10 and 40 fixed copies on CIFAR-10
    ),
}
"""Preset values; flags given on the command line override them."""


def main(argv):
    cli.main(argv, "cifar10", models.cifar_cnn, PRESETS)


if __name__ == "__main__":
    config.define_flags()
    app.run(main, flags_parser=cli.parse_flags)
