"""Tests of the `benchmarks` package.

The end-to-end tests run each benchmark script at the `smoke` preset on real
data, as a subprocess (`python -m benchmarks.<name> --preset=smoke`), so they
need the local data folder named by the environment variable
`KERAS_SUBSET_DATA_DIR` holding `mnist.npz`, `cifar10.npz` and `cifar100.npz`
(see `benchmarks/README.md`). Without it they fail, saying so.
"""

import gzip
import json
import math
import os
import subprocess
import sys

import numpy as np
import pytest

from benchmarks import common
from benchmarks import datasets
from benchmarks import models

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _data_dir(*files):
    folder = os.environ.get(datasets.ENV_VAR)
    if not folder:
        pytest.fail(
            f"The environment variable {datasets.ENV_VAR} is not set: it must name "
            "a folder holding mnist.npz, cifar10.npz and cifar100.npz "
            "(keras.datasets layout); see benchmarks/README.md, section Data."
        )
    for name in files:
        if not os.path.exists(os.path.join(folder, name)):
            pytest.fail(
                f"{name} is missing from {datasets.ENV_VAR}={folder}; see "
                "benchmarks/README.md, section Data, for how to get it."
            )
    return folder


# ----------------------------------------------------------------------------
# End to end: each script at the smoke preset on real data.
# ----------------------------------------------------------------------------


@pytest.mark.parametrize("script,data_file", [
    ("mnist", "mnist.npz"),
    ("cifar10", "cifar10.npz"),
    ("cifar100", "cifar100.npz"),
])
def test_script_smoke_end_to_end(script, data_file, tmp_path):
    folder = _data_dir(data_file)
    out = tmp_path / "out"
    env = dict(os.environ, **{datasets.ENV_VAR: folder})
    proc = subprocess.run(
        [sys.executable, "-m", f"benchmarks.{script}", "--preset=smoke",
         f"--output_dir={out}"],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=900,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]

    for name in ("summary.md", "summary.json", "accuracy_vs_cost.png", "gap_vs_q.png"):
        assert (out / name).exists(), name
    for name in ("accuracy_vs_cost.png", "gap_vs_q.png"):
        data = (out / name).read_bytes()
        assert data.startswith(PNG_MAGIC) and len(data) > 5000, name

    run_files = sorted(out.glob("run_*_seed0.json"))
    names = [p.name for p in run_files]
    assert "run_conventional_seed0.json" in names
    assert any(n.startswith("run_lbfgs_q") for n in names), names
    records = {}
    for path in run_files:
        record = json.loads(path.read_text())
        records[record["run"]] = record
        assert record["complete"] is True
        points = record["points"]
        assert points[0]["phase"] == "initial" and points[0]["evaluations"] == 0
        evaluations = [p["evaluations"] for p in points]
        assert all(b > a for a, b in zip(evaluations, evaluations[1:])), evaluations
        seconds = [p["seconds"] for p in points]
        assert all(b >= a for a, b in zip(seconds, seconds[1:])), seconds
        for p in points:
            for key in ("test_accuracy", "train_accuracy"):
                assert 0.0 <= p[key] <= 1.0, (key, p)
            for key in ("test_loss", "train_loss"):
                assert math.isfinite(p[key]) and p[key] > 0, (key, p)
            assert p["eval_seconds"] >= 0

    n = records["conventional"]["train_examples"]
    conv = records["conventional"]
    epochs = conv["config"]["epochs"]
    assert conv["points"][-1]["evaluations"] == epochs * n
    # A run beats chance level on real data after its training.
    chance = 1.0 / conv["outputs"]
    assert conv["points"][-1]["test_accuracy"] > chance
    for name, record in records.items():
        if record["kind"] != "subset":
            continue
        k = record["subset"]["size"]
        assert record["subset"]["ratio"] == pytest.approx(k * record["outputs"] / record["parameters"])
        assert record["subset"]["ratio"] > 1
        lbfgs = [ph for ph in record["phases"] if ph.get("optimizer") == "lbfgs"]
        lbfgs_cost = sum(ph["evaluations"] for ph in lbfgs) * k
        after_subset = [p for p in record["points"] if p["phase"] == "subset"][-1]
        assert after_subset["evaluations"] == lbfgs_cost
        finetune = record["config"]["finetune_epochs"]
        assert record["points"][-1]["evaluations"] == lbfgs_cost + finetune * n

    summary = json.loads((out / "summary.json").read_text())
    assert {r["run"] for r in summary["runs"]} == set(records)
    table = (out / "summary.md").read_text()
    assert "| run |" in table and "levelled off" in table
    for name in records:
        assert f"| {name} |" in table


