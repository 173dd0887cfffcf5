"""Tests of `benchmarks.stats`: time-to-target, levelling off, the summary."""

import copy
import os
import subprocess
import sys

import pytest

from benchmark_helpers import REPO
from benchmark_helpers import point as _point
from benchmark_helpers import record as _record
from benchmarks import report
from benchmarks import resummarize
from benchmarks import stats
from benchmarks.config import Config

# Every test of this file is quick: all in the fast tier.
pytestmark = pytest.mark.fast




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


@pytest.mark.parametrize("module", ["benchmarks.stats", "benchmarks.report", "benchmarks.overview",
                                    "benchmarks.resummarize", "benchmarks.docs_tables"])
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


def test_stopping_rule_on_epoch_ends():
    # A phase's epoch ends, tolerance 0.2 pp, patience 2.
    assert not stats.should_stop([0.10, 0.90], 0.2, 2)
    # 0.901 gains 0.1 pp < 0.2 over 0.90: one epoch without gain; 0.9015 another (the
    # best earlier is 0.901 now): stop.
    assert stats.checks_without_gain([0.10, 0.90, 0.901], 0.2) == 1
    assert not stats.should_stop([0.10, 0.90, 0.901], 0.2, 2)
    assert stats.should_stop([0.10, 0.90, 0.901, 0.9015], 0.2, 2)
    # A gain of at least the tolerance over the best earlier epoch end restarts the count.
    assert stats.checks_without_gain([0.10, 0.90, 0.89, 0.903], 0.2) == 0
    # A drop and a recovery below the best earlier end are both epochs without gain.
    assert stats.should_stop([0.10, 0.90, 0.85, 0.90], 0.2, 2)
    assert stats.should_stop([0.10, 0.90, 0.85, 0.90], 0.0, 2) is False  # 0.90 >= 0.90
    # The levelling-off check of a record: Adam epoch ends only, every L-BFGS point.
    adam = _record("conventional", "conventional", 0, [
        _point("initial", 0.0, 0, 0.0, 0.1), _point("train", 0.5, 500, 5.0, 0.99),
        _point("train", 1.0, 1000, 10.0, 0.90), _point("train", 2.0, 2000, 20.0, 0.901),
        _point("train", 3.0, 3000, 30.0, 0.9005)])
    assert stats.check_accuracies(adam) == [0.1, 0.90, 0.901, 0.9005]
    assert stats.levelled_off(adam, 0.2, 2) and not stats.levelled_off(adam, 0.2, 3)


