"""Fashion-MNIST benchmark (extra dataset), with the MNIST model and presets.

Data: the four original IDX `.gz` files in `<local data dir>/fashion-mnist/`
(or in the local data dir itself); on Debian/Ubuntu the package
`dataset-fashion-mnist` installs them in `/usr/share/datasets/fashion-mnist`.

Usage:

```
python -m benchmarks.fashion_mnist --preset=smoke --local_data_dir=/usr/share/datasets/fashion-mnist
```
"""

from benchmarks import common
from benchmarks import mnist
from benchmarks import models

PRESETS = mnist.PRESETS

if __name__ == "__main__":
    common.run_script("fashion_mnist", models.mnist_cnn, PRESETS)
