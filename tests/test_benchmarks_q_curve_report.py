"""The Q-curve's rows, answers, table and figure (benchmarks/q_curve_report.py), on hand-made summaries."""

import json
import os

import pytest

from benchmark_helpers import PNG_MAGIC
from benchmarks import q_curve_report

pytestmark = pytest.mark.fast


def run(name, kind, paper, user, ratio=None, levelled=True, loss=0.2):
    """A run of a summary.json: per-seed paper-frame cost ratios and user-frame time ratios
    (`None`: not reached)."""
    per_seed = [{"seed": s, "paper": {"ttt_evaluations_ratio": p},
                 "user": {"ttt_seconds_ratio": u, "ttt_evaluations_ratio": u},
                 "lbfgs_reason": "--levelled_stop: levelled off" if kind == "lbfgs_full" else None}
                for s, (p, u) in enumerate(zip(paper, user))]
    return {"run": name, "kind": kind, "ratio": ratio, "per_seed": per_seed,
            "final_test_accuracy": {"mean": 0.95, "std": None},
            "full_train_loss": {"mean": loss, "std": None},
            "total_evaluations": {"mean": 1e6, "std": None},
            "levelled_off": [levelled] * len(per_seed)}


def summary(q_full, progressive, paper_runs, q_star, levelled=True, user=(3.0,), ref_loss=0.2,
            gaps=()):
    seeds = len(progressive)
    runs = [
        run("conventional", "conventional", [0.01] * seeds, [1.0] * seeds),
        run("lbfgs_full", "lbfgs_full", [1.0] * seeds, list(user) * seeds, levelled=levelled,
            loss=ref_loss),
        run("progressive", "progressive", progressive, [5.0] * seeds),
    ] + [run(f"paper_q{q:g}", "paper", ratios, [2.0] * seeds, ratio=q) for q, ratios in paper_runs]
    return {"parameters": 100, "train_examples": 1000, "q_full": q_full, "seeds": list(range(seeds)),
            "runs_missing": [], "runs": runs,
            "frames": {"paper": {s: {"evaluations": 5000} for s in range(seeds)}},
            "target_tolerance_pp": 0.3,
            "sweep": {"smallest_q_within_tolerance": q_star, "rows": [
                {"ratio": q, "test_accuracy_gap_pp": {"mean": g, "std": None}} for q, g in gaps]}}


def write_width(root, dataset, width, data):
    folder = os.path.join(root, dataset, f"w{width}")
    os.makedirs(folder)
    with open(os.path.join(folder, "summary.json"), "w") as f:
        json.dump(data, f)


def test_a_row_takes_the_best_paper_route_that_reached_in_every_seed():
    row = q_curve_report.row(2, summary(
        500.0, [0.3, 0.4], [(16, [0.05, None]), (32, [0.2, 0.3]), (64, [0.25, 0.15])], q_star=32))
    # paper_q16 missed seed 1; of the others paper_q64 has the least mean (0.20 against 0.25).
    assert row["best_paper"]["run"] == "paper_q64"
    assert row["best_paper"]["paper"]["mean"] == pytest.approx(0.2)
    assert row["best_paper"]["paper"]["min"] == 0.15 and row["best_paper"]["paper"]["max"] == 0.25
    q16 = next(p for p in row["paper_runs"] if p["run"] == "paper_q16")
    assert q16["paper"]["mean"] is None and q16["paper"]["reached"] == 1
    assert row["bound"] == pytest.approx(500.0 / 32)
    assert row["reference"]["levelled"] and row["reference"]["cost_to_target"] == [5000, 5000]
    # In the user frame the best L-BFGS route is a paper run (2.0) before lbfgs_full (3.0).
    assert row["best_user"]["user"]["mean"] == pytest.approx(2.0)


