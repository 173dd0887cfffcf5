"""MNIST benchmark: subset pretraining + fine-tuning vs conventional training.

Model: `models.mnist_cnn` (width 16: P = 12,810, Q of the 60,000 training
examples = 46.8). See `benchmarks/README.md` and `benchmarks.runner`.

Usage:

```
KERAS_SUBSET_DATA_DIR=/path/to/data python -m benchmarks.mnist --preset=smoke
python -m benchmarks.mnist --preset=cpu --ratios=2,8 --subset_optimizer=lbfgs,adam
```
"""

from absl import app

from benchmarks import cli
from benchmarks import config
from benchmarks import models

PRESETS = {
    "smoke": dict(
        train_examples=3000, test_examples=1000, train_eval_examples=1000,
        width=4, batch_size=64, epochs=3, ratios=(4,), lbfgs_iterations=15,
        finetune_epochs=1, subset_epochs=3,
    ),
    "cpu": dict(
        # Measured here (2 cores, shared): an Adam epoch (60,000 examples,
        # batch 128) about 11 s, a point's evaluation about 1.5 s, an L-BFGS
        # evaluation about 0.15 ms per subset example (K = 2,562 at Q = 2,
        # 10,248 at Q = 8), about 3 evaluations per iteration. Estimate: about
        # 4 min conventional, 3 + 8 min L-BFGS runs, 2 min Adam-subset runs.
        width=16, batch_size=128, epochs=15, ratios=(2, 8),
        subset_optimizer=("lbfgs", "adam"), lbfgs_iterations=100,
        finetune_epochs=2, subset_epochs=20, evals_per_epoch=4,
    ),
    "paper": dict(
        width=16, batch_size=64, epochs=30, ratios=(1, 2, 4, 8, 16),
        subset_optimizer=("lbfgs", "adam"), lbfgs_iterations=1000,
        lbfgs_chunk_size=16384, finetune_epochs=3, subset_epochs=100,
        evals_per_epoch=4, seeds=3, train_eval_examples=0,
    ),
}
"""Preset values; flags given on the command line override them."""


def main(argv):
    cli.main(argv, "mnist", models.mnist_cnn, PRESETS)


if __name__ == "__main__":
    config.define_flags()
    app.run(main, flags_parser=cli.parse_flags)
