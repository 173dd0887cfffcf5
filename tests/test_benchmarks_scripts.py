"""End to end: each benchmark script run as a subprocess (`python -m benchmarks.<name>`).

The smoke runs use the `smoke` preset on real data from the folder named by
`KERAS_SUBSET_DATA_DIR` (see `benchmarks/README.md`); they take a few minutes.
"""

import json
import math
import os
import subprocess
import sys

import pytest

from benchmark_helpers import PNG_MAGIC, REPO, data_dir
from benchmarks import datasets


def _run_script(script, *args, data_folder, timeout=300):
    """Runs `python -m benchmarks.<script> ARGS` with `KERAS_SUBSET_DATA_DIR=data_folder`."""
    env = dict(os.environ, **{datasets.ENV_VAR: str(data_folder)})
    return subprocess.run(
        [sys.executable, "-m", f"benchmarks.{script}", *args],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout,
    )


def _error_lines(proc):
    """The `ERROR: ...` lines a script printed on stderr."""
    return [line for line in proc.stderr.splitlines() if line.startswith("ERROR:")]


@pytest.mark.parametrize("script,data_file", [
    ("mnist", "mnist.npz"),
    ("cifar10", "cifar10.npz"),
    ("cifar100", "cifar100.npz"),
])
def test_script_smoke_end_to_end(script, data_file, tmp_path):
    folder = data_dir(data_file)
    out = tmp_path / "out"
    proc = _run_script(script, "--preset=smoke", f"--output_dir={out}",
                       data_folder=folder, timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]

    for name in ("summary.md", "summary.json", "accuracy_vs_cost.png", "gap_vs_q.png"):
        assert (out / name).exists(), name
    for name in ("accuracy_vs_cost.png", "gap_vs_q.png"):
        data = (out / name).read_bytes()
        assert data.startswith(PNG_MAGIC) and len(data) > 5000, name

    run_files = sorted(out.glob("run_*_seed0.json"))
    names = [p.name for p in run_files]
    # Every run kind, the sweep as far as the data allows.
    for name in ("conventional", "lbfgs_full", "progressive", "progressive_adam"):
        assert f"run_{name}_seed0.json" in names, names
    for prefix in ("run_conventional_b", "run_lbfgs_q", "run_sweep_q"):
        assert any(n.startswith(prefix) for n in names), names
    records = {}
    for path in run_files:
        record = json.loads(path.read_text())
        records[record["run"]] = record
        assert record["complete"] is True
        points = record["points"]
        assert points[0]["phase"] == "initial" and points[0]["evaluations"] == 0
        # The cost grows at every point; only a stage's end (the weights it kept) may come at
        # the cost of the point before.
        for a, b in zip(points, points[1:]):
            assert b["evaluations"] > a["evaluations"] or (
                b.get("stage_end") and b["evaluations"] == a["evaluations"]), (a, b)
        seconds = [p["seconds"] for p in points]
        assert all(b >= a for a, b in zip(seconds, seconds[1:])), seconds
        for p in points:
            for key in ("test_accuracy", "train_accuracy"):
                assert 0.0 <= p[key] <= 1.0, (key, p)
            for key in ("test_loss", "train_loss"):
                assert math.isfinite(p[key]) and p[key] > 0, (key, p)
            assert p["eval_seconds"] >= 0
        assert record["full_train"]["examples"] == record["train_examples"]

    n = records["conventional"]["train_examples"]
    conv = records["conventional"]
    # Stopped by the stopping rule or at the cap of --epochs, a whole number of epochs.
    epochs = conv["phases"][0]["epochs"]
    assert 1 <= epochs <= conv["config"]["epochs"]
    assert conv["points"][-1]["evaluations"] == epochs * n
    # A run beats chance level on real data after its training.
    chance = 1.0 / conv["outputs"]
    assert conv["points"][-1]["test_accuracy"] > chance
    for name, record in records.items():
        if record["kind"] == "subset":
            k = record["subset"]["size"]
            assert record["subset"]["ratio"] == pytest.approx(
                k * record["outputs"] / record["parameters"])
            assert record["subset"]["ratio"] > 1
            lbfgs = [ph for ph in record["phases"] if ph.get("optimizer") == "lbfgs"]
            lbfgs_cost = sum(ph["evaluations"] for ph in lbfgs) * k
            after_subset = [p for p in record["points"] if p["phase"] == "subset"][-1]
            assert after_subset["evaluations"] == lbfgs_cost
            finetune = record["phases"][-1]
            assert finetune["phase"] == "finetune"
            assert 1 <= finetune["epochs"] <= record["config"]["finetune_epochs"]
            assert record["points"][-1]["evaluations"] == lbfgs_cost + finetune["epochs"] * n
        if record["kind"] in ("lbfgs_full", "progressive", "progressive_adam", "sweep"):
            pretrain = record["phases"][0]
            cost = pretrain["example_gradients"] + pretrain["example_forwards"]
            assert cost == sum(st["evaluations"] * st["size"] + st["example_forwards"]
                               for st in pretrain["stages"])
            last = [p for p in record["points"] if p["phase"] != "finetune"][-1]
            assert last["evaluations"] == cost
        if record["kind"] == "sweep":
            assert record["train_eval_examples"] == n  # its points measure all of them
    assert len(records["progressive"]["phases"][0]["stages"]) >= 2
    assert records["progressive"]["phases"][0]["stages"][-1]["size"] == n

    summary = json.loads((out / "summary.json").read_text())
    assert {r["run"] for r in summary["runs"]} == set(records)
    assert summary["frames"]["paper"] and summary["frames"]["user"]
    assert summary["sweep"]["rows"] and summary["sweep"]["skipped"]
    table = (out / "summary.md").read_text()
    assert "| run |" in table and "levelled off" in table
    assert "paper: cost / lbfgs_full" in table and "user: cost / fastest Adam" in table
    assert "## Stages of the L-BFGS pretrain runs" in table and "## Q sweep" in table
    for name in records:
        assert f"| {name} |" in table


