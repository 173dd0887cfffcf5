"""Entry point of the dataset scripts (`python -m benchmarks.mnist` and the others).

A script defines the flags and hands its dataset name, model builder and
preset table to `main` under `absl.app`:

```
def main(argv):
    cli.main(argv, "mnist", models.mnist_cnn, PRESETS)

if __name__ == "__main__":
    config.define_flags()
    app.run(main, flags_parser=cli.parse_flags)
```

`main` builds the `Config` from the parsed flags and calls `run`, which loads
the data and runs the benchmark. A flag value out of range (`ConfigError`,
refused before any data is loaded) or missing data ends the script with a
non-zero status and one `ERROR: ...` message, which names the flag or says
how to get the data; so does a value absl cannot parse (`parse_flags`).
"""

import dataclasses
import sys
import time

from absl import app
from absl import flags

from benchmarks import config as config_lib
from benchmarks import datasets
from benchmarks import runner


def run(config, build_model):
    """Loads the data of `config` and runs the benchmark; returns
    `runner.run_benchmark`'s `(records, summary)`."""
    print(f"{config.dataset} benchmark, preset {config.preset}: "
          f"{dataclasses.asdict(config)}", flush=True)
    start = time.perf_counter()
    data = datasets.load_dataset(
        config.dataset,
        local_data_dir=config.local_data_dir or None,
        data_dir=config.data_dir or None,
        train_examples=config.train_examples or None,
        test_examples=config.test_examples or None,
        download=config.tfds_download,
    )
    print(
        f"Loaded {config.dataset} from {data.source} in "
        f"{time.perf_counter() - start:.1f} s: {len(data.x_train):,d} training, "
        f"{len(data.x_test):,d} test examples",
        flush=True,
    )
    return runner.run_benchmark(config, data, build_model)


def parse_flags(argv):
    """absl's flag parsing for `app.run(main, flags_parser=parse_flags)`: a value
    absl cannot parse (`--epochs=abc`, an unknown enum value or flag) ends the
    script with one line `ERROR: ...` naming the flag, like a value `Config`
    refuses."""
    try:
        return flags.FLAGS(argv)
    except flags.Error as e:
        sys.exit(f"ERROR: {e}")


def main(argv, dataset, build_model, presets, flag_values=flags.FLAGS):
    """Body of a benchmark script, after absl parsed the flags.

    Args:
        argv: The arguments absl left (only the program name is accepted).
        dataset: Dataset name (see `datasets.DATASETS`).
        build_model: The model builder (see `runner.run_benchmark`).
        presets: The script's preset table.
        flag_values: The parsed flags (`config.define_flags()`'s).
    """
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
    try:
        run(config_lib.config_from_flags(flag_values, dataset, presets), build_model)
    except (config_lib.ConfigError, datasets.DataNotFoundError) as e:
        sys.exit(f"ERROR: {e}")