def test_the_answers_count_only_references_at_their_minimum_and_every_larger_q_full(tmp_path):
    root = str(tmp_path)
    # Width 1's reference levelled off on a plateau: every other run ended at 0.2 against 0.3.
    write_width(root, "mnist", 1, summary(2000.0, [0.01, 0.02, 0.03], [(64, [0.2] * 3)], 64,
                                          ref_loss=0.3))
    write_width(root, "mnist", 2, summary(1000.0, [0.08, 0.12, 0.09], [(64, [0.2] * 3)], 64))
    write_width(root, "mnist", 4, summary(500.0, [0.4], [(64, [0.3])], 64, user=(0.9,)))
    # Width 8 saves half, but against a reference that never levelled off: no evidence either way.
    write_width(root, "mnist", 8, summary(250.0, [0.6], [(64, [0.7])], 64, levelled=False))
    write_width(root, "mnist", 16, summary(100.0, [0.45], [], None))
    write_width(root, "mnist", 32, summary(50.0, [0.9], [], None))
    curve = q_curve_report.load(root, "mnist")
    assert [r["q_full"] for r in curve["rows"]] == [50.0, 100.0, 250.0, 500.0, 1000.0, 2000.0]
    a = curve["answers"]
    # 2000 (plateau) and 250 (not levelled) are passed over: half from 100, not from 50 (0.9).
    assert a["levelled_q_full"] == [50.0, 100.0, 500.0, 1000.0]
    assert a["half_from_q_full"] == 100.0
    assert [h["q_full"] for h in a["half_at"]] == [100.0, 500.0, 1000.0]
    assert a["tenth_at"] == [{"q_full": 1000.0, "run": "progressive", "mean": pytest.approx(0.0966666),
                              "seeds": 3}]
    assert a["references_on_plateau"] == [{"q_full": 2000.0, "run": "progressive", "mean": pytest.approx(0.02)}]
    # The user frame needs no levelled reference: lbfgs_full at 0.9 at Q_full 500, but 2.0 above.
    assert a["beats_adam_from_q_full"] is None
    assert a["largest_q_full"] == 2000.0
    table = q_curve_report.curve_markdown(curve)
    assert "| 2 | 100 | 1000.0 |" in table and "0.097 [0.080–0.120] (3 seeds)" in table
    assert "from Q_full = 100.0 on" in table and "Q_full 1000.0 (progressive, 0.097, 3 seed(s))" in table
    assert "At Q_full = 2000.0 `lbfgs_full` levelled off on a plateau" in table
    assert "| 0.3000 (**0.2000**) |" in table and "| 0.2000 |" in table
    assert "**no**" in table  # width 8's reference
    front = q_curve_report.headline([root])
    assert "| mnist | 1 | 2000.0 | yes, yes, yes (on a plateau) |" in front
    assert "0.200 [0.200–0.200] (3 seeds), Q = 64" in front
    assert "- mnist: half (<= 0.5) from Q_full = 100.0 on; a tenth (<= 0.1) at 1000.0;" in front


def test_write_makes_the_files_and_one_figure_over_every_dataset(tmp_path):
    root = str(tmp_path)
    write_width(root, "mnist", 1, summary(1000.0, [0.2], [(64, [0.1])], 64))
    write_width(root, "cifar10", 1, summary(600.0, [0.5], [(16, [0.4])], None))
    os.makedirs(os.path.join(root, "not_a_dataset"))
    assert q_curve_report.datasets_under(root) == ["cifar10", "mnist"]
    q_curve_report.write(root, "mnist")
    folder = tmp_path / "mnist"
    assert json.loads((folder / "q_curve.json").read_text())["rows"][0]["best_paper"]["run"] == "paper_q64"
    assert (folder / "q_curve.md").read_text().startswith("# Q-curve of mnist")
    png = (tmp_path / "q_curve.png").read_bytes()
    assert png.startswith(PNG_MAGIC) and len(png) > 10000
    assert q_curve_report.load(root, "fashion_mnist") == {
        "dataset": "fashion_mnist", "rows": [], "answers": q_curve_report.answers([])}


def test_the_front_page_row_says_how_many_minutes_the_widths_runs_took(tmp_path):
    root = str(tmp_path)
    write_width(root, "mnist", 1, summary(1000.0, [0.2], [(64, [0.1])], 64))
    folder = tmp_path / "mnist" / "w1"
    (folder / "run_lbfgs_full_seed0.json").write_text(json.dumps({"total_seconds": 1500.0, "total_eval_seconds": 300.0}))
    (folder / "run_progressive_seed0.json").write_text(json.dumps({"total_seconds": 600.0}))
    (folder / "run_paper_q64_seed0.partial.json").write_text(json.dumps({"total_seconds": 9e9}))  # unfinished: not counted
    assert q_curve_report.load(root, "mnist")["rows"][0]["minutes"] == pytest.approx(40.0)
    assert q_curve_report.headline([root]).splitlines()[2].endswith("| 40 |")