def test_both_frames_and_the_faster_adam_run():
    conv = _record("conventional", "conventional", 0, [
        _point("initial", 0.0, 0, 0.0, 0.1),
        _point("train", 1.0, 1000, 10.0, 0.95),
        _point("train", 2.0, 2000, 20.0, 0.97),
        _point("train", 3.0, 3000, 30.0, 0.98)])
    # At batch 512: more epochs to the user target (0.977) but fewer seconds.
    b512 = _record("conventional_b512", "conventional", 0, [
        _point("initial", 0.0, 0, 0.0, 0.1),
        _point("train", 1.0, 1000, 4.0, 0.90),
        _point("train", 2.0, 2000, 8.0, 0.96),
        _point("train", 3.0, 3000, 12.0, 0.975),
        _point("train", 4.0, 4000, 16.0, 0.978)])
    full = _record("lbfgs_full", "lbfgs_full", 0, [
        _point("initial", None, 0, 0.0, 0.1),
        _point("full", None, 10000, 50.0, 0.95),
        _point("full", None, 20000, 100.0, 0.96),
        _point("full", None, 30000, 150.0, 0.965)],
        full_train={"loss": 0.10, "accuracy": 0.97, "examples": 1000})
    prog = _record("progressive", "progressive", 0, [
        _point("initial", None, 0, 0.0, 0.1),
        _point("stage0", None, 500, 2.0, 0.80),
        _point("stage1", None, 2500, 8.0, 0.963),
        _point("stage2", None, 8000, 24.0, 0.979)],
        progressive={"first_size": 10, "last_size": 1000, "first_ratio": 1.0,
                     "last_ratio": 10.0})
    config = Config(dataset="x", epochs=3, target_tolerance=0.3, output_dir="unused")
    summary = stats.summarize(config, [conv, b512, full, prog])
    # User frame: target 0.98 - 0.003; the faster Adam run is conventional_b512 (16 s
    # against 30 s to 0.977), though it costs more (4000 against 3000).
    user = summary["frames"]["user"][0]
    assert user["target"] == pytest.approx(0.977)
    assert user["baseline"] == "conventional_b512"
    assert (user["evaluations"], user["seconds"]) == (4000, 16.0)
    # Paper frame: target 0.965 - 0.003 = 0.962, which lbfgs_full reaches at 30000, 150 s.
    paper = summary["frames"]["paper"][0]
    assert paper["target"] == pytest.approx(0.962)
    assert (paper["evaluations"], paper["seconds"]) == (30000, 150.0)
    runs = {r["run"]: r for r in summary["runs"]}
    p = runs["progressive"]
    assert p["paper"]["ttt_evaluations"]["mean"] == 2500
    assert p["paper"]["ttt_evaluations_ratio"]["mean"] == pytest.approx(2500 / 30000)
    assert p["paper"]["ttt_seconds_ratio"]["mean"] == pytest.approx(8.0 / 150.0)
    assert p["user"]["ttt_evaluations_ratio"]["mean"] == pytest.approx(8000 / 4000)
    assert p["user"]["ttt_seconds_ratio"]["mean"] == pytest.approx(24.0 / 16.0)
    assert p["paper"]["gap_pp"]["mean"] == pytest.approx(1.4)
    assert runs["conventional"]["user"]["ttt_seconds_ratio"]["mean"] == pytest.approx(30 / 16)
    assert runs["conventional_b512"]["user"]["ttt_seconds_ratio"]["mean"] == 1.0
    assert runs["lbfgs_full"]["paper"]["ttt_seconds_ratio"]["mean"] == 1.0
    # lbfgs_full never reaches the user target; the conventional runs reach the paper one.
    assert runs["lbfgs_full"]["user"]["reached"] == 0
    assert runs["conventional"]["paper"]["ttt_evaluations"]["mean"] == 2000
    # Without an lbfgs_full run there is no paper frame.
    assert stats.summarize(config, [conv, b512])["frames"]["paper"] == {}
    table = report.summary_markdown(summary)
    assert "paper: cost / lbfgs_full" in table and "user: time / fastest Adam" in table
    assert "`conventional_b512`" in table
    assert "| progressive | 1.00→10.00 | 10→1,000 |" in table


def test_sweep_gaps_and_the_smallest_q_within_tolerance():
    full = _record("lbfgs_full", "lbfgs_full", 0, [
        _point("initial", None, 0, 0.0, 0.1), _point("full", None, 9000, 90.0, 0.970)],
        full_train={"loss": 0.05, "accuracy": 0.99, "examples": 1000})
    records = [full]
    # Test accuracies by Q: gaps -5, -1, -0.2, -0.4, +0.1 pp: Q = 4 is the smallest
    # within 0.3 pp (though Q = 8 is not). The fit at Q = 2 ended by the iteration cap: its
    # +0.2 pp is no point of the sweep (an early-stopped subset, not its minimum).
    for q, accuracy, loss, reason in (
            (1, 0.92, 0.9, "converged: largest gradient entry 6e-09 <= tolerance 1e-08"),
            (2, 0.972, 0.3, "stopped: max_iterations (100) reached"),
            (4, 0.968, 0.1, "stopped: the line search found no further decrease (...)"),
            (8, 0.966, 0.08, "converged: ..."), (16, 0.971, 0.06, "converged: ...")):
        records.append(_record(
            f"sweep_q{q}", "sweep", 0,
            [_point("initial", None, 0, 0.0, 0.1), _point("subset", None, q * 100, q, accuracy)],
            subset={"optimizer": "lbfgs", "size": q * 10, "ratio": float(q), "fraction": q / 100},
            full_train={"loss": loss, "accuracy": 0.9, "examples": 1000},
            phases=[{"phase": "pretrain", "stages": [{"reason": reason}]}]))
    config = Config(dataset="x", target_tolerance=0.3, output_dir="unused")
    summary = stats.summarize(config, records, skipped=["sweep_q32: Q = 32 needs K = ..."])
    sweep = summary["sweep"]
    gaps = [row["test_accuracy_gap_pp"]["mean"] for row in sweep["rows"]]
    assert gaps[0] == pytest.approx(-5.0) and gaps[1] is None
    assert gaps[2:] == pytest.approx([-0.2, -0.4, 0.1])
    assert sweep["rows"][1]["cut_gap_pp"]["mean"] == pytest.approx(0.2)
    assert [row["seeds_cut_short"] for row in sweep["rows"]] == [0, 1, 0, 0, 0]
    losses = [row["train_loss_gap"]["mean"] for row in sweep["rows"]]
    assert losses[1] is None
    assert losses[:1] + losses[2:] == pytest.approx([0.85, 0.05, 0.03, 0.01])
    assert [row["within_tolerance"] for row in sweep["rows"]] == [False, False, True, False, True]
    assert sweep["smallest_q_within_tolerance"] == 4.0
    table = report.summary_markdown(summary)
    assert "Smallest Q whose mean test-accuracy gap is within 0.3 pp: **4**" in table
    assert "(1 seed not at the minimum (a cap or a stall), left out: 0.20)" in table
    assert "Skipped sweep_q32" in table


