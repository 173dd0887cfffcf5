"""Tests of `benchmarks.report` and `benchmarks.overview`: the number formatter, the overview table."""

import json

import pytest

from benchmark_helpers import point
from benchmark_helpers import record
from benchmarks import overview
from benchmarks import report
from benchmarks import stats
from benchmarks.config import Config

# Every test of this file is quick: all in the fast tier.
pytestmark = pytest.mark.fast


def test_one_number_formatter_for_reports_and_overview():
    fmt = report.format_number
    assert fmt(None) == "not reached"
    assert fmt(0.125, digits=3) == "0.125"
    assert fmt(3) == "3.00"
    # A statistic over seeds: mean ± std, scaled; no std with one seed.
    assert fmt({"mean": 0.5, "std": 0.25}, 100.0, 1, "%") == "50.0 ± 25.0%"
    assert fmt({"mean": 0.5, "std": None}) == "0.50"
    assert fmt({"mean": None, "std": None}, missing="n/a") == "n/a"
    # The overview table formats with the same function.
    assert overview.format_number is report.format_number


def test_overview_shows_both_frames(tmp_path):
    conv = record("conventional", "conventional", 0, [
        point("initial", 0.0, 0, 0.0, 0.1), point("train", 1.0, 1000, 10.0, 0.95),
        point("train", 2.0, 2000, 20.0, 0.96)],
        phases=[{"phase": "train", "optimizer": "adam", "epochs": 2}])
    full = record("lbfgs_full", "lbfgs_full", 0, [
        point("initial", None, 0, 0.0, 0.1), point("full", None, 5000, 40.0, 0.97)])
    # Reaches the paper target (0.967) at 4,000 and the user target (0.957) at 2,000.
    prog = record("progressive", "progressive", 0, [
        point("initial", None, 0, 0.0, 0.1), point("stage0", None, 2000, 5.0, 0.958),
        point("stage1", None, 4000, 10.0, 0.968)],
        progressive={"first_size": 10, "last_size": 1000, "first_ratio": 1.0, "last_ratio": 10.0})
    config = Config(dataset="x", epochs=2, output_dir=str(tmp_path))
    summary = stats.summarize(config, [conv, full, prog])
    (tmp_path / "summary.json").write_text(json.dumps(summary))
    (tmp_path / "run_conventional_seed0.json").write_text(json.dumps(conv))
    rows = {row.split(" | ")[1]: row for row in overview.rows(str(tmp_path))}
    # run: paper cost / lbfgs_full, paper time, user cost / fastest Adam, user time.
    cells = rows["progressive"].split(" | ")
    assert cells[2:4] == ["1.00→10.00", "10→1,000"]
    assert cells[5:9] == ["0.80", "0.25", "1.00", "0.25"]
    assert rows["lbfgs_full (not levelled off)"].split(" | ")[5:9] == [
        "1.00", "1.00", "2.50", "2.00"]
    assert rows["conventional, 2.0 epochs (not levelled off)"].split(" | ")[5:7] == [
        "not reached", "not reached"]


def test_overview_draws_the_sweeps_of_several_folders_on_one_figure(tmp_path):
    from benchmark_helpers import PNG_MAGIC

    def folder(name, copies, gaps):
        path = tmp_path / name
        path.mkdir()
        rows = [{"ratio": q, "test_accuracy_gap_pp": {"mean": g, "std": None}} for q, g in gaps]
        (path / "summary.json").write_text(json.dumps({
            "dataset": "mnist", "copies": copies, "target_tolerance_pp": 0.3,
            "sweep": {"rows": rows}}))
        return str(path)

    folders = [folder("plain", 0, [(1, -9.0), (32, -0.4)]),
               folder("augmented", 4, [(8, -3.0), (256, 0.1)]),
               folder("no_sweep", 0, [])]
    out = tmp_path / "gap.png"
    assert overview.plot_gap_vs_q(folders, str(out)) == 2  # the folder without a sweep: no curve
    assert out.read_bytes()[:8] == PNG_MAGIC


def test_overview_names_rows_by_folder_and_skips_folders_without_a_summary(tmp_path, capsys):
    def folder(name):
        path = tmp_path / name
        path.mkdir()
        conv = record("conventional", "conventional", 0, [
            point("initial", 0.0, 0, 0.0, 0.1), point("train", 1.0, 1000, 10.0, 0.95)],
            phases=[{"phase": "train", "optimizer": "adam", "epochs": 1}])
        summary = stats.summarize(Config(dataset="mnist", epochs=1, output_dir=str(path)), [conv])
        (path / "summary.json").write_text(json.dumps(summary))
        return str(path)

    # Two folders of one dataset keep their own names; a side script's folder adds no row.
    engine = tmp_path / "engine"
    engine.mkdir()
    (engine / "engine.json").write_text("{}")
    folders = [folder("mnist_seconds"), folder("mnist_bf16"), str(engine)]
    names = [line.split(" | ")[0] for line in overview.table(folders).splitlines()[2:]]
    assert names == ["| mnist_seconds", "| mnist_bf16"]
    overview.main(folders)
    captured = capsys.readouterr()
    assert "engine: no summary.json" in captured.err and "| mnist_bf16 |" in captured.out
    assert overview.plot_gap_vs_q(folders, str(tmp_path / "gap.png")) == 0  # no sweeps, no crash


def test_folders_are_named_apart_a_q_curve_width_with_its_dataset():
    assert overview.folder_name("docs/results/mnist_bf16/") == "mnist_bf16"
    assert overview.folder_name("docs/results/q_curve/cifar10/w16") == "cifar10/w16"
    assert overview.folder_name("docs/results/q_curve/mnist/w4/") == "mnist/w4"