def test_a_width_with_runs_still_missing_says_not_run_not_none_reached(tmp_path):
    root = str(tmp_path)
    partial = summary(100.0, [0.3], [], None)
    # Only Adam has run: no reference, no route, no paper run yet.
    partial["runs"] = [r for r in partial["runs"] if r["kind"] == "conventional"]
    partial["runs_missing"] = ["lbfgs_full", "progressive", "progressive_adam"]
    write_width(root, "mnist", 8, partial)
    write_width(root, "mnist", 4, summary(250.0, [0.3], [(16, [None])], None))
    rows = q_curve_report.headline([root]).splitlines()
    assert rows[2] == ("| mnist | 4 | 250.0 | yes | 0.300 (1 seed) | none reached | none | no fit | "
                       "2.000 (1 seed), `paper_q16` | 0 |")
    assert rows[3] == ("| mnist | 8 (partial: 3 runs missing) | 100.0 | n/a | not run | not run | none | "
                       "— (no `lbfgs_full` yet) | not run | 0 |")
    table = q_curve_report.curve_markdown(q_curve_report.load(root, "mnist"))
    assert "| 8 | 100 | 100.0 | n/a | n/a | n/a | n/a | not run | — |" in table
    assert "*partial: 3 runs missing*" in table


def test_a_route_that_missed_a_seed_shows_the_ratios_of_the_seeds_that_reached():
    row = q_curve_report.row(1, summary(1000.0, [0.25, None, None], [(128, [0.38, None, 0.17])], None))
    assert q_curve_report._cell(row["routes"]["progressive"]["paper"]) == "not reached (1/3); reached: 0.250"
    q128 = row["paper_runs"][0]["paper"]
    assert q_curve_report._cell(q128) == "not reached (2/3); reached: 0.380, 0.170"


def test_a_levelled_reference_that_no_route_matched_in_every_seed_is_evidence_of_no_saving(tmp_path):
    root = str(tmp_path)
    write_width(root, "fashion_mnist", 1, summary(1000.0, [0.25, None, None], [(128, [0.38, None, 0.17])], None))
    write_width(root, "fashion_mnist", 2, summary(500.0, [0.3, 0.4, 0.35], [], None))
    a = q_curve_report.load(root, "fashion_mnist")["answers"]
    assert a["levelled_q_full"] == [500.0, 1000.0]
    # 500 saves half, but the larger 1000 did not: "from 500 on" would be false.
    assert a["half_from_q_full"] is None
    # ... but the width that did save half is named, with its route and seeds.
    assert a["half_at"] == [{"q_full": 500.0, "run": "progressive", "mean": pytest.approx(0.35), "seeds": 3}]
    front = q_curve_report.headline([root])
    assert "half (<= 0.5) from Q_full = none on; also at Q_full 500.0 (progressive, 0.350, 3 seed(s));" in front
    assert "reference at its minimum at Q_full = 500.0, 1000.0." in front
    assert ("from Q_full = none of the widths on; half or less also at Q_full 500.0 (progressive, 0.350, "
            "3 seed(s)).") in q_curve_report.curve_markdown(q_curve_report.load(root, "fashion_mnist"))


def test_the_gap_trend_recovers_a_power_law_and_where_it_reaches_the_tolerance():
    # -gap = 192 / Q exactly: alpha 1, the tolerance 0.3 pp at Q = 640, a bound of 1000 / 640.
    row = q_curve_report.row(1, summary(1000.0, [0.5], [], None,
                                        gaps=[(q, -192.0 / q) for q in (16, 32, 64, 128)]))
    t = row["gap_trend"]
    assert t["points"] == 4 and t["largest_q_swept"] == 128
    assert t["alpha"] == pytest.approx(1.0) and t["c"] == pytest.approx(192.0)
    assert t["q_at_tolerance"] == pytest.approx(640.0) and t["bound"] == pytest.approx(1000.0 / 640)
    # A gap falling as 1/sqrt(Q) reaches the tolerance far later: (192 / 0.3)**2.
    slow = q_curve_report.gap_trend(
        [{"ratio": q, "gap_pp": {"mean": -192.0 / q ** 0.5}} for q in (16, 64, 256)], 0.3, 1000.0)
    assert slow["alpha"] == pytest.approx(0.5) and slow["q_at_tolerance"] == pytest.approx(640.0 ** 2)