def test_a_subset_fit_that_killed_the_network_is_no_minimum():
    # CIFAR-10 at width 1 of the Q-curve (real runs): the paper run at Q = 64 left the one
    # first-layer filter dead after 4 iterations (loss ln 10, zero gradient: "converged"); at
    # Q = 128 the subset was fitted to a true minimum.
    folder = os.path.join(REPO, "docs", "results", "q_curve", "cifar10", "w1")
    records = {(r["run"], r["seed"]): r for r in resummarize.load_records(folder)}
    dead, fitted = records[("paper_q64", 0)], records[("paper_q128", 0)]
    assert stats._pretrain_phases(dead)[0]["stages"][0]["reason"].startswith("converged:")
    assert not stats.subset_phase_at_minimum(dead)
    assert stats.subset_phase_at_minimum(fitted)
    # Runs of later code carry pretrain's own check of the stage's end (`Stage.dead_model`).
    flagged = copy.deepcopy(fitted)
    stats._pretrain_phases(flagged)[0]["stages"][0]["dead_model"] = True
    assert not stats.subset_phase_at_minimum(flagged)
    summary = stats.summarize(resummarize.summary_settings(list(records.values())),
                              list(records.values()))
    rows = {row["run"]: row for row in summary["sweep"]["rows"]}
    assert rows["paper_q64"]["test_accuracy_gap_pp"]["mean"] is None
    assert rows["paper_q64"]["cut_gap_pp"]["mean"] < -20
    assert rows["paper_q128"]["seeds_at_minimum"] == 3


def test_a_sweep_fit_the_iteration_cap_ended_is_no_point_of_the_sweep():
    # CIFAR-10's `cpu` preset (real runs): every sweep fit ran into its 100 iterations, so
    # none is at its minimum; Q = 32 came within 0.3 pp that way (-0.19) but is no Q*.
    folder = os.path.join(REPO, "docs", "results", "cifar10")
    records = resummarize.load_records(folder)
    sweeps = [r for r in records if r["kind"] == "sweep"]
    assert len(sweeps) == 6 and not any(stats.subset_phase_at_minimum(r) for r in sweeps)
    summary = stats.summarize(resummarize.summary_settings(records), records)
    rows = {row["run"]: row for row in summary["sweep"]["rows"]}
    assert summary["sweep"]["smallest_q_within_tolerance"] is None
    assert rows["sweep_q32"]["cut_gap_pp"]["mean"] == pytest.approx(-0.19, abs=0.005)
    assert all(row["test_accuracy_gap_pp"]["mean"] is None for row in rows.values())
    # MNIST's: L-BFGS converged (or found no decrease) up to Q = 16; the cap ended Q = 32.
    records = resummarize.load_records(os.path.join(REPO, "docs", "results", "mnist"))
    at_minimum = {r["run"]: stats.subset_phase_at_minimum(r) for r in records if r["kind"] == "sweep"}
    assert at_minimum == {"sweep_q1": True, "sweep_q2": True, "sweep_q4": True, "sweep_q8": True,
                          "sweep_q16": True, "sweep_q32": False}


