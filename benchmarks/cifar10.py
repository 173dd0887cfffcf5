"""CIFAR-10 benchmark: subset pretraining + fine-tuning vs conventional training.

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
from benchmarks import models

PRESETS = {
    "smoke": dict(
        train_examples=2000, test_examples=1000, train_eval_examples=1000,
        width=4, batch_size=64, epochs=2, ratios=(2,), lbfgs_iterations=10,
        finetune_epochs=1, subset_epochs=3,
    ),
    "cpu": dict(
        # Measured here (2 cores, shared): an Adam epoch (50,000 examples,
        # batch 128, width 8) about 13 s, a point's evaluation about 2.5 s, an
        # L-BFGS evaluation about 0.16 ms per subset example (K = 2,233 at
        # Q = 2, 4,466 at Q = 4), about 3 evaluations per iteration. Estimate:
        # about 6 min conventional, 2.5 + 4.5 min L-BFGS runs, 2 min
        # Adam-subset runs; --augment adds about 15% to an epoch.
        width=8, batch_size=128, epochs=20, ratios=(2, 4),
        subset_optimizer=("lbfgs", "adam"), lbfgs_iterations=100,
        finetune_epochs=2, subset_epochs=20, evals_per_epoch=2,
    ),
    "paper": dict(
        width=16, batch_size=64, epochs=60, ratios=(1, 2, 4, 8),
        subset_optimizer=("lbfgs", "adam"), lbfgs_iterations=1000,
        lbfgs_chunk_size=16384, finetune_epochs=5, subset_epochs=100,
        evals_per_epoch=4, seeds=3, train_eval_examples=0,
    ),
}
"""Preset values; flags given on the command line override them."""


def main(argv):
    cli.main(argv, "cifar10", models.cifar_cnn, PRESETS)


if __name__ == "__main__":
    config.define_flags()
    app.run(main, flags_parser=cli.parse_flags)