# ----------------------------------------------------------------------------
# Cost accounting against a hand count, on a tiny run.
# ----------------------------------------------------------------------------


class _CountingLayer:
    """Builds a Keras identity layer that counts the examples it forwards."""

    def __new__(cls, counter):
        import keras
        import tensorflow as tf

        class Counting(keras.layers.Layer):
            def call(self, x):
                def count(batch):
                    if counter["enabled"]:
                        counter["examples"] += int(batch)
                    return np.float32(0.0)

                zero = tf.py_function(count, [tf.shape(x)[0]], tf.float32)
                zero.set_shape([])
                return x + tf.stop_gradient(zero)

            def compute_output_shape(self, input_shape):
                return input_shape

        return Counting()


def test_cost_accounting_matches_hand_count(tmp_path, monkeypatch):
    import keras

    rng = np.random.RandomState(0)
    n_train, n_test = 100, 50
    data = datasets.Dataset(
        name="mnist",
        x_train=rng.rand(n_train, 28, 28, 1).astype(np.float32),
        y_train=rng.randint(0, 10, n_train).astype(np.int32),
        x_test=rng.rand(n_test, 28, 28, 1).astype(np.float32),
        y_test=rng.randint(0, 10, n_test).astype(np.int32),
        num_classes=10,
    )
    counter = {"examples": 0, "enabled": True}

    def build_model(width, input_shape, num_classes):
        return keras.Sequential([
            keras.Input(input_shape),
            _CountingLayer(counter),
            keras.layers.Conv2D(width, 3, strides=3, activation="relu"),
            keras.layers.Flatten(),
            keras.layers.Dense(num_classes),
        ])

    # Count forward passes independently: the counter is reset at the start of
    # a run and switched off while metrics are evaluated.
    counted = {}
    original_record = common._Runner.record

    def record(self, phase, phase_epoch=None, iterations=None):
        if phase == "initial":
            counter["examples"] = 0
        counter["enabled"] = False
        original_record(self, phase, phase_epoch, iterations)
        counter["enabled"] = True
        counted.setdefault(self.log.data["run"], []).append(counter["examples"])

    monkeypatch.setattr(common._Runner, "record", record)

    config = common.Config(
        dataset="mnist", output_dir=str(tmp_path), width=2, batch_size=32,
        epochs=1, learning_rate=1e-3, fractions=(0.2,), ratios=(),
        subset_optimizer=("lbfgs", "adam"), lbfgs_iterations=3, subset_epochs=3,
        subset_eval_points=5, finetune_epochs=1, evals_per_epoch=2,
        train_eval_examples=0, eval_batch_size=64,
    )
    records, summary = common.run_benchmark(config, data, build_model)
    by_name = {r["run"]: r for r in records}
    assert set(by_name) == {"conventional", "lbfgs_f0.2", "adam_f0.2"}

    def evals(name):
        return [p["evaluations"] for p in by_name[name]["points"]]

    # Conventional: 100 examples, batches of 32 -> 4 batches (32, 32, 32, 4);
    # two points per epoch, after batch 2 (64 examples) and batch 4 (100).
    assert evals("conventional") == [0, 64, 100]
    # L-BFGS on K = 0.2 * 100 = 20 examples: e evaluations cost 20 * e; then one
    # fine-tuning epoch on the 100 examples, with points at 64 and 100.
    lbfgs = by_name["lbfgs_f0.2"]
    assert lbfgs["subset"]["size"] == 20
    e = lbfgs["phases"][0]["evaluations"]
    assert e >= lbfgs["phases"][0]["iterations"] + 1
    assert evals("lbfgs_f0.2") == [0, 20 * e, 20 * e + 64, 20 * e + 100]
    # Adam on the subset: 3 epochs of 20 examples (one batch each), a point
    # per epoch, then fine-tuning.
    assert evals("adam_f0.2") == [0, 20, 40, 60, 124, 160]
    # The independent count of examples forwarded in training agrees exactly.
    for name, record in by_name.items():
        assert counted[name] == evals(name), name

    # Seconds exclude evaluation time and grow; the files hold the same.
    for name, record in by_name.items():
        on_disk = json.loads((tmp_path / f"run_{name}_seed0.json").read_text())
        assert on_disk["points"] == json.loads(json.dumps(record["points"]))
        seconds = [p["seconds"] for p in record["points"]]
        assert seconds == sorted(seconds)
    runs = {r["run"]: r for r in summary["runs"]}
    # The conventional run reaches its own target (here: already at the start,
    # as random data keep it at chance level, so its ratio is undefined).
    assert runs["conventional"]["reached_target"] == 1
    assert runs["conventional"]["ttt_evaluations"]["mean"] is not None
    assert (tmp_path / "summary.md").exists()
    assert (tmp_path / "accuracy_vs_cost.png").read_bytes().startswith(PNG_MAGIC)
    assert (tmp_path / "gap_vs_q.png").read_bytes().startswith(PNG_MAGIC)