def test_cross_seed_paper_ratios_against_the_reference_seed():
    full = _record("lbfgs_full", "lbfgs_full", 0, [
        _point("initial", None, 0, 0.0, 0.1), _point("full", None, 10000, 100.0, 0.903)])
    # The paper target of seed 0 is 0.90: seed 0 reaches it at 2,000, seed 1 at 5,000, seed 2
    # never; seed 1 has no lbfgs_full of its own, so its paper frame is only cross-seed.
    progs = [_record("progressive", "progressive", seed, [
        _point("initial", None, 0, 0.0, 0.1), _point("stage0", None, cost, secs, acc)])
        for seed, cost, secs, acc in ((0, 2000, 10.0, 0.95), (1, 5000, 40.0, 0.91),
                                      (2, 9000, 90.0, 0.85))]
    config = Config(dataset="x", epochs=3, output_dir="unused")
    run = {r["run"]: r for r in stats.summarize(config, [full, *progs])["runs"]}["progressive"]
    assert run["paper"]["seeds"] == 1  # the own-seed frame: seed 0 only
    cross = run["paper_cross_seed"]
    assert cross["reference_seed"] == 0
    assert [e["ttt_evaluations_ratio"] for e in cross["per_seed"]] == [
        pytest.approx(0.2), pytest.approx(0.5), None]
    assert [e["ttt_seconds_ratio"] for e in cross["per_seed"]] == [
        pytest.approx(0.1), pytest.approx(0.4), None]
    assert cross["ttt_evaluations_ratio"]["mean"] == pytest.approx(0.35)
    assert (cross["reached"], cross["seeds"]) == (2, 3)
    # Seed 0's cross-seed ratio is its own paper ratio; no lbfgs_full: no cross-seed frame.
    assert run["paper"]["ttt_evaluations_ratio"]["mean"] == pytest.approx(0.2)
    assert stats.cross_seed_paper(progs, {}) is None


def test_report_order_follows_the_run_kinds():
    records = [_record("sweep_q2", "sweep", 0, [], subset={"ratio": 2.0}),
               _record("sweep_q1", "sweep", 0, [], subset={"ratio": 1.0}),
               _record("conventional_b512", "conventional", 1, [], batch_size=512),
               _record("conventional", "conventional", 0, [], batch_size=128),
               _record("lbfgs_full", "lbfgs_full", 0, [])]
    names = [r["run"] for r in sorted(records, key=stats.report_order)]
    assert names == ["conventional", "conventional_b512", "lbfgs_full", "sweep_q1", "sweep_q2"]


def test_the_sweep_leaves_out_subset_phases_a_cap_cut_short_of_their_minimum():
    # Fashion-MNIST at width 2 of the Q-curve (real runs): at Q = 256 the cost cap ended the
    # subset phase of seeds 0 and 1 before their own minimum, seed 2 reached it; at Q = 16 and
    # 128 the iteration cap (1,000) ended seed 0's; at Q = 32 and 64 the minimum rule did.
    folder = os.path.join(REPO, "docs", "results", "q_curve", "fashion_mnist", "w2")
    records = resummarize.load_records(folder)
    at_minimum = {(r["run"], r["seed"]): stats.subset_phase_at_minimum(r)
                  for r in records if r["kind"] == "paper"}
    assert at_minimum == {("paper_q16", 0): False, ("paper_q32", 0): True, ("paper_q64", 0): True,
                          ("paper_q128", 0): False, ("paper_q256", 0): False,
                          ("paper_q256", 1): False, ("paper_q256", 2): True}
    summary = stats.summarize(resummarize.summary_settings(records), records)
    rows = {row["run"]: row for row in summary["sweep"]["rows"]}
    q256 = rows["paper_q256"]
    assert (q256["seeds_at_minimum"], q256["seeds_cut_short"]) == (1, 2)
    # The mean is seed 2's own gap; the cut seeds' gaps are kept apart.
    seed2 = next(r for r in records if r["run"] == "paper_q256" and r["seed"] == 2)
    ref2 = next(r for r in records if r["run"] == "lbfgs_full" and r["seed"] == 2)
    assert q256["test_accuracy_gap_pp"]["mean"] == pytest.approx(
        100.0 * (stats.subset_phase_end(seed2)["test_accuracy"] - ref2["points"][-1]["test_accuracy"]))
    assert q256["cut_gap_pp"]["mean"] is not None
    for name in ("paper_q16", "paper_q128"):
        assert rows[name]["test_accuracy_gap_pp"]["mean"] is None and not rows[name]["within_tolerance"]
        assert rows[name]["cut_gap_pp"]["mean"] < 0
    # Q* is decided by phases at their minimum only.
    within = [row["ratio"] for row in summary["sweep"]["rows"] if row["within_tolerance"]]
    assert summary["sweep"]["smallest_q_within_tolerance"] == (min(within) if within else None)
    table = report.summary_markdown(summary)
    assert "(2 seeds not at the minimum (a cap or a stall), left out: " in table
    # A Q whose every seed was cut short has no test accuracy at a minimum, and says so.
    q16 = next(line for line in table.splitlines() if line.startswith("| paper_q16 (subset phase)"))
    assert q16.split(" | ")[3] == "—" and "not reached" not in q16