def test_the_gap_trend_is_not_fitted_where_a_subset_beat_the_reference_or_too_few_were_swept():
    def trend(gaps):
        return q_curve_report.gap_trend(
            [{"ratio": q, "gap_pp": {"mean": g}} for q, g in gaps], 0.3, 1000.0)
    # A subset above the reference: the reference stopped short of the minimum, no trend.
    assert trend([(16, -8.0), (32, -4.0), (64, +0.5), (128, -1.0)]) is None
    assert trend([(16, -8.0), (32, -4.0)]) is None                  # two points
    assert trend([(16, -1.0), (32, -2.0), (64, -4.0)]) is None      # a gap that grows with Q
    # A seed that did not measure a point is passed over, not read as a gap.
    assert trend([(16, -8.0), (32, None), (64, -2.0), (128, -1.0)])["points"] == 3


def test_the_front_page_shows_the_gap_trend_only_against_a_reference_at_the_minimum(tmp_path):
    root = str(tmp_path)
    gaps = [(16, -12.0), (32, -6.0), (64, -3.0)]
    write_width(root, "mnist", 1, summary(1000.0, [0.5], [], None, gaps=gaps))
    write_width(root, "mnist", 2, summary(500.0, [0.5], [], None, gaps=gaps, levelled=False))
    rows = q_curve_report.headline([root]).splitlines()[2:4]
    assert "| 640 (1.56) |" in rows[0]
    assert "| — (reference not at the minimum) |" in rows[1]


def test_the_gap_table_shows_each_widths_gaps_and_its_fit():
    root_rows = [q_curve_report.row(w, summary(q, [0.5], [], None, gaps=g)) for w, q, g in (
        (1, 1000.0, [(16, -12.0), (32, -6.0), (64, -3.0)]),
        (2, 500.0, [(16, -5.0), (32, +1.0), (64, -1.0)]))]
    curve = {"dataset": "toy", "rows": root_rows, "answers": q_curve_report.answers(root_rows)}
    text = q_curve_report.gap_markdown(curve, "##")
    assert text[0] == "## The subset's gap against its Q, toy"
    first = next(line for line in text if line.startswith("| 1 |"))
    # -gap = 192 / Q: alpha 1.00, 0.3 pp at Q = 640, a bound of 1000 / 640 = 1.56.
    assert first == "| 1 | 1000.0 | yes | -12.00 | -6.00 | -3.00 | 1.00 | 640 | 1.56 |"
    assert next(line for line in text if line.startswith("| 2 |")).endswith("| — | no fit | — |")


def test_q_star_shows_its_sweep_ratio_not_the_q_of_its_whole_examples(tmp_path):
    # 28,314 examples of a width whose P is 1,106 have Q = 256.004; the tables say 256.
    root = str(tmp_path)
    write_width(root, "fashion_mnist", 2, summary(542.5, [0.6], [(256, [0.7])], 256.004))
    front = q_curve_report.headline([root])
    assert "| 256 (2.1) |" in front and "256.004" not in front
    page = q_curve_report.curve_markdown(q_curve_report.load(root, "fashion_mnist"))
    assert "| 256 |" in page and "256.004" not in page


def test_a_sweep_point_cut_short_of_its_minimum_is_shown_apart_and_left_out_of_the_fit(tmp_path):
    root = str(tmp_path)
    data = summary(1000.0, [0.6], [], None, gaps=[(16, -10.0), (32, -5.0), (64, -2.5), (128, None)])
    # Q = 128: no seed's subset phase reached its minimum (a cap cut it at -0.2 pp).
    data["sweep"]["rows"][-1].update(seeds_cut_short=1, cut_gap_pp={"mean": -0.2, "std": None})
    # Q = 64: one seed at its minimum, one cut short.
    data["sweep"]["rows"][2].update(seeds_cut_short=1, cut_gap_pp={"mean": -9.0, "std": None})
    write_width(root, "fashion_mnist", 1, data)
    curve = q_curve_report.load(root, "fashion_mnist")
    trend = curve["rows"][0]["gap_trend"]
    # The fit runs through the three points at a minimum only: -gap = 160 / Q exactly.
    assert trend["points"] == 3 and trend["alpha"] == pytest.approx(1.0)
    assert trend["q_at_tolerance"] == pytest.approx(160 / 0.3)
    page = q_curve_report.curve_markdown(curve)
    assert "| -10.00 | -5.00 | -2.50 (1 cut short) | (-0.20) |" in page
