"""Tests of `benchmarks.resummarize`: a folder's reports rewritten from its run files."""

import json

import pytest

from benchmark_helpers import point
from benchmark_helpers import record
from benchmarks import resummarize
from benchmarks import stats
from benchmarks.config import Config

# Every test of this file is quick: all in the fast tier.
pytestmark = pytest.mark.fast

SETTINGS = {"preset": "cpu", "epochs": 2, "target_tolerance": 0.3, "plateau_tolerance": 0.2,
            "plateau_patience": 3}


def _write_folder(folder):
    """A folder of three complete runs and one cut short; returns the complete records."""
    conv = record("conventional", "conventional", 0, [
        point("initial", 0.0, 0, 0.0, 0.1), point("train", 1.0, 1000, 10.0, 0.95),
        point("train", 2.0, 2000, 20.0, 0.96)], batch_size=128,
        phases=[{"phase": "train", "optimizer": "adam", "epochs": 2}],
        config=dict(SETTINGS, epochs=15), started="2026-12-01T10:00:00")
    full = record("lbfgs_full", "lbfgs_full", 0, [
        point("initial", None, 0, 0.0, 0.1), point("full", None, 5000, 40.0, 0.97)],
        config=dict(SETTINGS, epochs=15), started="2026-12-01T09:00:00")
    # The most recent run: its settings (epochs=2) are the summary's.
    prog = record("progressive", "progressive", 0, [
        point("initial", None, 0, 0.0, 0.1), point("stage0", None, 4000, 10.0, 0.968)],
        progressive={"first_size": 10, "last_size": 1000, "first_ratio": 1.0,
                     "last_ratio": 10.0}, config=SETTINGS, started="2026-12-04T08:00:00")
    cut = dict(prog, seed=1, complete=False)
    for r in (prog, full, conv):
        (folder / f"run_{r['run']}_seed{r['seed']}.json").write_text(json.dumps(r))
    (folder / "run_progressive_seed1.partial.json").write_text(json.dumps(cut))
    (folder / "summary.json").write_text(json.dumps({"sweep": {"skipped": ["Q = 64: K > N"]}}))
    return [conv, full, prog]


def test_the_summary_is_the_one_the_script_would_write(tmp_path):
    records = _write_folder(tmp_path)
    written = resummarize.resummarize(str(tmp_path))
    config = Config(dataset="x", output_dir=str(tmp_path), **SETTINGS)
    planned = [(r["run"], r["seed"]) for r in records] + [("progressive", 1)]
    expected = stats.summarize(config, records, planned, ["Q = 64: K > N"])
    assert json.loads((tmp_path / "summary.json").read_text()) == json.loads(json.dumps(expected))
    assert written["conventional_epochs"] == 2  # the latest run's settings
    assert written["runs_missing"] == ["progressive seed 1"]  # the partial run: planned, missing
    assert [r["run"] for r in written["runs"]] == ["conventional", "lbfgs_full", "progressive"]
    assert "Partial: this summary covers 3 of 4" in (tmp_path / "summary.md").read_text()


def test_a_folder_without_runs_is_refused(tmp_path):
    with pytest.raises(ValueError, match="no complete run file"):
        resummarize.resummarize(str(tmp_path))


def test_the_command_line(tmp_path, capsys):
    _write_folder(tmp_path)
    resummarize.main([str(tmp_path)])
    assert "rewritten from 3 runs" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        resummarize.parser().parse_args([])
