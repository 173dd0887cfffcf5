"""Fashion-MNIST benchmark (extra dataset), with the MNIST model and presets.

Data: the four original IDX `.gz` files in `<local data dir>/fashion-mnist/`
(or in the local data dir itself); on Debian/Ubuntu the package
`dataset-fashion-mnist` installs them in `/usr/share/datasets/fashion-mnist`.

Usage:

```
python -m benchmarks.fashion_mnist --preset=smoke --local_data_dir=/usr/share/datasets/fashion-mnist
```
"""

from absl import app

from benchmarks import cli
from benchmarks import config
from benchmarks import mnist
from benchmarks import models

PRESETS = mnist.PRESETS


def main(argv):
    cli.main(argv, "fashion_mnist", models.mnist_cnn, PRESETS)


if __name__ == "__main__":
    config.define_flags()
    app.run(main, flags_parser=cli.parse_flags)
