"""The Q-curve script (benchmarks/q_curve.py): its flags, the widths it refuses, one smoke run end to end."""

import json
import os
import subprocess
import sys
import types

import numpy as np
import pytest
from absl import flags

from benchmark_helpers import PNG_MAGIC, REPO, data_dir
from benchmarks import config as config_lib
from benchmarks import datasets
from benchmarks import q_curve


def parsed(*args):
    values = flags.FlagValues()
    q_curve.define_flags(values)
    values(["q_curve", *args])
    return values


@pytest.mark.fast
def test_widths_are_checked_and_each_gets_its_own_folder():
    values = parsed("--dataset=mnist", "--widths=1,4", "--output_dir=/tmp/qc", "--seeds=2")
    configs, root = q_curve.width_configs(values, "mnist", q_curve.widths_from_flags(values, "mnist"))
    assert root == "/tmp/qc" and [c.width for c in configs] == [1, 4]
    assert [c.output_dir for c in configs] == ["/tmp/qc/mnist/w1", "/tmp/qc/mnist/w4"]
    # The curve's settings over the dataset's cpu preset, the flags given over both.
    c = configs[0]
    assert c.levelled_stop and c.runs == q_curve.CURVE_RUNS and c.seeds == 2
    assert c.plateau_patience == 3 and c.paper_ratios == (16, 32, 64, 128, 256)
    assert q_curve.widths_from_flags(parsed("--dataset=cifar10"), "cifar10") == (1, 2, 4, 8, 16)
    for bad, message in (("1,x", "integers >= 1"), ("0", "integers >= 1"), ("2,2", "each width once")):
        with pytest.raises(config_lib.ConfigError, match=message):
            q_curve.widths_from_flags(parsed("--dataset=mnist", f"--widths={bad}"), "mnist")
    with pytest.raises(config_lib.ConfigError, match="`--width` is not a flag of the Q-curve"):
        q_curve.width_configs(parsed("--dataset=mnist", "--width=4"), "mnist", (1,))
    with pytest.raises(config_lib.ConfigError, match="--route_cost_cap"):
        q_curve.width_configs(parsed("--dataset=mnist", "--route_cost_cap=0"), "mnist", (1,))


@pytest.mark.fast
def test_a_width_whose_q_full_is_below_one_is_refused_with_its_figure():
    data = types.SimpleNamespace(name="mnist", input_shape=(28, 28, 1), num_classes=10,
                                 x_train=np.zeros((60000, 1)))
    configs = [config_lib.Config(width=w) for w in (1, 200)]
    with pytest.raises(config_lib.ConfigError) as info:
        q_curve.check_widths(configs, data, q_curve.DATASETS["mnist"][0])
    message = str(info.value)
    assert "`--widths` value 200 gives Q_full = 0.73 < 1" in message and "P = 822,410" in message
    assert q_curve.check_widths(configs[:1], data, q_curve.DATASETS["mnist"][0]) == {
        1: pytest.approx(60000 * 10 / 540)}


@pytest.mark.fast
def test_paper_runs_keep_subsets_of_at_most_half_the_set():
    c = config_lib.Config(paper_ratios=(16, 32, 64))
    assert q_curve.paper_ratios_for(c, 100.0) == (16, 32)
    assert q_curve.paper_ratios_for(c, 20.0) == ()


@pytest.mark.fast
def test_the_script_refuses_a_missing_dataset_flag_in_one_line(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "benchmarks.q_curve", "--widths=1"], cwd=REPO,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode != 0 and "Traceback" not in proc.stderr
    assert [l for l in proc.stderr.splitlines() if l.startswith("ERROR:")] == [
        "ERROR: `--dataset` is required: one of mnist, fashion_mnist, cifar10."]


def test_smoke_run_of_one_width_end_to_end(tmp_path):
    env = dict(os.environ, **{datasets.ENV_VAR: str(data_dir("mnist.npz"))})
    proc = subprocess.run(
        [sys.executable, "-m", "benchmarks.q_curve", "--dataset=mnist", "--preset=smoke",
         "--widths=4", "--paper_iterations=12", f"--output_dir={tmp_path}"],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    width = tmp_path / "mnist" / "w4"
    records = {json.loads(p.read_text())["run"]: json.loads(p.read_text())
               for p in width.glob("run_*_seed0.json")}
    assert set(records) == {"conventional", "conventional_b256", "lbfgs_full", "progressive",
                            "progressive_adam", "paper_q2", "paper_q4"}
    n = records["lbfgs_full"]["train_examples"]
    assert records["lbfgs_full"]["stop_rule"]["rule"] == "levelled"
    assert records["lbfgs_full"]["phases"][0]["max_iterations"] == 30
    for name in ("paper_q2", "paper_q4", "progressive"):
        record = records[name]
        assert record["stop_rule"]["rule"] == "route"
        assert record["stop_rule"]["targets"].keys() == {"paper", "user"}
        stages = record["phases"][0]["stages"]
        # The cost is every stage's evaluations times its examples (no held-out checks in the
        # paper runs), and no run spends past the cap by more than one segment.
        assert record["points"][-1]["evaluations"] == sum(
            st["evaluations"] * st["size"] + st["example_forwards"] for st in stages)
        if name.startswith("paper"):
            # --paper_iterations caps each of its stages; lbfgs_full keeps the preset's 30.
            assert record["phases"][0]["max_iterations"] == 12
            assert all(st["iterations"] <= 12 for st in stages)
            assert [st["size"] for st in stages][-1] == n and len(stages) == 2
            assert stages[0]["example_forwards"] == 0
            assert stages[0]["size"] == record["subset"]["size"] < n
    summary = json.loads((width / "summary.json").read_text())
    assert {row["run"] for row in summary["sweep"]["rows"]} == {"paper_q2", "paper_q4"}
    curve = json.loads((tmp_path / "mnist" / "q_curve.json").read_text())
    assert [r["width"] for r in curve["rows"]] == [4]
    assert curve["rows"][0]["q_full"] == pytest.approx(n * 10 / 2346)
    assert (tmp_path / "q_curve.png").read_bytes().startswith(PNG_MAGIC)
    assert "| 4 | 2,346 |" in (tmp_path / "mnist" / "q_curve.md").read_text()