# ----------------------------------------------------------------------------
# Time-to-target and levelling-off logic.
# ----------------------------------------------------------------------------


def _point(phase, epoch, evaluations, seconds, accuracy):
    return {"phase": phase, "phase_epoch": epoch, "evaluations": evaluations,
            "seconds": seconds, "test_accuracy": accuracy, "test_loss": 1.0}


def test_time_to_target_and_summary():
    conv_points = [
        _point("initial", 0.0, 0, 0.0, 0.1),
        _point("train", 1.0, 1000, 10.0, 0.90),
        _point("train", 2.0, 2000, 20.0, 0.95),
        _point("train", 3.0, 3000, 30.0, 0.96),
    ]
    sub_points = [
        _point("initial", 0.0, 0, 0.0, 0.1),
        _point("subset", None, 150, 3.0, 0.80),
        _point("finetune", 1.0, 1150, 13.0, 0.958),
        _point("finetune", 2.0, 2150, 23.0, 0.962),
    ]
    assert common.time_to_target(conv_points, 0.957) == (3000, 30.0)
    assert common.time_to_target(sub_points, 0.957) == (1150, 13.0)
    assert common.time_to_target(sub_points, 0.99) == (None, None)
    conv = {"run": "conventional", "kind": "conventional", "seed": 0,
            "points": conv_points, "complete": True, "subset": None,
            "q_full": 10.0, "dataset": "x", "model": "m", "parameters": 100,
            "outputs": 10, "train_examples": 1000, "test_examples": 100,
            "augment": False}
    sub = dict(conv, run="lbfgs_q2", kind="subset", points=sub_points,
               subset={"optimizer": "lbfgs", "size": 20, "ratio": 2.0, "fraction": 0.02})
    config = common.Config(dataset="x", epochs=3, target_tolerance=0.3,
                           plateau_tolerance=0.2, output_dir="unused")
    # Last epoch gained 1 pp over the best earlier epoch: not levelled off.
    assert common.plateau_gain(conv) == pytest.approx(1.0)
    summary = common.summarize(config, [conv, sub])
    assert summary["conventional_levelled_off"] is False
    run = {r["run"]: r for r in summary["runs"]}["lbfgs_q2"]
    assert run["ttt_evaluations_ratio"]["mean"] == pytest.approx(1150 / 3000)
    assert run["ttt_seconds_ratio"]["mean"] == pytest.approx(13.0 / 30.0)
    assert run["gap_pp"]["mean"] == pytest.approx(0.2)
    table = common.summary_markdown(summary)
    assert "NOT levelled off" in table and "| lbfgs_q2 |" in table


# ----------------------------------------------------------------------------
# Configuration: presets and flags.
# ----------------------------------------------------------------------------


