"""CIFAR-100 benchmark: Adam, full-set L-BFGS, progressive subsets, single subsets and the Q sweep.

Model: `models.cifar_cnn` with 100 outputs (width 8: P = 57,332, Q of the
50,000 training examples = 87.2; width 16: P = 126,084, Q = 39.7). See
`benchmarks/README.md` and `benchmarks.runner`. The local `cifar100.npz` is
sorted by class; the loader shuffles it (fixed seed) before any slicing.

Usage:

```
KERAS_SUBSET_DATA_DIR=/path/to/data python -m benchmarks.cifar100 --preset=smoke
python -m benchmarks.cifar100 --preset=cpu --augment
```
"""

from absl import app

from benchmarks import cifar10
from benchmarks import cli
from benchmarks import config
from benchmarks import models

# CIFAR-10's presets, but: at `cpu`, the sweep goes on to Q = 32 (100 classes make the
# subsets smaller for the same Q: K = 574 ... 18,347 at width 8, P = 57,332); measured
# here, one L-BFGS evaluation of the full set 4.9 s, an Adam epoch 6.3 s (batch 128) and
# 3.8 s (512), a point's evaluation 0.9 s. Estimate: lbfgs_full 9 min, progressive 13 min,
# progressive_adam 2 min, conventional runs 3.5 min, lbfgs_q4 1.5 min, sweep 7.5 min: about
# 38 min. Width 32 at `paper`.
PRESETS = {name: dict(values) for name, values in cifar10.PRESETS.items()}
PRESETS["cpu"]["sweep_ratios"] = (1, 2, 4, 8, 16, 32)
PRESETS["paper"]["width"] = 32
"""Preset values; flags given on the command line override them."""


def main(argv):
    cli.main(argv, "cifar100", models.cifar_cnn, PRESETS)


if __name__ == "__main__":
    config.define_flags()
    app.run(main, flags_parser=cli.parse_flags)
