"""CIFAR-100 benchmark: subset pretraining + fine-tuning vs conventional training.

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

# CIFAR-10's presets (and their measured timings), but 150 L-BFGS iterations at the `cpu`
# preset (100 classes make the subsets smaller for the same Q) and width 32 at `paper`.
PRESETS = {name: dict(values) for name, values in cifar10.PRESETS.items()}
PRESETS["cpu"]["lbfgs_iterations"] = 150
PRESETS["paper"]["width"] = 32
"""Preset values; flags given on the command line override them."""


def main(argv):
    cli.main(argv, "cifar100", models.cifar_cnn, PRESETS)


if __name__ == "__main__":
    config.define_flags()
    app.run(main, flags_parser=cli.parse_flags)