def test_presets_and_overrides():
    from benchmarks import cifar10, cifar100, mnist

    for module in (mnist, cifar10, cifar100):
        assert set(module.PRESETS) == {"smoke", "cpu", "paper"}
        for preset in module.PRESETS:
            config = common.make_config("mnist", module.PRESETS, preset)
            assert config.ratios or config.fractions
    config = common.make_config("mnist", mnist.PRESETS, "smoke", {"epochs": 7})
    assert config.epochs == 7 and config.width == mnist.PRESETS["smoke"]["width"]
    # Giving fractions drops the preset's ratios.
    config = common.make_config("mnist", mnist.PRESETS, "cpu", {"fractions": (0.1,)})
    assert config.fractions == (0.1,) and config.ratios == ()
    assert [s.name for s in common.run_specs(config)] == [
        "conventional", "lbfgs_f0.1", "adam_f0.1"]
    assert config.output_dir == os.path.join("results", "mnist")
    with pytest.raises(ValueError):
        common.Config(subset_optimizer=("sgd",))


def test_flags_override_only_when_given():
    from absl import flags

    from benchmarks import mnist

    common.define_flags()
    common.define_flags()  # idempotent
    try:
        flags.FLAGS(["prog", "--preset=smoke", "--epochs=5", "--ratios=3,6", "--augment"])
        config = common.config_from_flags("mnist", mnist.PRESETS)
    finally:
        flags.FLAGS.unparse_flags()
    assert config.preset == "smoke"
    assert config.epochs == 5 and config.ratios == (3.0, 6.0) and config.augment
    assert config.width == mnist.PRESETS["smoke"]["width"]
    assert config.train_examples == mnist.PRESETS["smoke"]["train_examples"]


# ----------------------------------------------------------------------------
# Data loading.
# ----------------------------------------------------------------------------


def test_missing_local_data_raises_helpful_error(tmp_path, monkeypatch):
    monkeypatch.delenv(datasets.ENV_VAR, raising=False)
    with pytest.raises(datasets.DataNotFoundError) as info:
        datasets.load_dataset("cifar10", local_data_dir=str(tmp_path))
    message = str(info.value)
    assert "cifar10.npz" in message
    assert "--local_data_dir" in message and datasets.ENV_VAR in message
    assert "tensorflow-datasets" in message
    # The environment variable is used when no folder is passed.
    monkeypatch.setenv(datasets.ENV_VAR, str(tmp_path / "nowhere"))
    with pytest.raises(datasets.DataNotFoundError, match="does not exist"):
        datasets.load_dataset("mnist")


def test_tfds_failure_raises_helpful_error(tmp_path, monkeypatch):
    monkeypatch.delenv(datasets.ENV_VAR, raising=False)
    with pytest.raises(datasets.DataNotFoundError) as info:
        datasets.load_dataset("mnist", data_dir=str(tmp_path), download=False)
    assert "KERAS_SUBSET_DATA_DIR" in str(info.value)
    assert "mnist.npz" in str(info.value)


