"""Tests of `benchmarks.stats`: time-to-target, levelling off, the summary."""

import subprocess
import sys

import pytest

from benchmark_helpers import REPO
from benchmarks import report
from benchmarks import stats
from benchmarks.config import Config


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
    assert stats.time_to_target(conv_points, 0.957) == (3000, 30.0)
    assert stats.time_to_target(sub_points, 0.957) == (1150, 13.0)
    assert stats.time_to_target(sub_points, 0.99) == (None, None)
    conv = {"run": "conventional", "kind": "conventional", "seed": 0,
            "points": conv_points, "complete": True, "subset": None,
            "q_full": 10.0, "dataset": "x", "model": "m", "parameters": 100,
            "outputs": 10, "train_examples": 1000, "test_examples": 100,
            "augment": False}
    sub = dict(conv, run="lbfgs_q2", kind="subset", points=sub_points,
               subset={"optimizer": "lbfgs", "size": 20, "ratio": 2.0, "fraction": 0.02})
    config = Config(dataset="x", epochs=3, target_tolerance=0.3,
                    plateau_tolerance=0.2, output_dir="unused")
    # Last epoch gained 1 pp over the best earlier epoch: not levelled off.
    assert stats.plateau_gain(conv) == pytest.approx(1.0)
    summary = stats.summarize(config, [conv, sub])
    assert summary["conventional_levelled_off"] is False
    run = {r["run"]: r for r in summary["runs"]}["lbfgs_q2"]
    assert run["ttt_evaluations_ratio"]["mean"] == pytest.approx(1150 / 3000)
    assert run["ttt_seconds_ratio"]["mean"] == pytest.approx(13.0 / 30.0)
    assert run["gap_pp"]["mean"] == pytest.approx(0.2)
    table = report.summary_markdown(summary)
    assert "NOT levelled off" in table and "| lbfgs_q2 |" in table


@pytest.mark.parametrize("module", ["benchmarks.stats", "benchmarks.report", "benchmarks.overview"])
def test_summary_modules_import_neither_tensorflow_nor_keras_nor_absl(module):
    # In a fresh interpreter (this one has imported TensorFlow already).
    code = (
        f"import sys; import {module}; "
        "print(sorted(m for m in sys.modules "
        "if m.split('.')[0] in ('tensorflow', 'keras', 'absl', 'keras_subset')))"
    )
    proc = subprocess.run([sys.executable, "-c", code], cwd=REPO,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]"