@pytest.mark.fast
def test_script_reports_missing_data(tmp_path):
    proc = _run_script("mnist", "--preset=smoke", f"--output_dir={tmp_path / 'out'}",
                       data_folder=tmp_path)
    assert proc.returncode != 0
    assert "mnist.npz" in proc.stderr and datasets.ENV_VAR in proc.stderr


@pytest.mark.parametrize("args,flag", [
    (["--ratios=-1"], "--ratios"),
    (["--train_examples=-5"], "--train_examples"),
    (["--epochs=abc"], "--epochs"),  # a value absl itself cannot parse
    (["--runs=conventional,bogus"], "--runs"),
    (["--lbfgs_chunk_size=-3"], "--lbfgs_chunk_size"),
    (["--growth=0.5"], "--growth"),
    (["--plateau_patience=0"], "--plateau_patience"),
    (["--check_every=0"], "--check_every"),
])
def test_script_refuses_bad_flag_value_in_one_line(args, flag, tmp_path):
    # The data folder is empty: the value must be refused before any data is
    # loaded (else the error would be the missing mnist.npz).
    out = tmp_path / "out"
    proc = _run_script("mnist", "--preset=smoke", f"--output_dir={out}", *args,
                       data_folder=tmp_path)
    assert proc.returncode != 0
    assert "Traceback" not in proc.stderr, proc.stderr[-3000:]
    errors = _error_lines(proc)
    assert len(errors) == 1 and flag in errors[0], proc.stderr[-3000:]
    assert "mnist.npz" not in proc.stderr
    assert not out.exists()


@pytest.mark.parametrize("args,message", [
    # Q = 1000 needs more than the 1,000 examples of the smoke preset.
    (["--ratios=4,1000"], "`--ratios` value 1000"),
    (["--progressive_ratio=1000"], "`--progressive_ratio` value 1000"),
    # 0.1 of 1,000 examples is fewer than the first subset's 235 (Q = 1).
    (["--progressive_max_fraction=0.1"], "`--progressive_max_fraction` (0.1: 100 examples)"),
])
def test_script_refuses_subsets_beyond_the_training_set(args, message, tmp_path):
    # Refused once P and N are known, before the first run starts.
    out = tmp_path / "out"
    proc = _run_script("mnist", "--preset=smoke", f"--output_dir={out}", *args,
                       data_folder=data_dir("mnist.npz"))
    assert proc.returncode != 0
    assert "Traceback" not in proc.stderr, proc.stderr[-3000:]
    errors = _error_lines(proc)
    assert len(errors) == 1 and message in errors[0], proc.stderr[-3000:]
    assert not list(out.glob("run_*"))


def test_script_reports_damaged_data(tmp_path):
    (tmp_path / "mnist.npz").write_bytes(b"PK\x03\x04 truncated")
    proc = _run_script("mnist", "--preset=smoke", f"--output_dir={tmp_path / 'out'}",
                       data_folder=tmp_path)
    assert proc.returncode != 0
    assert "Traceback" not in proc.stderr, proc.stderr[-3000:]
    errors = _error_lines(proc)
    assert len(errors) == 1 and "mnist.npz" in errors[0] and "damaged" in errors[0]
    assert "tools/setup.sh" in proc.stderr