def test_script_reports_missing_data(tmp_path):
    env = dict(os.environ, **{datasets.ENV_VAR: str(tmp_path)})
    proc = subprocess.run(
        [sys.executable, "-m", "benchmarks.mnist", "--preset=smoke",
         f"--output_dir={tmp_path / 'out'}"],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode != 0
    assert "mnist.npz" in proc.stderr and datasets.ENV_VAR in proc.stderr


def _write_idx(path, array):
    header = bytes([0, 0, 8, array.ndim]) + b"".join(
        int(d).to_bytes(4, "big") for d in array.shape
    )
    with gzip.open(path, "wb") as f:
        f.write(header + array.astype(np.uint8).tobytes())


def test_fashion_mnist_idx_loader(tmp_path):
    rng = np.random.RandomState(1)
    folder = tmp_path / datasets.FASHION_MNIST_SUBDIR
    folder.mkdir()
    arrays = {
        "x_train": rng.randint(0, 256, (30, 28, 28)),
        "y_train": rng.randint(0, 10, 30),
        "x_test": rng.randint(0, 256, (20, 28, 28)),
        "y_test": rng.randint(0, 10, 20),
    }
    for key, filename in datasets.FASHION_MNIST_FILES.items():
        _write_idx(str(folder / filename), arrays[key])
    np.testing.assert_array_equal(
        datasets.read_idx(str(folder / datasets.FASHION_MNIST_FILES["x_train"])),
        arrays["x_train"],
    )
    raw, source = datasets.load_arrays("fashion_mnist", local_data_dir=str(tmp_path))
    assert source == str(folder)
    assert raw["x_train"].shape == (30, 28, 28, 1) and raw["y_test"].shape == (20,)
    np.testing.assert_array_equal(raw["y_train"], arrays["y_train"])
    data = datasets.load_dataset("fashion_mnist", local_data_dir=str(folder),
                                 train_examples=10)
    assert data.x_train.shape == (10, 28, 28, 1) and data.x_test.shape == (20, 28, 28, 1)
    assert data.x_train.dtype == np.float32
    # Missing files: a helpful error.
    with pytest.raises(datasets.DataNotFoundError, match="dataset-fashion-mnist"):
        datasets.load_dataset("fashion_mnist", local_data_dir=str(tmp_path / "none"))
    bad = tmp_path / "bad.gz"
    with gzip.open(bad, "wb") as f:
        f.write(b"\x01\x02\x03\x04")
    with pytest.raises(ValueError):
        datasets.read_idx(str(bad))


def test_real_fashion_mnist_files():
    # The extra dataset: the Debian package dataset-fashion-mnist's files, or
    # the fashion-mnist subfolder of the local data folder.
    candidates = [
        os.path.join(os.environ.get(datasets.ENV_VAR, ""), datasets.FASHION_MNIST_SUBDIR),
        "/usr/share/datasets/fashion-mnist",
    ]
    folder = next((c for c in candidates if os.path.exists(
        os.path.join(c, datasets.FASHION_MNIST_FILES["x_train"]))), None)
    if folder is None:
        pytest.skip("Fashion-MNIST IDX files not installed (optional extra dataset)")
    raw, _ = datasets.load_arrays("fashion_mnist", local_data_dir=folder)
    assert raw["x_train"].shape == (60000, 28, 28, 1)
    assert raw["x_test"].shape == (10000, 28, 28, 1)
    assert np.bincount(raw["y_train"]).tolist() == [6000] * 10


def test_real_data_layout_and_normalization():
    folder = _data_dir("mnist.npz", "cifar100.npz")
    data = datasets.load_dataset("cifar100", local_data_dir=folder,
                                 train_examples=1000, test_examples=500)
    assert data.x_train.shape == (1000, 32, 32, 3) and data.num_classes == 100
    # Sorted by class on disk; the fixed shuffle mixes the classes in a slice.
    assert len(np.unique(data.y_train)) > 90
    x = data.x_train.astype(np.float64)
    np.testing.assert_allclose(x.mean(axis=(0, 1, 2)), 0.0, atol=1e-4)
    np.testing.assert_allclose(x.std(axis=(0, 1, 2)), 1.0, atol=1e-4)
    again = datasets.load_dataset("cifar100", local_data_dir=folder,
                                  train_examples=1000, test_examples=500)
    np.testing.assert_array_equal(data.y_train, again.y_train)


def test_pipelines_and_augmentation():
    rng = np.random.RandomState(0)
    x = rng.rand(70, 32, 32, 3).astype(np.float32)
    y = rng.randint(0, 10, 70).astype(np.int32)
    augmenter = datasets.make_augmenter(flip=True, translation=0.1, seed=0)
    ds = datasets.train_pipeline(x, y, 32, seed=0, augmenter=augmenter)
    batches = list(ds)
    assert [int(b[0].shape[0]) for b in batches] == [32, 32, 6]
    assert sorted(np.concatenate([b[1].numpy() for b in batches]).tolist()) == sorted(y.tolist())
    once = datasets.augment_once(x, augmenter)
    assert once.shape == x.shape and not np.allclose(once, x)
    assert [l.__class__.__name__ for l in augmenter.layers] == ["RandomTranslation", "RandomFlip"]
    assert len(datasets.make_augmenter(flip=False).layers) == 1


def test_models_parameter_counts():
    assert models.count_trainable(models.mnist_cnn(width=16)) == 12810
    assert models.count_trainable(models.cifar_cnn(width=16, num_classes=10)) == 33834
    assert models.count_trainable(models.cifar_cnn(width=16, num_classes=100)) == 126084
    # Q of the full training set is well above 1 for the preset widths.
    assert 60000 * 10 / models.count_trainable(models.mnist_cnn(width=16)) > 10
    assert 50000 * 100 / models.count_trainable(models.cifar_cnn(width=32, num_classes=100)) > 10
